"""How soon the console hears a provider go down: from the answer of the request that opened
its breaker to the websocket update of its card (the live console's goal: within 2 s).

    .venv/bin/python -m bench.console.push [--runs 3]

Starts the real server (`manage.py serve`, daphne, the embedded monitor on, a fresh SQLite
database) with one fake OpenAI upstream per run on loopback, each behind a provider whose
breaker opens after three failures and a route of its own. Signs in as the operator and
listens on /ws/health/ as the dashboard does. Each run: the provider's first probe shows it
healthy, its upstream starts answering 500, three chats fail, and the figures are the times
until a card update says "open" (the breaker, pushed when the engine changes it) and
"unhealthy" (the monitor's debounced status). tests/browser/test_live_console.py asserts
that the card follows without a reload, not how soon.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.e2e import server as srv  # noqa: E402
from tests.fakes.openai import API_KEY, FakeOpenAI  # noqa: E402

BREAKER_OPEN = re.compile(r'data-field="breaker">\s*open\s*<')
STATUS_UNHEALTHY = re.compile(r'data-field="status">(?:<span[^>]*></span>)?\s*unhealthy\s*<')


def config(fakes: list[FakeOpenAI]) -> dict[str, Any]:
    names = [f"up-{i}" for i in range(len(fakes))]
    return {
        "providers": [
            {
                "name": name,
                "kind": "openai",
                "base_url": fake.url + "/v1",
                "api_key": API_KEY,
                "models": ["gpt-4o-mini"],
                "capabilities": ["chat"],
                "retry": {"max_attempts": 1},
                "breaker": {"consecutive_failures": 3, "min_calls": 3, "failure_rate": 0.5, "break_s": 120},
                "health_check": {"interval_s": 3600, "timeout_s": 5},
            }
            for name, fake in zip(names, fakes, strict=True)
        ],
        "routes": [
            {
                "name": name,
                "capability": "chat",
                "max_attempts": 1,
                "targets": [{"provider": name, "model": "gpt-4o-mini"}],
            }
            for name in names
        ],
    }


def session_cookie(url: str) -> str:
    with httpx.Client(base_url=url) as client:
        page = client.get("/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        client.post(
            "/login/",
            data={"username": "operator", "password": "operator-pass-123", "csrfmiddlewaretoken": token},
            headers={"Referer": url + "/login/"},
        )
        return str(client.cookies["sessionid"])


def wait_probed(url: str, key: str, name: str) -> None:
    """Until the monitor's first probe of `name` is in (a bound on waiting, 60 s)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answer = httpx.get(f"{url}/api/health/{name}", headers={"Authorization": f"Bearer {key}"})
        if answer.status_code == 200 and answer.json().get("last_check_ok") is True:
            return
        time.sleep(0.2)
    raise SystemExit(f"{name} was never probed")


async def one_run(url: str, key: str, session: str, name: str, fake: FakeOpenAI) -> tuple[float, float]:
    import websockets

    uri = url.replace("http://", "ws://") + "/ws/health/"
    async with websockets.connect(uri, additional_headers={"Cookie": f"sessionid={session}", "Origin": url}) as socket:
        await asyncio.sleep(0.3)  # subscribed
        fake.fault(status=500)
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}) as client:
            for _ in range(3):
                await client.post(
                    "/v1/chat/completions", json={"model": name, "messages": [{"role": "user", "content": "hi"}]}
                )
        broke = time.perf_counter()
        opened = unhealthy = None
        card = f'id="card-{name}"'
        while opened is None or unhealthy is None:
            message = await asyncio.wait_for(socket.recv(), 30)
            text = message if isinstance(message, str) else message.decode()
            if card not in text:
                continue
            now = time.perf_counter() - broke
            if opened is None and BREAKER_OPEN.search(text):
                opened = now
            if unhealthy is None and STATUS_UNHEALTHY.search(text):
                unhealthy = now
        fake.clear_faults()
        return opened, unhealthy


def main(runs: int) -> None:
    fakes = [FakeOpenAI() for _ in range(runs)]
    for fake in fakes:
        fake.start()
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        server = srv.prepare(tmp, {"NO_DEMO": "1", "MONITOR_EMBEDDED": "true"})
        try:
            (tmp / "config.json").write_text(json.dumps(config(fakes)))
            server.manage("import_config", str(tmp / "config.json"))
            key = server.manage("create_api_key", "bench", "--scopes", "gateway,read,admin").stdout.strip()
            key = key.splitlines()[-1]
            srv.start(server, tmp)
            session = session_cookie(server.url)
            figures = []
            for i, fake in enumerate(fakes):
                wait_probed(server.url, key, f"up-{i}")
                figures.append(asyncio.run(one_run(server.url, key, session, f"up-{i}", fake)))
        finally:
            server.stop()
            for fake in fakes:
                fake.stop()
    print(f"console push after a breaker opens, {runs} runs (goal: within 2 s)")
    for label, values in (
        ("breaker open on the card", [o for o, _ in figures]),
        ("status unhealthy on the card", [u for _, u in figures]),
    ):
        print(f"{label:<30} median {statistics.median(values) * 1000:7.0f} ms, max {max(values) * 1000:7.0f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    main(parser.parse_args().runs)

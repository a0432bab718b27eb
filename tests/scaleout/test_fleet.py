"""Several processes acting as one system: two web workers and separate monitors on a real
PostgreSQL and a real Redis (issue 9).

Each module run gets a fresh PostgreSQL database and a Redis server of its own on a free
port, so the test can stop and restart Redis without touching the machine's shared one.
Workers are `manage.py serve --no-embedded` (daphne); monitors are `manage.py monitor`.

A note on the quorum rule (resilience.md §8): failures reported by one process alone open only
that process's breaker. The fleet-wide breaker opens when a second reporter (another worker,
or the monitor's probes) saw failures too, which is what these tests do.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e import server as srv
from tests.fakes.base import free_port
from tests.fakes.openai import API_KEY, FakeOpenAI

from .conftest import OP_TIMEOUT_S

pytestmark = [pytest.mark.scaleout, pytest.mark.e2e]

PG_ADMIN = os.environ.get("SCALEOUT_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _need(what: str, ok: bool) -> None:
    if not ok:
        message = f"scale-out tests need {what}"
        if os.environ.get("REQUIRE_SCALEOUT"):
            pytest.fail(message)
        pytest.skip(message)


class RedisServer:
    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        subprocess.run(
            [
                "redis-server",
                "--daemonize",
                "yes",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.tmp),
                "--logfile",
                str(self.tmp / f"redis-{self.port}.log"),
            ],
            check=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.ping():
                return
            time.sleep(0.05)
        raise RuntimeError("redis did not start")

    def ping(self) -> bool:
        result = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True)
        return result.stdout.strip() == "PONG"

    def stop(self) -> None:
        subprocess.run(["redis-cli", "-p", str(self.port), "shutdown", "nosave"], capture_output=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.ping():
            time.sleep(0.05)


def _psql(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> Iterator[dict]:
    _need("redis-server", shutil.which("redis-server") is not None)
    try:
        _psql("SELECT 1")
    except Exception as exc:
        _need(f"PostgreSQL at {PG_ADMIN} ({exc})", False)
    tmp = tmp_path_factory.mktemp("fleet")
    database = f"gw_fleet_{secrets.token_hex(4)}"
    _psql(f"CREATE DATABASE {database}")
    redis = RedisServer(tmp)
    redis.start()
    up, spare = FakeOpenAI(), FakeOpenAI()
    up.start()
    spare.start()
    processes: list[srv.ServerProcess] = []
    monitors: list[subprocess.Popen] = []
    try:
        base = srv.server_env(
            tmp,
            {
                "DATABASE_URL": PG_ADMIN.rsplit("/", 1)[0] + f"/{database}",
                "REDIS_URL": redis.url,
                "MONITOR_EMBEDDED": "false",
                "MONITOR_LEASE_S": "3",
                "CONFIG_POLL_INTERVAL_S": "0.5",
                "CONN_MAX_AGE": "0",
                "REDIS_OP_TIMEOUT_S": str(OP_TIMEOUT_S),  # see its comment in conftest.py
            },
        )
        admin = srv.ServerProcess(url="", env=base)
        admin.manage("migrate", "--noinput")
        admin.manage("ensure_admin")
        provider = {
            "kind": "openai",
            "api_key": API_KEY,
            "models": ["gpt-4o-mini"],
            "retry": {"max_attempts": 1},
            "timeout_s": 5,
        }
        breaker = {
            "min_calls": 4,
            "failure_rate": 0.5,
            "consecutive_failures": 3,
            "break_s": 2,
            "max_break_s": 2,
            "half_open_probes": 3,
        }
        config = {
            "providers": [
                # probed every second by the monitor: its probes are a second reporter
                {
                    "name": "watched",
                    "base_url": up.url + "/v1",
                    **provider,
                    "breaker": breaker,
                    "health_check": {"interval_s": 1, "timeout_s": 1},
                },
                # never probed in these tests' time: only live calls reach it
                {
                    "name": "quiet",
                    "base_url": spare.url + "/v1",
                    **provider,
                    "breaker": breaker,
                    "health_check": {"interval_s": 3600, "timeout_s": 1},
                },
                {
                    "name": "third",
                    "base_url": spare.url + "/v1",
                    **provider,
                    "health_check": {"interval_s": 3600, "timeout_s": 1},
                },
            ],
            "routes": [
                {"name": n, "max_attempts": 1, "targets": [{"provider": n, "model": "gpt-4o-mini"}]}
                for n in ("watched", "quiet", "third")
            ],
        }
        (tmp / "config.json").write_text(json.dumps(config))
        admin.manage("import_config", str(tmp / "config.json"))
        key = admin.manage("create_api_key", "fleet", "--scopes", "gateway,read,admin").stdout.strip().splitlines()[-1]
        # worker A under daphne, B under uvicorn (docs/deploy.md's faster choice): both serve the
        # gateway and the console's websocket, as one fleet
        for kind in ("daphne", "uvicorn"):
            worker = srv.ServerProcess(url="", env=dict(base))
            srv.start(worker, tmp, server_kind=kind, args=("--no-embedded",))
            processes.append(worker)
        yield {
            "a": processes[0],
            "b": processes[1],
            "key": key,
            "env": base,
            "redis": redis,
            "up": up,
            "spare": spare,
            "tmp": tmp,
            "monitors": monitors,
        }
    finally:
        for worker in processes:
            worker.stop()
        for monitor in monitors:
            if monitor.poll() is None:
                monitor.kill()
                monitor.wait(10)
        up.stop()
        spare.stop()
        redis.stop()
        _psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}'")
        _psql(f"DROP DATABASE IF EXISTS {database}")


def start_monitor(fleet: dict, name: str) -> subprocess.Popen:
    log = (fleet["tmp"] / f"{name}.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "monitor"], cwd=srv.ROOT, env=fleet["env"], stdout=log, stderr=subprocess.STDOUT
    )
    fleet["monitors"].append(proc)
    return proc


def headers(fleet: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {fleet['key']}"}


def chat(worker: srv.ServerProcess, fleet: dict, route: str) -> httpx.Response:
    return httpx.post(
        worker.url + "/v1/chat/completions",
        headers=headers(fleet),
        timeout=10,
        json={"model": route, "messages": [{"role": "user", "content": "hi"}]},
    )


def breaker(worker: srv.ServerProcess, fleet: dict, name: str) -> dict:
    rows = httpx.get(worker.url + "/api/breakers", headers=headers(fleet), timeout=10).json()["breakers"]
    return next(b for b in rows if b["name"] == name)


HANG_S = 60.0  # a bound on waiting that only stops a hang; how soon is for bench/, not here


def wait_for(predicate, limit_s: float = HANG_S, step_s: float = 0.05) -> None:
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        if predicate():
            return
        time.sleep(step_s)
    raise AssertionError(f"not within {limit_s} s")


def test_failures_through_worker_a_open_the_breaker_and_worker_b_rejects_without_a_call(fleet):
    monitor = start_monitor(fleet, "monitor-1")
    up, a, b = fleet["up"], fleet["a"], fleet["b"]
    up.fault(status=500)
    # the monitor's probes of "watched" fail too: a second reporter for the quorum rule
    wait_for(
        lambda: httpx.get(a.url + "/api/health/watched", headers=headers(fleet)).json()["last_check_ok"] is False,
        step_s=0.1,
    )
    for _ in range(4):
        assert chat(a, fleet, "watched").status_code in (502, 503)
    wait_for(lambda: breaker(a, fleet, "watched")["state"] == "open")
    # B learns it without having sent a call itself (how soon: bench/engine/redis_run.py)
    wait_for(lambda: breaker(b, fleet, "watched")["state"] == "open")
    sent_before = len(up.requests_to("/v1/chat/completions"))
    response = chat(b, fleet, "watched")
    assert response.status_code == 503
    assert response.json()["error"]["attempts"][0]["skipped"] == "open"
    assert len(up.requests_to("/v1/chat/completions")) == sent_before  # B sent nothing upstream
    monitor.send_signal(signal.SIGTERM)
    assert monitor.wait(15) == 0
    up.clear_faults()


def test_after_the_break_the_whole_fleet_sends_exactly_the_half_open_probes(fleet):
    spare, a, b = fleet["spare"], fleet["a"], fleet["b"]
    spare.fault(status=500, path="/v1/chat")
    for worker in (a, b):  # failures from both workers: two reporters
        for _ in range(3):
            assert chat(worker, fleet, "quiet").status_code in (502, 503)
    wait_for(lambda: breaker(a, fleet, "quiet")["state"] == "open" and breaker(b, fleet, "quiet")["state"] == "open")
    spare.clear_faults()
    spare.fault(delay_s=1.0, path="/v1/chat")  # probes stay in flight while the burst arrives
    time.sleep(2 * 1.2 + 0.3)  # the break (2 s, +20 % jitter at most) has elapsed
    before = len(spare.requests_to("/v1/chat/completions"))

    async def burst() -> list[int]:
        async with httpx.AsyncClient(timeout=15) as client:

            async def one(worker: srv.ServerProcess) -> int:
                response = await client.post(
                    worker.url + "/v1/chat/completions",
                    headers=headers(fleet),
                    json={"model": "quiet", "messages": [{"role": "user", "content": "x"}]},
                )
                return response.status_code

            return await asyncio.gather(*(one(w) for w in (a, b) for _ in range(25)))

    statuses = asyncio.run(burst())
    reached = len(spare.requests_to("/v1/chat/completions")) - before
    assert reached == 3, (reached, statuses)
    assert statuses.count(200) == 3 and statuses.count(503) == 47
    spare.clear_faults()


def test_a_websocket_on_worker_b_hears_a_change_made_on_worker_a(fleet):
    import websockets

    a, b = fleet["a"], fleet["b"]
    with httpx.Client(base_url=b.url) as client:
        page = client.get("/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        client.post(
            "/login/",
            data={"username": "operator", "password": "operator-pass-123", "csrfmiddlewaretoken": token},
            headers={"Referer": b.url + "/login/"},
        )
        session = client.cookies["sessionid"]

    async def listen() -> str:
        uri = b.url.replace("http://", "ws://") + "/ws/health/"
        async with websockets.connect(
            uri, additional_headers={"Cookie": f"sessionid={session}", "Origin": b.url}
        ) as socket:
            await asyncio.sleep(0.3)
            response = await asyncio.to_thread(
                httpx.post, a.url + "/api/breakers/third/force-open", headers=headers(fleet), json={"minutes": 1}
            )
            assert response.status_code == 200
            deadline = time.monotonic() + HANG_S
            while time.monotonic() < deadline:
                message = await asyncio.wait_for(socket.recv(), deadline - time.monotonic())
                if "card-third" in message and "forced" in message.lower():
                    return message
        raise AssertionError("no update")

    message = asyncio.run(listen())
    assert 'id="card-third"' in message
    httpx.post(a.url + "/api/breakers/third/reset", headers=headers(fleet))


def test_a_key_s_request_and_token_limits_hold_across_both_workers(fleet):
    """Two processes, one key: its requests per minute are counted once for the fleet (an
    atomic script in Redis), and tokens a request used on one worker limit the other."""
    a, b = fleet["a"], fleet["b"]
    fleet["spare"].clear_faults()

    def create(*args: str) -> str:
        return a.manage("create_api_key", *args).stdout.strip().splitlines()[-1]

    def send(worker: srv.ServerProcess, key: str) -> httpx.Response:
        return httpx.post(
            worker.url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
            json={"model": "third", "messages": [{"role": "user", "content": "hi"}]},
        )

    rpm = create(f"rpm-{secrets.token_hex(3)}", "--scopes", "gateway", "--rpm", "5")
    answers = [send(worker, rpm) for worker in (a, b) * 4]
    assert [r.status_code for r in answers] == [200] * 5 + [429] * 3
    assert {r.json()["error"]["code"] for r in answers[5:]} == {"rate_limited"}
    assert all(int(r.headers["Retry-After"]) >= 1 for r in answers[5:])

    tpm = create(f"tpm-{secrets.token_hex(3)}", "--scopes", "gateway", "--tpm", "1")
    assert send(a, tpm).status_code == 200  # nothing used yet; its tokens settle when it ends
    refused: list[httpx.Response] = []
    wait_for(lambda: refused.append(send(b, tpm)) or refused[-1].status_code == 429)
    assert refused[-1].json()["error"]["code"] == "rate_limited"


def test_with_redis_stopped_both_workers_keep_serving_and_pick_shared_state_up_again(fleet):
    a, b, redis = fleet["a"], fleet["b"], fleet["redis"]
    redis.stop()
    try:
        statuses = [chat(worker, fleet, "third").status_code for worker in (a, b) for _ in range(10)]
        assert statuses == [200] * 20
    finally:
        redis.start()

    # back: an operator action on A is shared with B again
    def shared() -> bool:
        httpx.post(a.url + "/api/breakers/third/force-open", headers=headers(fleet), json={"minutes": 1})
        return breaker(b, fleet, "third")["state"] == "forced_open"

    wait_for(shared, step_s=0.5)
    httpx.post(a.url + "/api/breakers/third/reset", headers=headers(fleet))
    wait_for(lambda: breaker(b, fleet, "third")["state"] == "closed", step_s=0.2)


def test_when_the_leading_monitor_dies_the_other_takes_over_and_nothing_is_probed_twice(fleet):
    up = fleet["up"]
    first, second = start_monitor(fleet, "monitor-a"), start_monitor(fleet, "monitor-b")
    admin = srv.ServerProcess(url="", env=fleet["env"])

    def holder() -> str:
        out = admin.manage(
            "shell", "-c", "from health.lease import Lease;print(Lease('monitor','x',3).current_holder())"
        ).stdout
        return out.strip().splitlines()[-1]

    wait_for(lambda: holder() != "None", step_s=0.3)
    leader_pid = int(holder().split(":")[1])
    leader, other = (first, second) if first.pid == leader_pid else (second, first)
    time.sleep(3)  # a few probes by the leader
    leader.kill()  # no clean release: the lease must expire

    def taken_over() -> bool:
        current = holder()
        return current != "None" and int(current.split(":")[1]) == other.pid

    wait_for(taken_over, step_s=0.3)  # once the lease's 3 s have passed: how soon is not asserted
    time.sleep(3)
    probes = sorted(r.at for r in up.requests_to("/v1/models"))
    gaps = [later - earlier for earlier, later in itertools.pairwise(probes)]
    assert len(probes) >= 4
    assert min(gaps) >= 0.85, gaps  # interval 1 s, jittered ±10 %: never twice in one interval
    other.send_signal(signal.SIGTERM)
    assert other.wait(15) == 0

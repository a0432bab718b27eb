"""The path of one chat request through the gateway: which of our functions it passes
through, in how many modules.

    .venv/bin/python -m bench.path.run

Runs the application in-process (ASGI, SQLite in a temporary directory) against the fake
OpenAI upstream on loopback, sends two warm-up requests, then profiles one
`POST /v1/chat/completions` with `sys.setprofile`/`threading.setprofile` (every thread: the
database calls run in executor threads). It counts each distinct function of the project
(`project`, `providers`, `analytics`, `health`) entered while the request was in flight,
and prints them by module in first-call order. The analytics writer's background flush is
not on the request's path and is not counted.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
PACKAGES = tuple(str(ROOT / name) + os.sep for name in ("project", "providers", "analytics", "health"))


def main() -> None:
    tmp = tempfile.mkdtemp(prefix="gateway-path-")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    os.environ["DATABASE_URL"] = f"sqlite:///{tmp}/db.sqlite3"
    os.environ.setdefault("SECRET_KEY", "path-bench-" + "x" * 40)
    os.environ["ANALYTICS_FLUSH_INTERVAL_S"] = "3600"
    os.environ.setdefault("PROVIDER_URL_ALLOW", "127.0.0.1,localhost")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    asyncio.run(trace())


async def trace() -> None:
    import httpx
    from asgiref.sync import sync_to_async

    from project.asgi import application
    from providers.config import apply_config
    from providers.models import ApiKey
    from providers.runtime import runtime
    from tests.fakes.openai import API_KEY, FakeOpenAI

    with FakeOpenAI() as upstream:
        doc = {
            "providers": [
                {
                    "name": "up",
                    "kind": "openai",
                    "base_url": upstream.url + "/v1",
                    "api_key": API_KEY,
                    "models": ["gpt-4o-mini"],
                }
            ],
            "routes": [{"name": "chat", "capability": "chat", "targets": [{"provider": "up", "model": "gpt-4o-mini"}]}],
        }
        await sync_to_async(lambda: apply_config(doc, actor="bench", prune=True))()
        key = await sync_to_async(lambda: ApiKey.issue("bench", ["gateway"])[1])()
        await runtime().refresh()
        body = {"model": "chat", "messages": [{"role": "user", "content": "Say hello."}]}
        headers = {"Authorization": f"Bearer {key}"}
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            for _ in range(2):
                warm = await client.post("/v1/chat/completions", json=body, headers=headers)
                assert warm.status_code == 200, warm.text
            seen: OrderedDict[tuple[str, str], None] = OrderedDict()

            def profile(frame: FrameType, event: str, arg: Any) -> None:
                if event == "call":
                    code = frame.f_code
                    if code.co_filename.startswith(PACKAGES):
                        module = os.path.relpath(code.co_filename, ROOT)
                        seen.setdefault((module, code.co_qualname), None)

            threading.setprofile(profile)
            sys.setprofile(profile)
            try:
                response = await client.post("/v1/chat/completions", json=body, headers=headers)
            finally:
                sys.setprofile(None)
                threading.setprofile(None)  # type: ignore[arg-type]
            assert response.status_code == 200, response.text
    modules: OrderedDict[str, list[str]] = OrderedDict()
    for module, name in seen:
        modules.setdefault(module, []).append(name)
    for module, names in modules.items():
        print(f"{module} ({len(names)}): {', '.join(names)}")
    named = [name for _, name in seen if not name.rsplit(".", 1)[-1].startswith("<")]
    print(
        f"\n{len(seen)} functions ({len(named)} without comprehensions and lambdas) in {len(modules)} modules"
        " on the path of one chat request"
    )


if __name__ == "__main__":
    main()

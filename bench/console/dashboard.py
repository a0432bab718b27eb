"""The dashboard at scale: the full page and one live push with N providers, as cards and as
a table.

    .venv/bin/python -m bench.console.dashboard [--providers 200] [--runs 15]

A fresh SQLite database (migrated in a subprocess) with N simulated providers, each with the
last 30 probe results and a health row, in this process: the page is the real view, through
Django's middleware (`AsyncClient`, signed in as a superuser); a push is what the websocket
consumer sends for one provider's change (`pages.render_dashboard_push`, the data loaded
afresh, as the first console of a process to hear of a change does), for a row or card
replaced in place, and for a whole board (what the view lists changed). Figures: the median
and the slowest of `--runs`, in ms, and the size of what is sent.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def environment(tmp: Path) -> None:
    from cryptography.fernet import Fernet

    for name in [k for k in os.environ if k.startswith("DJANGO_")]:
        del os.environ[name]
    os.environ.update(
        {
            "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
            "SECRET_KEY": "bench-" + "x" * 40,
            "ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "NO_DEMO": "1",
            "LOG_LEVEL": "WARNING",
            "REDIS_URL": "",
        }
    )
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, check=True, capture_output=True)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()


def seed(count: int) -> None:
    import random
    from datetime import timedelta

    from django.utils import timezone

    from health.models import ProbeResult, ProviderHealth
    from providers.config import apply_config
    from providers.models import Provider

    caps = ["chat", "embeddings", "image", "tts"]
    apply_config(
        {
            "providers": [
                {
                    "name": f"provider-{i:03d}",
                    "kind": "simulated",
                    "models": ["m"],
                    "priority": 1 + i % 5,
                    "capabilities": [caps[i % len(caps)]],
                    "options": {"latency_ms": 5, "seed": i},
                }
                for i in range(count)
            ]
        },
        actor="bench",
    )
    rng = random.Random(7)
    now = timezone.now()
    probes, health = [], []
    for provider in Provider.objects.all():
        for k in range(30):
            ok = rng.random() > 0.05
            probes.append(
                ProbeResult(
                    provider=provider,
                    at=now - timedelta(seconds=30 * k),
                    ok=ok,
                    latency_ms=rng.uniform(20, 400),
                    error="" if ok else "http_503",
                )
            )
        health.append(
            ProviderHealth(
                provider=provider,
                status=rng.choice(["healthy"] * 8 + ["degraded", "unhealthy"]),
                score=rng.uniform(10, 100),
                last_check_at=now,
                last_check_ok=True,
                last_check_ms=80.0,
            )
        )
    ProbeResult.objects.bulk_create(probes, batch_size=2000)
    ProviderHealth.objects.bulk_create(health)


async def timed(runs: int, call: Callable[[], Awaitable[Any]]) -> tuple[list[float], Any]:
    await call()  # warm: templates compiled, connections open
    times, out = [], None
    for _ in range(runs):
        started = time.perf_counter()
        out = await call()
        times.append((time.perf_counter() - started) * 1000)
    return times, out


async def measure(count: int, runs: int) -> list[tuple[str, list[float], int]]:
    from asgiref.sync import sync_to_async
    from django.contrib.auth import get_user_model
    from django.test import AsyncClient

    from health import pages
    from health.access import Role
    from health.cards import Filters
    from providers.runtime import Runtime, install_runtime

    rt = install_runtime(Runtime())
    await rt.refresh(force=True)
    user = await sync_to_async(get_user_model().objects.create_superuser)("bench", "bench@example.com", None)
    client = AsyncClient()
    await client.aforce_login(user)
    role = Role(True, True, True)
    name = "provider-100" if count > 100 else f"provider-{count - 1:03d}"
    rows: list[tuple[str, list[float], int]] = []
    try:
        for view in ("cards", "table"):

            async def page(view: str = view) -> Any:
                response = await client.get(f"/?view={view}")
                assert response.status_code == 200, response.status_code
                return response.content

            times, body = await timed(runs, page)
            rows.append((f"full page, {view}", times, len(body)))
            filters = Filters.from_query({"view": view})
            shown = await pages.dashboard_listing(filters)

            async def push(filters: Filters = filters, shown: list[str] = shown) -> Any:
                html, _ = await pages.render_dashboard_push([name], role, filters, shown)
                return html

            times, html = await timed(runs, push)
            rows.append((f"push, one {'row' if view == 'table' else 'card'}", times, len(html)))

            async def board(filters: Filters = filters) -> Any:
                html, _ = await pages.render_dashboard_push([name], role, filters, None)
                return html

            times, html = await timed(runs, board)
            rows.append((f"push, whole board ({view})", times, len(html)))
    finally:
        await rt.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--providers", type=int, default=200)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    environment(Path(tempfile.mkdtemp(prefix="bench-console-")))
    seed(args.providers)
    rows = asyncio.run(measure(args.providers, args.runs))
    print(f"dashboard with {args.providers} providers, {args.runs} runs each (ms; KiB sent)")
    print(f"{'what':<30} {'median':>8} {'slowest':>8} {'size':>8}")
    for what, times, size in rows:
        print(f"{what:<30} {statistics.median(times):>8.1f} {max(times):>8.1f} {size / 1024:>8.1f}")


if __name__ == "__main__":
    main()

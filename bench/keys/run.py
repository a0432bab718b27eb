"""What API keys' limits cost a request on the hot path, in microseconds.

    .venv/bin/python bench/keys/run.py [--n 2000] [--runs 7] [--redis-url redis://127.0.0.1:6379/13]

In process, on a fresh SQLite database (migrated here, in a temporary folder), with the keys'
entries as the gateway's configuration snapshot has them (`providers.snapshot.load_snapshot`).
One request is what the gateway does for it (providers/keys.py):

- `admit`: `KeyLimits.admit(key, route)` when the key has limits (`key.limited`; a key without
  any skips it, as `providers.keys.admit` does). On the request's path, before the chain.
- `settle`: `KeyLimits.settle(record)` (queues the finished request) and the count of it in the
  store (`KeyLimits.count()`, which the background task otherwise runs at once). Off the
  request's path, but on the same event loop: its CPU (and, with Redis, its round trip) is the
  loop's. The background task's batch write to the database (every KEY_SPEND_FLUSH_INTERVAL_S)
  runs meanwhile, as it would.

Keys: `unlimited` (no limit: the baseline; its spend is still counted, as for every key with a
priced request), `budget+rpm` (a monthly budget and an rpm limit no run reaches), and
`budget+rpm+tpm`. Stores: in-process (`LocalLimits`, the default) and Redis on loopback
(`RedisLimits`, as with REDIS_URL; db 13 by default, keys under a prefix of this run's own,
deleted at the end). Every request is timed alone; a figure is the median of `runs` x `n`
requests after a warm-up, and "added" is a limited key's median minus the unlimited key's on
the same store. The machine's other work shows in the medians, not in what is counted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

REDIS_URL = "redis://127.0.0.1:6379/13"
KEYS = {  # name -> create fields
    "unlimited": {},
    "budget+rpm": {"budget": Decimal(1_000_000), "rate_limit_per_minute": 10_000_000},
    "budget+rpm+tpm": {"budget": Decimal(1_000_000), "rate_limit_per_minute": 10_000_000, "tokens_per_minute": 10**12},
}
COST = Decimal("0.000026")  # 12 tokens in at 1 per million, 7 out at 2: what the gateway bench's request costs


def setup_django() -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-keys-"))
    for name in [k for k in os.environ if k.startswith(("DJANGO_", "REDIS_URL", "DATABASE_URL"))]:
        del os.environ[name]
    os.environ.update(
        {
            "DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}",
            "SECRET_KEY": "bench-" + "x" * 40,
            "NO_DEMO": "1",
            "LOG_LEVEL": "WARNING",
            "MONITOR_EMBEDDED": "false",
            "DJANGO_SETTINGS_MODULE": "project.settings",
        }
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


async def per_request(runs: int, n: int, one: Callable[[], Awaitable[tuple[int, int]]]) -> tuple[float, float]:
    """Median (admit, settle) in µs over runs x n requests, after n // 10 of warm-up."""
    for _ in range(max(n // 10, 10)):
        await one()
    admits: list[int] = []
    settles: list[int] = []
    for _ in range(runs):
        gc.collect()
        for _ in range(n):
            a, s = await one()
            admits.append(a)
            settles.append(s)
    return statistics.median(admits) / 1000, statistics.median(settles) / 1000


async def measure(
    store_name: str, make_store: Callable[[], object], runs: int, n: int
) -> dict[str, tuple[float, float]]:
    from asgiref.sync import sync_to_async

    from providers.engine import Engine
    from providers.gateway.records import RequestRecord
    from providers.keys import KeyLimits
    from providers.snapshot import load_snapshot

    snapshot = await sync_to_async(load_snapshot)()
    entries = {e.name: e for e in snapshot.keys.values()}
    store = make_store()
    engine = Engine(limits=store)  # type: ignore[arg-type]
    limits = KeyLimits(engine, snapshot=lambda: snapshot)
    out: dict[str, tuple[float, float]] = {}
    client = getattr(store, "client", None)
    if client is not None:  # what one round trip to this Redis costs from here, for scale

        async def ping() -> tuple[int, int]:
            start = time.perf_counter_ns()
            await client.ping()
            return time.perf_counter_ns() - start, 0

        out["(a PING round trip)"] = await per_request(runs, n, ping)
    for name in KEYS:
        key = entries[name]
        record = RequestRecord(
            at=datetime.now(UTC),
            request_id="bench",
            route="bench",
            capability="chat",
            outcome="success",
            status=200,
            latency_ms=5.0,
            provider="upstream",
            model="bench-model",
            api_key_id=key.id,
            calls=1,
            tokens_in=12,
            tokens_out=7,
            cost=COST,
        )

        async def one(key=key, record=record) -> tuple[int, int]:  # type: ignore[no-untyped-def]
            start = time.perf_counter_ns()
            if key.limited:
                await limits.admit(key, "bench")
            admitted = time.perf_counter_ns()
            limits.settle(record)
            await limits.count()
            return admitted - start, time.perf_counter_ns() - admitted

        out[name] = await per_request(runs, n, one)
    await limits.flush()
    spent = await limits.spend(entries["budget+rpm"].id, "month")
    print(
        f"  [{store_name}] the budget+rpm key's spend this month as the store counts it: {spent} "
        f"({runs * n + max(n // 10, 10)} requests of {COST} here, plus what earlier stores wrote to the "
        f"database, which a new store's count starts from)"
    )
    close = getattr(store, "aclose", None)
    if close is not None:
        await close()
    return out


def clear_prefix(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        names = list(client.scan_iter(match=prefix + "*", count=1000))
        if names:
            client.delete(*names)
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="requests per run and key")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--redis-url", default=REDIS_URL, help="Redis on loopback (default: db 13)")
    parser.add_argument("--no-redis", action="store_true")
    args = parser.parse_args()
    setup_django()
    from providers.engine import RedisLimits
    from providers.engine.limits import LocalLimits
    from providers.models import ApiKey

    for name, fields in KEYS.items():
        ApiKey.issue(name, ["gateway"], **fields)

    prefix = f"bench-keys:{os.getpid()}:"
    stores: dict[str, Callable[[], object]] = {"in-process": LocalLimits}
    if not args.no_redis:
        stores["redis"] = lambda: RedisLimits.from_url(args.redis_url, prefix=prefix)
    print(
        f"API key limits per request, in process; Python {sys.version.split()[0]}, {args.runs} x {args.n} "
        f"requests per key and store, medians; load average {os.getloadavg()[0]:.2f}"
    )
    results: dict[str, dict[str, tuple[float, float]]] = {}
    try:
        for store_name, make in stores.items():
            results[store_name] = asyncio.run(measure(store_name, make, args.runs, args.n))
    finally:
        if not args.no_redis:
            clear_prefix(args.redis_url, prefix)
    print(
        "\n| store | key | admit µs | settle µs | admit + settle µs | added over unlimited µs "
        "(on the request's path: admit) |"
    )
    print("|---|---|---|---|---|---|")
    for store_name, by_key in results.items():
        base_admit, base_settle = by_key["unlimited"]
        for name, (admit, settle) in by_key.items():
            if name.startswith("("):
                print(f"| {store_name} | {name} | {admit:.1f} | | | |")
                continue
            added = (
                "—"
                if name == "unlimited"
                else (f"{admit + settle - base_admit - base_settle:+.1f} ({admit - base_admit:+.1f})")
            )
            print(f"| {store_name} | {name} | {admit:.1f} | {settle:.1f} | {admit + settle:.1f} | {added} |")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

"""What the Redis state store adds to a call.

Run: .venv/bin/python bench/engine/redis_run.py [--n 2000] [--url redis://127.0.0.1:6379/0]

The attempt function does nothing, so every figure is the engine plus its state store.
Steady states are the best of 5 runs of `n` calls (the other runs measure this machine's other
work). The outage figures start a private `redis-server` on a free loopback port, then shut it
down (connections refused) or freeze it with SIGSTOP (connections accepted, no answer), and
time every call from one request task per call, as the gateway makes them.

Goals (the tests assert the behaviour, these are the figures): while Redis hangs a call pays
at most one 50 ms operation timeout until the store's breaker opens (within about 0.6 s), then
under 2 ms; a breaker two workers open is refused by a third within 1 s, with or without
pub/sub (then the cache TTL decides).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from providers.engine import (
    AllTargetsFailed,
    BreakerPolicy,
    Engine,
    Outcome,
    RetryPolicy,
    RoutePolicy,
    TargetSpec,
    UpstreamError,
)
from providers.engine.outcome import classify_http
from providers.engine.redis_store import RedisStateStore

ROUTE = RoutePolicy("bench", max_attempts=1)
TARGET = TargetSpec(
    "a",
    "m",
    retry=RetryPolicy(max_attempts=1, throttle=False),
    breaker=BreakerPolicy(consecutive_failures=0, min_calls=10**9),
)
FAIL = UpstreamError(classify_http(503), status=503)


async def noop(target: TargetSpec, ctx: object) -> str:
    return "ok"


async def fail(target: TargetSpec, ctx: object) -> str:
    raise FAIL


async def call(engine: Engine, attempt: Callable[[TargetSpec, object], Awaitable[str]] = noop) -> None:
    with contextlib.suppress(AllTargetsFailed):
        await engine.execute(ROUTE, [TARGET], attempt)


async def best_of(runs: int, n: int, body: Callable[[], Awaitable[object]]) -> float:
    """Microseconds per call of `body`, best of `runs` runs of `n`."""
    best = float("inf")
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        for _ in range(n):
            await body()
        best = min(best, (time.perf_counter() - start) / n * 1e6)
    return best


async def store_on(url: str, name: str) -> RedisStateStore:
    store = RedisStateStore.from_url(url, prefix=f"bench:{uuid.uuid4().hex[:8]}:", reporter_id=name)
    if not await store.connect():
        raise SystemExit(f"Redis at {url} does not answer")
    return store


async def steady(url: str, n: int) -> list[tuple[str, str]]:
    figures: list[tuple[str, str]] = []
    local = Engine()
    store = await store_on(url, "bench")
    shared = Engine(store=store)
    for engine in (local, shared):
        await call(engine)
    t_local = await best_of(5, n, lambda: call(local))
    t_shared = await best_of(5, n, lambda: call(shared))
    figures.append(("call, success, local store", f"{t_local:8.1f} us"))
    figures.append(("call, success, Redis store (one count script)", f"{t_shared:8.1f} us"))
    figures.append(("  added by Redis per call", f"{t_shared - t_local:8.1f} us"))
    f_local = await best_of(5, n, lambda: call(local, fail))
    f_shared = await best_of(5, n, lambda: call(shared, fail))
    figures.append(("call, 503, added by Redis per call", f"{f_shared - f_local:8.1f} us"))
    breaker = shared.breaker_for(TARGET)
    check = await best_of(5, n * 10, _sync(breaker.check))
    figures.append(("  breaker.check() from the cache (no round trip)", f"{check:8.2f} us"))

    async def burst(engine: Engine) -> None:
        await asyncio.gather(*(call(engine) for _ in range(50)))

    b_local = await best_of(5, max(1, n // 50), lambda: burst(local)) / 50
    b_shared = await best_of(5, max(1, n // 50), lambda: burst(shared)) / 50
    figures.append(("50 concurrent calls, per call, local store", f"{b_local:8.1f} us"))
    figures.append(("50 concurrent calls, per call, Redis store (batched counts)", f"{b_shared:8.1f} us"))
    await store.aclose()
    return figures


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_redis(port: int, directory: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            directory,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(500):
        if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout.strip() == b"PONG":
            return proc
        time.sleep(0.01)
    raise SystemExit("redis-server did not start")


async def timeline(engine: Engine, seconds: float, concurrency: int = 4) -> list[tuple[float, float]]:
    """(start, latency) of every call made for `seconds` by `concurrency` loops."""
    samples: list[tuple[float, float]] = []
    stop = time.perf_counter() + seconds

    async def one() -> None:
        start = time.perf_counter()
        await call(engine)
        samples.append((start, time.perf_counter() - start))

    async def loop() -> None:
        while time.perf_counter() < stop:
            await asyncio.create_task(one())  # a task per request
            await asyncio.sleep(0.001)

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return samples


def describe(samples: list[float]) -> str:
    samples = sorted(samples)
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    return (
        f"{len(samples):5d} calls, median {statistics.median(samples) * 1000:7.3f} ms, "
        f"p99 {p99 * 1000:7.3f} ms, max {samples[-1] * 1000:7.3f} ms"
    )


async def outage() -> list[tuple[str, str]]:
    figures: list[tuple[str, str]] = []
    port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        proc = start_redis(port, directory)
        try:
            store = await store_on(f"redis://127.0.0.1:{port}/0", "bench-outage")
            engine = Engine(store=store)
            await call(engine)

            loop = asyncio.create_task(timeline(engine, 1.6))
            await asyncio.sleep(0.5)
            frozen = time.perf_counter()
            proc.send_signal(signal.SIGSTOP)
            await asyncio.sleep(0.8)
            proc.send_signal(signal.SIGCONT)
            thawed = time.perf_counter()
            samples = await loop
            up = [lat for start, lat in samples if start < frozen]
            during = [(start, lat) for start, lat in samples if frozen <= start < thawed]
            paid = [(start, lat) for start, lat in during if lat > 0.005]
            opened = max((s + lat for s, lat in paid), default=frozen)
            figures.append(("Redis up (4 loops, a task per call)", describe(up)))
            figures.append(
                (
                    f"Redis hung: until the store's breaker opened ({(opened - frozen) * 1000:.0f} ms)",
                    describe([lat for _, lat in paid]),
                )
            )
            figures.append(("Redis hung: breaker open", describe([lat for s, lat in during if s > opened])))
            reopened = time.perf_counter()
            await store.connect(timeout_s=5.0)
            figures.append(
                ("  thawed: shared state in use again after", f"{(time.perf_counter() - reopened) * 1000:.0f} ms")
            )

            cli = await asyncio.create_subprocess_exec(
                "redis-cli", "-p", str(port), "shutdown", "nosave", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            await cli.wait()
            await asyncio.to_thread(proc.wait, 5)
            samples = await timeline(engine, 0.5)
            figures.append(("Redis shut down (connections refused)", describe([lat for _, lat in samples])))
            await store.aclose()
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait(5)
    return figures


async def propagation(url: str, runs: int = 5) -> list[tuple[str, str]]:
    """How soon a third worker refuses a breaker that two others opened (the quorum rule): C
    hears the transition on pub/sub, D (no subscription) when its cache entry expires.
    Redis gets 250 ms per operation here: this measures propagation, and on a busy machine a
    50 ms timeout would measure the fallback to local state instead (the outage figures do)."""
    policy = BreakerPolicy(break_s=30.0, max_break_s=60.0, jitter=0.0).resolve(30.0)
    seen: dict[str, list[float]] = {"C": [], "D": []}
    for _ in range(runs):
        prefix = f"bench:{uuid.uuid4().hex[:8]}:"
        stores = {
            name: RedisStateStore.from_url(
                url, prefix=prefix, reporter_id=name, op_timeout_s=0.25, **({"subscribe": False} if name == "D" else {})
            )
            for name in "ABCD"
        }
        try:
            for store in stores.values():
                if not await store.connect():
                    raise SystemExit(f"Redis at {url} does not answer")
            engines = {name: Engine(store=store) for name, store in stores.items()}
            for name in "CD":  # they have used the key: its shared state is cached
                engines[name].breaker("p", policy).check()
            for _ in range(10_000):  # read in the background, within a few ms
                if all(stores[name].layers("p")[0] is not None for name in "CD"):
                    break
                await asyncio.sleep(0.001)
            for name, failures in (("A", 3), ("B", 2)):
                for _ in range(failures):
                    await engines[name].record("p", Outcome.FAILURE, 0.1, policy)
            tripped = time.perf_counter()
            waiting = {"C", "D"}
            while waiting and time.perf_counter() - tripped < 10.0:
                for name in sorted(waiting):
                    if engines[name].breaker("p").check() == "open":
                        seen[name].append(time.perf_counter() - tripped)
                        waiting.discard(name)
                await asyncio.sleep(0.001)
        finally:
            for store in stores.values():
                await store.aclose()
            await _delete_prefix(url, prefix)
    return [
        ("a third worker refuses a shared trip: with pub/sub", _spread(seen["C"], runs)),
        ("  without pub/sub (the cache TTL)", _spread(seen["D"], runs)),
    ]


def _spread(samples: list[float], runs: int) -> str:
    if not samples:
        return f"never within 10 s ({runs} runs)"
    samples = sorted(samples)
    return (
        f"median {statistics.median(samples) * 1000:7.1f} ms, max {samples[-1] * 1000:7.1f} ms "
        f"({len(samples)} of {runs} runs)"
    )


async def _delete_prefix(url: str, prefix: str) -> None:
    import redis.asyncio as aredis

    client = aredis.Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def _sync(fn: Callable[[], object]) -> Callable[[], Awaitable[object]]:
    async def body() -> object:
        return fn()

    return body


async def main(url: str, n: int) -> None:
    figures = await steady(url, n)
    figures += await propagation(url)
    figures += await outage()
    width = max(len(name) for name, _ in figures)
    print(f"Redis state store, n={n}, Python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.2f}")
    for name, value in figures:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--url", default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    asyncio.run(main(args.url, args.n))

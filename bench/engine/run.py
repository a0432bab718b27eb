"""The engine's own cost per attempt, in microseconds.

Run: .venv/bin/python bench/engine/run.py [--n 20000]

Every figure is the best of 7 runs of `n` sequential requests on the default asyncio loop
with the real clock. The attempt function does nothing (returns at once), so what is measured
is the engine: strategy ordering, breaker check and permit, cooldown and bulkhead bookkeeping,
retry budget, `asyncio.timeout`, outcome recording and events. The goal is < 20 us per attempt.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import contextlib

from providers.engine import (
    AllTargetsFailed,
    Engine,
    Outcome,
    RetryPolicy,
    RoutePolicy,
    TargetSpec,
    UpstreamError,
)
from providers.engine.outcome import classify_http
from providers.engine.strategies import order_targets


async def noop(target: TargetSpec, ctx: object) -> str:
    return "ok"


FAIL = UpstreamError(classify_http(503), status=503)


async def fail_a(target: TargetSpec, ctx: object) -> str:
    if target.provider == "a":
        raise FAIL
    return "ok"


async def timed(n: int, body: Callable[[], Awaitable[object]]) -> float:
    """Microseconds per call of `body`: the best of 7 runs of `n` (as timeit does: the other
    runs measure this machine's other work, not ours)."""
    runs = []
    for _ in range(7):
        gc.collect()
        start = time.perf_counter()
        for _ in range(n):
            await body()
        runs.append((time.perf_counter() - start) / n * 1e6)
    return min(runs)


async def main(n: int) -> None:
    one = [TargetSpec("a", "m")]
    two = [TargetSpec("a", "m", retry=RetryPolicy(max_attempts=1)), TargetSpec("b", "m")]
    route = RoutePolicy("bench")
    figures: list[tuple[str, float]] = []

    baseline = await timed(n, lambda: noop(one[0], None))
    figures.append(("baseline: await the no-op call alone", baseline))

    engine = Engine(rng=random.Random(1))
    plain = await timed(n, lambda: engine.execute(route, one, noop))
    figures.append(("execute, 1 target, success (engine cost per attempt)", plain - baseline))

    hooked = Engine(rng=random.Random(1))
    seen: list[object] = []
    hooked.subscribe(lambda e: seen.append(e) if len(seen) < 1000 else None)
    figures.append(
        ("  same, with an event hook subscribed", await timed(n, lambda: hooked.execute(route, one, noop)) - baseline)
    )

    for strategy in ("round_robin", "weighted", "least_latency"):
        r = RoutePolicy("bench-" + strategy, strategy=strategy)
        five = [TargetSpec(f"p{i}", "m", weight=i + 1) for i in range(5)]
        figures.append(
            (
                f"  same, strategy {strategy} over 5 targets",
                await timed(n, lambda r=r, five=five: engine.execute(r, five, noop)) - baseline,
            )
        )

    failing = Engine(rng=random.Random(1))
    await failing.set_mode("a", "disabled")  # keep "a" failing without its breaker opening
    figures.append(
        (
            "execute, a fails (503) then b serves: per attempt",
            (await timed(n // 2, lambda: failing.execute(route, two, fail_a)) - 2 * baseline) / 2,
        )
    )

    opened = Engine(rng=random.Random(1))
    for _ in range(5):
        await opened.record("a", Outcome.FAILURE, 0.01)
    with_skip = await timed(n, lambda: opened.execute(route, two, noop))
    only_b = await timed(n, lambda: opened.execute(route, two[1:], noop))
    figures.append(("skipping an open target inside a chain (added cost)", with_skip - only_b))
    breaker = opened.breaker_for(two[0])
    figures.append(("  breaker.check() on an open breaker", await timed(n, _sync(breaker.check))))

    closed_all = Engine(rng=random.Random(1))
    for _ in range(5):
        await closed_all.record("a", Outcome.FAILURE, 0.01)

    async def all_open() -> None:
        with contextlib.suppress(AllTargetsFailed):
            await closed_all.execute(route, two[:1], noop)

    figures.append(("execute, only target open (fail fast, whole request)", await timed(n, all_open)))

    latency = engine.latency
    five = [TargetSpec(f"p{i}", "m") for i in range(5)]
    for strategy in ("priority", "weighted", "least_latency", "health_score"):
        figures.append(
            (
                f"order_targets {strategy}, 5 targets",
                await timed(
                    n,
                    _sync(
                        lambda s=strategy: order_targets(s, five, scores={}, latency=latency, turn=0, rng=engine.rng)
                    ),
                ),
            )
        )

    width = max(len(name) for name, _ in figures)
    print(
        f"engine cost per attempt, n={n}, Python {sys.version.split()[0]}, best of 7 runs, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    for name, us in figures:
        print(f"{name:<{width}}  {us:7.2f} us")


def _sync(fn: Callable[[], object]) -> Callable[[], Awaitable[object]]:
    async def body() -> object:
        return fn()

    return body


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    asyncio.run(main(parser.parse_args().n))

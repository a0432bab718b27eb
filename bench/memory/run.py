"""Memory of one gateway worker: idle, across a soak of N requests, and with 1,000 providers.

    .venv/bin/python -m bench.memory.run [--server uvicorn] [--requests 100000] [--providers 1000]

Starts the fast fake upstream (bench/upstream.py) and `manage.py serve --no-embedded` (the
server named, or the project's default) on a fresh SQLite database, request logging on, then
reads the worker's RSS (/proc/<pid>/status, VmRSS):

1. idle: once it answers /healthz, before any gateway request, and after the first one
   (which loads the configuration's snapshot);
2. soak: N `POST /v1/chat/completions` at concurrency 32, RSS after each of `--steps`
   steps; growth is the end against the first step (pools, caches and the allocator's
   arenas have grown to their working size by then);
3. wide: a second worker whose configuration has `--providers` OpenAI-compatible providers
   (bench/monitor's generator: every one pointed at the upstream) and one route for each ten
   of the first `--routed`; its RSS idle and after N/10 requests spread over its routes.

`--routed` is 1,000 by default: every provider of the default configuration is on a route
(routes over 1,000+ providers load on SQLite: `Route.objects.with_targets()`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.gateway import subjects as sj  # noqa: E402
from bench.load import run_load  # noqa: E402
from bench.processes import rss_mib  # noqa: E402

CHAT = {"messages": [{"role": "user", "content": "Say hello."}]}


def wide_config(upstream: str, providers: int, routed: int) -> str:
    names = [f"p{i:04d}" for i in range(providers)]
    doc = {
        "providers": [
            {
                "name": name,
                "kind": "openai",
                "models": ["bench-model"],
                "base_url": upstream + "/v1",
                "retry": {"max_attempts": 1},
                "timeout_s": 10,
                "health_check": {"interval_s": 3600, "timeout_s": 5},
            }
            for name in names
        ],
        "routes": [
            {
                "name": f"r{i // 10:03d}",
                "targets": [{"provider": name, "model": "bench-model"} for name in names[i : i + 10]],
            }
            for i in range(0, min(routed, providers), 10)
        ],
    }
    return json.dumps(doc)


def body(route: str) -> bytes:
    return json.dumps({"model": route, **CHAT}).encode()


async def soak(subject: sj.Subject, routes: list[str], requests: int, steps: int) -> list[tuple[int, float, float]]:
    """(requests so far, RSS MiB, req/s of the step) after each step of requests / steps."""
    out = []
    done = 0
    per_step = max(requests // steps, 1)
    for i in range(steps):
        route = routes[i % len(routes)]
        result = await run_load(
            subject.chat_url, body(route), concurrency=32, requests=per_step, headers=subject.headers, warmup=0
        )
        if result.failures:
            raise SystemExit(f"{result.failures} requests failed: {result.statuses}, {result.errors} errors")
        done += per_step
        out.append((done, rss_mib(subject.proc.pid), result.rps))
    return out


def settle(subject: sj.Subject, route: str) -> tuple[float, float]:
    """RSS once started, and after one request (which loads the configuration's snapshot)."""
    time.sleep(2)  # let start-up work finish
    started = rss_mib(subject.proc.pid)
    httpx.post(
        subject.chat_url,
        content=body(route),
        headers={**subject.headers, "Content-Type": "application/json"},
        timeout=30,
    ).raise_for_status()
    time.sleep(1)
    return started, rss_mib(subject.proc.pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", choices=["uvicorn", "daphne"], help="default: the project's (ASGI_SERVER)")
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--providers", type=int, default=1000)
    parser.add_argument("--routed", type=int, default=1000, help="providers that are targets of routes")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()

    upstream = sj.start_upstream(200)
    started = [upstream]
    try:
        env, key = sj.prepare_gateway(upstream.base)
        one = sj.start_gateway(args.server, env, key)
        started.append(one)
        idle, first = settle(one, "bench")
        t0 = time.monotonic()
        series = asyncio.run(soak(one, ["bench"], args.requests, args.steps))
        soak_s = time.monotonic() - t0
        one.stop()

        t0 = time.monotonic()
        wide_env, wide_key = sj.prepare_gateway(upstream.base, wide_config(upstream.base, args.providers, args.routed))
        setup_s = time.monotonic() - t0
        wide = sj.start_gateway(args.server, wide_env, wide_key)
        started.append(wide)
        routes = [f"r{i:03d}" for i in range(max(min(args.routed, args.providers) // 10, 1))]
        wide_idle, wide_first = settle(wide, routes[0])
        wide_series = asyncio.run(soak(wide, routes, max(args.requests // 10, 1), args.steps))
    finally:
        for subject in reversed(started):
            subject.stop()

    server = args.server or "default server"
    print(f"one worker ({server}, --no-embedded), RSS in MiB")
    print(f"  idle, 3 providers:                        {idle:7.1f}")
    print(f"  after its first request:                  {first:7.1f}")
    for done, rss, rps in series:
        print(f"  after {done:>7,} requests at c=32:        {rss:7.1f}   ({rps:,.0f} req/s)")
    early, last = series[0][1], series[-1][1]
    print(
        f"  growth from the first step to the end:    {last - early:+7.1f} ({(last - early) / early:+.1%}); "
        f"{args.requests:,} requests in {soak_s:.0f} s"
    )
    print(
        f"  idle, {args.providers} providers, {len(routes)} routes:       {wide_idle:7.1f}  "
        f"(configured in {setup_s:.0f} s)"
    )
    print(
        f"  after its first request:                  {wide_first:7.1f}  ({wide_first - first:+.1f} over 3 providers)"
    )
    for done, rss, rps in wide_series[-1:]:
        print(f"  after {done:>7,} requests over its routes:  {rss:7.1f}   ({rps:,.0f} req/s)")


if __name__ == "__main__":
    main()

"""Our gateway beside a direct call, the bare pass-through floors and other gateways.

    .venv/bin/python -m bench.gateway.run [--servers uvicorn daphne] [--peers portkey litellm]
        [--requests 3000] [--stream-requests 300] [--rounds 3] [--max-seconds 30]
        [--no-floor] [--details] [--json out.json]
        [--paths messages responses cache keys keys-redis]
        [--stream-only] [--baseline /path/to/another/copy]

Starts, on loopback, a fast fake OpenAI upstream (bench/upstream.py: a fixed completion at once,
or 200 server-sent chunks for `"stream": true`) and, each pointed at it:

- bare-<server>: the bare pass-through (bench/gateway/bare.py), the floor of the same server;
- gateway-<server>: this gateway (`manage.py serve --no-embedded`, fresh SQLite database,
  request logging on) with route `bench` (one target), `failover` (the first target refuses
  connections, its breaker off, so every request tries it) and `skip` (the first target's
  breaker forced open);
- the peers (bench/gateway/peers.py): Portkey's gateway (Node), LiteLLM's proxy.

All of them run for the whole run. Then, in each round, every subject in turn:
`POST /v1/chat/completions` with the closed-loop load generator of bench/load.py, N requests
at concurrency 1, 2N at 32, and S streamed requests at 1 and 2S at 32 (time to the first
event; events relayed per second); for the gateway also `failover` and `skip` at 1. No phase
starts a request after `--max-seconds` (LiteLLM, at a few streams a second, is measured on
fewer). A figure is the median over the rounds; "added" is a p50 minus the direct p50; CPU
is the subject's processes' CPU per request, warm-up included. Client, servers and upstream
share this machine's cores: compare ratios from one run. The peers are installed on first use
(bench/gateway/peers.py).

`--paths` adds, for each gateway and in the same rounds, the newer paths at c=1 (N requests)
and c=32 (2N), each beside the plain chat path of the same run (its ratio to it; goal: within
10 %): `messages` (`POST /v1/messages`, Anthropic's format translated to the OpenAI upstream),
`responses` (`POST /v1/responses`), `cache` (route `cached`, `cache: {ttl_s: 3600}`, the same
body every time: the warm-up's first request is the only miss), `keys` (`POST
/v1/chat/completions` under a key with a monthly budget and an rpm limit no run reaches,
in-process counts), `keys-redis` (the same under a second gateway process on the same
database with REDIS_URL=--redis-url and SHARED_STATE=true, measured on the plain chat path
too). With --paths, the upstream's model has prices (a keyed request's spend is real).
Without it, the run is what it was.

`--stream-only` measures the streamed phases alone and prints them with each subject's CPU
per stream at c=32. `--baseline DIR` also starts the gateway from another copy of the project
(the code before a change, say), on the same database, measured in the same rounds: a change
measured beside what it changed, interleaved, on a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.gateway import subjects as sj  # noqa: E402
from bench.load import LoadResult, run_load, run_stream_load  # noqa: E402
from bench.processes import tree_cpu_seconds  # noqa: E402

MESSAGES = [{"role": "user", "content": "Say hello."}]
PATHS = ("messages", "responses", "cache", "keys", "keys-redis")
REDIS_URL = "redis://127.0.0.1:6379/13"


def body(route: str, stream: bool = False) -> bytes:
    data: dict[str, object] = {"model": route, "messages": MESSAGES}
    if stream:
        data["stream"] = True
    return json.dumps(data).encode()


def request_for(subject: sj.Subject, phase: str) -> tuple[str, bytes, dict[str, str]]:
    """What a non-streamed phase sends: (url, body, headers). `<path>-1` / `<path>-32` are
    the --paths cases; `keys-*` on a gateway under Redis is its keys-redis case."""
    name = phase.rsplit("-", 1)[0] if "-" in phase else "chat"
    if name == "messages":
        anthropic = {"model": "bench", "max_tokens": 256, "messages": MESSAGES}
        return (
            subject.base + "/v1/messages",
            json.dumps(anthropic).encode(),
            {**subject.headers, "anthropic-version": "2023-06-01"},
        )
    if name == "responses":
        return (
            subject.base + "/v1/responses",
            json.dumps({"model": "bench", "input": "Say hello."}).encode(),
            subject.headers,
        )
    if name == "cache":
        return subject.chat_url, body(sj.CACHED_ROUTE), subject.headers
    if name == "keys":
        return subject.chat_url, body("bench"), subject.limited_headers
    route = name if name in ("failover", "skip") else "bench"
    return subject.chat_url, body(route), subject.headers


@dataclass
class Plan:
    requests: int
    stream_requests: int
    warmup: int = 100
    max_seconds: float | None = None


@dataclass
class Figures:
    """One subject's results: phase -> one LoadResult per round."""

    runs: dict[str, list[LoadResult]] = field(default_factory=dict)

    def add(self, phase: str, result: LoadResult) -> None:
        self.runs.setdefault(phase, []).append(result)

    def has(self, phase: str) -> bool:
        return phase in self.runs

    def median(self, phase: str, value: Callable[[LoadResult], float | None]) -> float:
        values = [v for v in (value(r) for r in self.runs.get(phase, [])) if v is not None]
        return statistics.median(values) if values else float("nan")

    def failures(self) -> int:
        return sum(r.failures for results in self.runs.values() for r in results)


async def measure(subject: sj.Subject, plan: Plan, phase: str, figures: Figures) -> None:
    stream = phase.startswith("stream")
    c = 32 if phase.endswith("32") else 1
    pid = subject.proc.pid
    before = tree_cpu_seconds(pid)
    if stream:
        n = plan.stream_requests * (2 if c == 32 else 1)
        warmup = max(plan.warmup // 5, 4)
        result = await run_stream_load(
            subject.chat_url,
            body("bench", True),
            concurrency=c,
            requests=n,
            headers=subject.headers,
            warmup=warmup,
            max_seconds=plan.max_seconds,
        )
    else:
        n = plan.requests * (2 if c == 32 else 1)
        warmup = plan.warmup
        url, data, headers = request_for(subject, phase)
        result = await run_load(
            url, data, concurrency=c, requests=n, headers=headers, warmup=warmup, max_seconds=plan.max_seconds
        )
    # the warm-up's CPU is included: spread over warm-up + measured requests
    result.cpu_ms = (tree_cpu_seconds(pid) - before) * 1000 / (result.requests + warmup)
    figures.add(phase, result)


PHASES = ("c1", "c32", "stream1", "stream32")


def path_phases(paths: list[str]) -> tuple[str, ...]:
    """The --paths phases of the gateway without Redis (keys-redis has a subject of its own)."""
    return tuple(f"{p}-{c}" for p in paths if p != "keys-redis" for c in (1, 32))


async def one_round(
    order: list[sj.Subject],
    plan: Plan,
    figures: dict[str, Figures],
    paths: tuple[str, ...] = (),
    phases: tuple[str, ...] = PHASES,
) -> None:
    for subject in order:
        if subject.phases is not None:
            for phase in subject.phases:
                await measure(subject, plan, phase, figures[subject.name])
            continue
        for phase in phases:
            await measure(subject, plan, phase, figures[subject.name])
        if "failover" in subject.routes and phases == PHASES:
            await measure(subject, plan, "failover-1", figures[subject.name])
            await measure(subject, plan, "skip-1", figures[subject.name])
            for phase in paths:
                await measure(subject, plan, phase, figures[subject.name])


def rps(r: LoadResult) -> float:
    return r.rps


def p50(r: LoadResult) -> float:
    return r.p50


def ttfb(r: LoadResult) -> float:
    return r.ttfb_p50


def events_per_s(r: LoadResult) -> float:
    return r.events_per_s


def cpu(r: LoadResult) -> float | None:
    return r.cpu_ms


def ratio(a: float, b: float) -> float:
    return a / b if b and b == b else float("nan")


def detail(name: str, f: Figures) -> None:
    print(f"  {name}")
    for phase, results in f.runs.items():
        for i, r in enumerate(results):
            extra = (
                f"  ttfb p50 {r.ttfb_p50:6.2f} ms  {r.events_per_s:8.0f} chunks/s  "
                f"({r.events / max(r.requests, 1):.0f} per stream)"
                if r.ttfb_ms
                else ""
            )
            print(
                f"    r{i + 1} {phase:<10} n={r.requests:<6} {r.rps:8.0f} req/s  p50 {r.p50:7.2f}  p95 {r.pct(95):7.2f}  "
                f"p99 {r.pct(99):7.2f} ms  cpu {r.cpu_ms or 0:5.2f} ms/req  non-200 {r.failures}{extra}"
            )


def table(order: list[sj.Subject], figures: dict[str, Figures]) -> list[str]:
    direct = figures["direct"]
    d_p50 = direct.median("c1", p50)
    d_ttfb = direct.median("stream1", ttfb)
    lines = [
        "| | c=1 req/s | added p50 at c=1 | c=32 req/s | stream: TTFB added p50 at c=1 "
        "| chunks/s at c=1 | chunks/s at c=32 | CPU ms/req at c=32 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in order:
        if s.phases is not None:
            continue  # measured on a few phases only: in the paths table
        f = figures[s.name]
        is_direct = s.name == "direct"
        added = "—" if is_direct else f"{f.median('c1', p50) - d_p50:+.2f} ms"
        t_added = f"— ({d_ttfb:.2f} ms)" if is_direct else f"{f.median('stream1', ttfb) - d_ttfb:+.2f} ms"
        label = f"**{s.label}**" if s.name.startswith("gateway") else s.label
        flag = f" ({f.failures()} non-200!)" if f.failures() else ""
        lines.append(
            f"| {label}{flag} | {f.median('c1', rps):,.0f} | {added} | {f.median('c32', rps):,.0f} "
            f"| {t_added} | {f.median('stream1', events_per_s):,.0f} "
            f"| {f.median('stream32', events_per_s):,.0f} | {f.median('c32', cpu):.2f} |"
        )
    return lines


def stream_table(order: list[sj.Subject], figures: dict[str, Figures]) -> list[str]:
    """--stream-only: the streamed phases, with the subject's CPU per stream at c=32 (a figure
    less moved by other work on the machine than chunks per second)."""
    d_ttfb = figures["direct"].median("stream1", ttfb)
    lines = [
        "| | TTFB added p50 at c=1 | chunks/s at c=1 | chunks/s at c=32 | CPU ms/stream at c=32 |",
        "|---|---|---|---|---|",
    ]
    for s in order:
        f = figures[s.name]
        t_added = f"— ({d_ttfb:.2f} ms)" if s.name == "direct" else f"{f.median('stream1', ttfb) - d_ttfb:+.2f} ms"
        flag = f" ({f.failures()} non-200!)" if f.failures() else ""
        lines.append(
            f"| {s.label}{flag} | {t_added} | {f.median('stream1', events_per_s):,.0f} "
            f"| {f.median('stream32', events_per_s):,.0f} | {f.median('stream32', cpu):.2f} |"
        )
    return lines


def goals(servers: list[str], figures: dict[str, Figures]) -> list[str]:
    d = figures["direct"]
    d_p50, d_ttfb = d.median("c1", p50), d.median("stream1", ttfb)
    peer = figures.get("portkey")
    out = []
    for server in servers:
        g = figures.get(f"gateway-{server}")
        if g is None:
            continue
        g_added = g.median("c1", p50) - d_p50
        out.append(f"gateway under {server}:")
        if peer is not None:
            p_added = peer.median("c1", p50) - d_p50
            r32 = ratio(g.median("c32", rps), peer.median("c32", rps))
            out.append(f"  c=32 throughput vs Portkey: {r32:.2f}x (goal >= 1.5x: {'met' if r32 >= 1.5 else 'NOT met'})")
            out.append(
                f"  added p50 at c=1: {g_added:+.2f} ms vs Portkey's {p_added:+.2f} ms "
                f"(goal <=: {'met' if g_added <= p_added else 'NOT met'})"
            )
            s_ratio = ratio(g.median("stream32", events_per_s), peer.median("stream32", events_per_s))
            out.append(
                f"  stream: TTFB added {g.median('stream1', ttfb) - d_ttfb:+.2f} ms vs Portkey's "
                f"{peer.median('stream1', ttfb) - d_ttfb:+.2f} ms; chunks/s at c=32 {s_ratio:.2f}x Portkey's, "
                f"{ratio(g.median('stream32', events_per_s), d.median('stream32', events_per_s)):.2f}x direct"
            )
        floor = figures.get(f"bare-{server}")
        if floor is not None:
            f32 = ratio(g.median("c32", rps), floor.median("c32", rps))
            f1 = ratio(g.median("c1", rps), floor.median("c1", rps))
            out.append(
                f"  share of the bare {server} floor: c=32 {f32:.0%}, c=1 {f1:.0%} "
                f"(goal >= 80%: {'met' if min(f32, f1) >= 0.8 else 'NOT met'})"
            )
        failover = g.median("failover-1", p50) - g.median("c1", p50)
        skip = g.median("skip-1", p50) - g.median("c1", p50)
        out.append(
            f"  failover from a refused connection adds {failover:+.2f} ms p50 "
            f"(goal <= 3 ms: {'met' if failover <= 3 else 'NOT met'}); skipping an open breaker {skip:+.2f} ms"
        )
    return out


PATH_LABELS = {
    "chat": "`POST /v1/chat/completions` (the plain chat path: the baseline)",
    "messages": "`POST /v1/messages` (Anthropic format, translated to the OpenAI upstream)",
    "responses": "`POST /v1/responses`",
    "cache": "cache hit (route `cache: {ttl_s: 3600}`, same body)",
    "keys": "key with budget + rpm limit, in-process counts",
    "chat-redis": "plain chat, gateway under REDIS_URL (breakers and limits in Redis)",
    "keys-redis": "key with budget + rpm limit, counts in Redis",
}


def paths_table(servers: list[str], paths: list[str], figures: dict[str, Figures]) -> list[str]:
    """Each path beside the plain chat path of the same gateway and run: added p50 at c=1
    (over direct), req/s at c=32, the gateway's CPU per request at c=32, and their ratios
    to the chat path's (goal: within 10 %)."""
    d_p50 = figures["direct"].median("c1", p50)
    lines = []
    for server in servers:
        g = figures.get(f"gateway-{server}")
        if g is None:
            continue
        r = figures.get(f"gateway-{server}-redis")
        base_added, base_rps, base_cpu = g.median("c1", p50) - d_p50, g.median("c32", rps), g.median("c32", cpu)
        lines += [
            f"gateway under {server}: each path against the plain chat path of the same run",
            "| path | added p50 at c=1 | × chat's | c=32 req/s | × chat's | CPU ms/req at c=32 | × chat's |",
            "|---|---|---|---|---|---|---|",
        ]
        rows: list[tuple[str, Figures, str, str]] = [("chat", g, "c1", "c32")]
        rows += [(p, g, f"{p}-1", f"{p}-32") for p in paths if p != "keys-redis"]
        if r is not None:
            rows += [("chat-redis", r, "c1", "c32"), ("keys-redis", r, "keys-1", "keys-32")]
        for name, f, one, many in rows:
            added, r32, c32 = f.median(one, p50) - d_p50, f.median(many, rps), f.median(many, cpu)
            flag = (
                f" ({f.failures()} non-200 on this subject!)" if f.failures() and name in ("chat", "chat-redis") else ""
            )
            same = name == "chat"
            lines.append(
                f"| {PATH_LABELS[name]}{flag} | {added:+.2f} ms | {'—' if same else f'{ratio(added, base_added):.2f}'} "
                f"| {r32:,.0f} | {'—' if same else f'{ratio(r32, base_rps):.2f}'} "
                f"| {c32:.2f} | {'—' if same else f'{ratio(c32, base_cpu):.2f}'} |"
            )
        if r is not None:
            k_added = r.median("keys-1", p50) - d_p50
            c_added = r.median("c1", p50) - d_p50
            lines.append(
                f"keys-redis against chat on the same Redis gateway: added p50 {ratio(k_added, c_added):.2f}x, "
                f"c=32 req/s {ratio(r.median('keys-32', rps), r.median('c32', rps)):.2f}x, "
                f"CPU {ratio(r.median('keys-32', cpu), r.median('c32', cpu)):.2f}x"
            )
        lines.append("")
    return lines


def check_paths(subject: sj.Subject, paths: list[str]) -> None:
    """Each case answers 200 once (and the cache case is a hit by its second request), so a
    broken case fails the run before it is measured rather than being timed as fast 4xx."""
    for p in paths:
        if p == "keys-redis":
            continue
        url, data, headers = request_for(subject, f"{p}-1")
        for _ in range(2):
            answer = httpx.post(url, content=data, headers={"Content-Type": "application/json", **headers}, timeout=30)
            if answer.status_code != 200:
                raise RuntimeError(f"--paths {p}: {answer.status_code} {answer.text[:300]}")
        if p == "cache" and answer.headers.get("X-Gateway-Cache") != "hit":
            raise RuntimeError(f"--paths cache: X-Gateway-Cache {answer.headers.get('X-Gateway-Cache')!r}, not hit")


def clear_redis_db(url: str) -> None:
    """Empty the bench's own Redis database (the number in --redis-url, 13 by default)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--servers", "--server", nargs="+", default=["uvicorn", "daphne"], choices=["uvicorn", "daphne"]
    )
    parser.add_argument("--peers", nargs="*", default=["portkey", "litellm"], choices=["portkey", "litellm"])
    parser.add_argument("--no-floor", action="store_true", help="leave out the bare pass-through floors")
    parser.add_argument("--requests", type=int, default=3000, help="N: requests at c=1 (2N at c=32)")
    parser.add_argument("--stream-requests", type=int, default=300, help="S: streams at c=1 (2S at c=32)")
    parser.add_argument("--stream-chunks", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=30,
        help="start no request of a phase after this long (LiteLLM is measured on fewer)",
    )
    parser.add_argument(
        "--stream-only", action="store_true", help="measure the streamed phases only (stream1, stream32)"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="also run the gateway from this copy of the project (same database), measured beside it",
    )
    parser.add_argument("--rounds", type=int, default=1, help="measure every subject this many times, interleaved")
    parser.add_argument("--json", type=Path, help="also write every run's figures here")
    parser.add_argument("--details", action="store_true", help="print every run's figures")
    parser.add_argument(
        "--paths", nargs="*", default=[], choices=PATHS, help="also measure these paths on each gateway (see above)"
    )
    parser.add_argument(
        "--redis-url",
        default=REDIS_URL,
        help="keys-redis: this Redis database, emptied before the run (default: db 13 on loopback)",
    )
    args = parser.parse_args()
    plan = Plan(args.requests, args.stream_requests, args.warmup, args.max_seconds)

    started: list[sj.Subject] = []
    try:
        upstream = sj.start_upstream(args.stream_chunks)
        started.append(upstream)
        for server in [] if args.no_floor else args.servers:
            started.append(sj.start_bare(server, upstream.base))
        env, key = sj.prepare_gateway(upstream.base, paths=bool(args.paths))
        limited = {"Authorization": f"Bearer {sj.create_limited_key(env)}"} if args.paths else {}
        if "keys-redis" in args.paths:
            clear_redis_db(args.redis_url)
        for server in args.servers:
            gateway = sj.start_gateway(server, env, key)
            gateway.limited_headers = limited
            started.append(gateway)
            sj.open_skip_target(gateway)
            check_paths(gateway, args.paths)
            if args.baseline is not None:
                started.append(sj.start_gateway(server, env, key, tree=args.baseline.resolve()))
            if "keys-redis" in args.paths:
                shared = sj.start_gateway(server, env, key, redis_url=args.redis_url)
                shared.limited_headers = limited
                shared.phases = ("c1", "c32", "keys-1", "keys-32")
                started.append(shared)
                check_paths(shared, ["keys"])
        starters = {"portkey": sj.start_portkey, "litellm": sj.start_litellm}
        for peer in args.peers:
            started.append(starters[peer](upstream.base))
        print(
            f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; client, servers and "
            f"upstream share them. {args.requests} requests at c=1, {2 * args.requests} at c=32, "
            f"{args.stream_requests} streams of {args.stream_chunks} chunks at c=1, "
            f"{2 * args.stream_requests} at c=32; {args.rounds} round(s), medians",
            flush=True,
        )
        figures = {s.name: Figures() for s in started}
        for i in range(args.rounds):
            phases = ("stream1", "stream32") if args.stream_only else PHASES
            asyncio.run(one_round(started, plan, figures, path_phases(args.paths), phases))
            print(f"round {i + 1} done, load average {os.getloadavg()[0]:.2f}", flush=True)
    finally:
        for subject in reversed(started):
            subject.stop()
    if args.details:
        for s in started:
            detail(s.name, figures[s.name])
    print()
    if args.stream_only:
        print("\n".join(stream_table(started, figures)))
    else:
        print("\n".join(table(started, figures)))
        print()
        print("\n".join(goals(args.servers, figures)))
    if args.paths:
        print()
        print("\n".join(paths_table(args.servers, args.paths, figures)))
    if args.json:
        args.json.write_text(
            json.dumps(
                {name: {phase: [r.row() for r in rs] for phase, rs in f.runs.items()} for name, f in figures.items()},
                indent=1,
            )
        )


if __name__ == "__main__":
    main()

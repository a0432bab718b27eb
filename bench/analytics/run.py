"""Analytics at ten million rows, and what request logging costs the gateway.

    .venv/bin/python bench/analytics/run.py [--rows 10000000] [--db PATH] [--runs 5]
                                            [--requests 4000] [--skip-queries] [--skip-throughput]

1. Queries. Seeds `--rows` requests over 30 days (`manage.py seed_analytics`) into a SQLite
   file of its own (bench/analytics/.data/, reused while it holds that many rows; the
   developer's db.sqlite3 is never touched), then times, as medians of `--runs` x 10 calls:
   - `GET /api/analytics?window=W` on the real server (`manage.py serve`), per window;
   - `analytics.queries.page(W)`, everything the console's /analytics page shows, in process.
   Goal: <= 200 ms each.
2. Logging's cost. A fresh database, the fast fake upstream (bench/upstream.py) and the real
   server; `POST /v1/chat/completions` at concurrency 32 with the closed-loop load generator
   (bench/load.py), with ANALYTICS_ENABLED true and false, alternating, `--runs` times each.
   Prints the median requests/s of each and the gateway process's CPU per request (steadier
   on a shared machine). Goal: logging costs <= 10% of throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.load import run_load  # noqa: E402
from bench.processes import cpu_seconds, wait_up  # noqa: E402
from tests.fakes.base import free_port  # noqa: E402

DATA = Path(__file__).resolve().parent / ".data"
WINDOWS = ("5m", "1h", "24h", "7d", "30d")
CHAT = json.dumps({"model": "bench", "messages": [{"role": "user", "content": "Say hello."}]}).encode()


def environment(database: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))}
    env.update(
        {
            "DATABASE_URL": f"sqlite:///{database}",
            "SECRET_KEY": "bench-" + "x" * 40,
            "NO_DEMO": "1",
            "LOG_LEVEL": "WARNING",
            "MONITOR_EMBEDDED": "false",
            **extra,
        }
    )
    return env


def manage(env: dict[str, str], *args: str, stream: bool = False) -> str:
    if stream:  # show the seed's progress as it goes
        subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True)
        return ""
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout


def serve(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port), "--no-embedded"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_up(url + "/healthz", proc)
    return proc, url


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def seeded_rows(database: Path) -> tuple[int, datetime | None]:
    """How many request rows the file holds (by id) and when the newest was made."""
    import sqlite3

    if not database.exists():
        return 0, None
    with sqlite3.connect(database) as db:
        try:
            count, newest = db.execute("SELECT COALESCE(MAX(id), 0), MAX(at) FROM analytics_requestlog").fetchone()
        except sqlite3.OperationalError:
            return 0, None
    return count, datetime.fromisoformat(newest).replace(tzinfo=UTC) if newest else None


def median_ms(fn, runs: int) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm-up: imports, connection, SQLite page cache
    times = []
    for _ in range(runs * 10):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def ensure_seeded(rows: int, database: Path, env: dict[str, str]) -> None:
    """Seed `rows` into `database` unless it holds that many (then top it up to now), and
    migrate it (a file seeded before a migration gets it: the request log's indexes)."""
    count, newest = seeded_rows(database)
    if count < rows:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
        database.parent.mkdir(parents=True, exist_ok=True)
        manage(env, "migrate", "--noinput")
        print(f"seeding {rows:,} rows into {database} ...")
        started = time.monotonic()
        manage(env, "seed_analytics", "--rows", str(rows), "--days", "30", stream=True)
        print(f"seeded in {time.monotonic() - started:.0f} s")
    else:
        print(f"reusing {database} ({count:,} rows)")
        gap = datetime.now(UTC) - newest if newest else timedelta(0)
        if gap > timedelta(minutes=2):
            # history ends when it was seeded: top it up to now at the same rate (10M over 30
            # days), so the 5m, 1h and 24h windows hold as much as they would have
            more = round(rows * gap / timedelta(days=30))
            print(f"topping up the last {gap.total_seconds() / 3600:.1f} h with {more:,} rows")
            manage(
                env,
                "seed_analytics",
                "--rows",
                str(more),
                "--days",
                f"{gap / timedelta(days=1):.6f}",
                "--seed",
                str(int(time.time())),
            )
        manage(env, "migrate", "--noinput")
    print(f"database file: {database.stat().st_size / 1e9:.2f} GB")


def queries(rows: int, database: Path, runs: int) -> None:
    env = environment(database)
    ensure_seeded(rows, database, env)
    key = manage(env, "create_api_key", f"bench-{os.getpid()}", "--scopes", "read").strip().splitlines()[-1]
    proc, url = serve(env)
    try:
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            print(f"\nGET /api/analytics (real server, median of {runs * 10})")
            for window in WINDOWS:

                def call(w: str = window) -> None:
                    client.get("/api/analytics", params={"window": w}).raise_for_status()

                print(f"  window={window:<4} {median_ms(call, runs):7.1f} ms")
            answer = client.get("/api/analytics", params={"window": "30d"}).json()
            print(
                f"  30d total: {answer['total']['requests']:,} requests, "
                f"success rate {answer['total']['success_rate']}, p95 {answer['total']['latency_ms']['p95']} ms"
            )
            detail = f"/api/analytics/{next(iter(answer['providers']))}"

            def provider(w: str = "30d") -> None:
                client.get(detail, params={"window": w}).raise_for_status()

            print(f"  {detail}?window=30d {median_ms(provider, runs):7.1f} ms")
    finally:
        stop(proc)

    os.environ.update(env)
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    django.setup()
    from analytics import queries as q

    print(f"\nanalytics.queries.page(window) in process (the console page's query; median of {runs * 10})")
    for window in WINDOWS:
        print(f"  window={window:<4} {median_ms(lambda w=window: q.page(w), runs):7.1f} ms")


def bench_config(upstream: str) -> str:
    return json.dumps(
        {
            "providers": [
                {
                    "name": "upstream",
                    "kind": "openai",
                    "base_url": upstream,
                    "models": ["bench-model"],
                    "retry": {"max_attempts": 1},
                    "timeout_s": 10,
                    "health_check": {"interval_s": 3600, "timeout_s": 5},
                }
            ],
            "routes": [{"name": "bench", "targets": [{"provider": "upstream", "model": "bench-model"}]}],
        }
    )


def thread_cpu(pid: int) -> dict[int, float]:
    out = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(FileNotFoundError):  # a thread that ended meanwhile
            out[int(task)] = cpu_seconds(pid, int(task))
    return out


def other_threads(before: dict[int, float], after: dict[int, float], pid: int) -> float:
    """CPU seconds spent outside the event loop's thread: the analytics writer (db_call's
    executor threads) and little else, so logging's own cost, free of the machine's noise."""
    return sum(cpu - before.get(tid, 0.0) for tid, cpu in after.items() if tid != pid)


def throughput(runs: int, requests: int, concurrency: int = 32) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-analytics-"))
    upstream_port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, "-m", "bench.upstream", "--port", str(upstream_port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_up(f"http://127.0.0.1:{upstream_port}/v1/models", upstream)
        base = environment(tmp / "db.sqlite3")
        manage(base, "migrate", "--noinput")
        (tmp / "config.json").write_text(bench_config(f"http://127.0.0.1:{upstream_port}/v1"))
        manage(base, "import_config", str(tmp / "config.json"))
        key = manage(base, "create_api_key", "bench", "--scopes", "gateway").strip().splitlines()[-1]
        headers = {"Authorization": f"Bearer {key}"}
        figures: dict[bool, list[tuple[float, float, float]]] = {True: [], False: []}
        print(
            f"\nlogging's cost: POST /v1/chat/completions, c={concurrency}, {requests} requests per run "
            f"(+200 warm-up), ANALYTICS_ENABLED alternating, {runs} runs each"
        )
        for run in range(runs):
            for enabled in (True, False) if run % 2 == 0 else (False, True):
                proc, url = serve({**base, "ANALYTICS_ENABLED": "true" if enabled else "false"})
                try:
                    before, threads = cpu_seconds(proc.pid), thread_cpu(proc.pid)
                    result = asyncio.run(
                        run_load(
                            url + "/v1/chat/completions",
                            CHAT,
                            concurrency=concurrency,
                            requests=requests,
                            warmup=200,
                            headers=headers,
                        )
                    )
                    cpu_ms = (cpu_seconds(proc.pid) - before) * 1000 / (requests + 200)
                    writer_ms = other_threads(threads, thread_cpu(proc.pid), proc.pid) * 1000 / (requests + 200)
                finally:
                    stop(proc)  # a clean stop flushes the recorder's queue
                bad = sum(n for status, n in result.statuses.items() if status != 200) + result.errors
                figures[enabled].append((result.rps, cpu_ms, writer_ms))
                print(
                    f"  run {run + 1} analytics {'on ' if enabled else 'off'}  {result.rps:7.0f} req/s  "
                    f"p50 {result.p50:6.2f} ms  cpu {cpu_ms:5.3f} ms/req (outside the event loop "
                    f"{writer_ms:5.3f})  non-200 {bad}"
                )
        logged = seeded_rows(tmp / "db.sqlite3")[0]
        on_rps = statistics.median(f[0] for f in figures[True])
        off_rps = statistics.median(f[0] for f in figures[False])
        on_cpu = statistics.median(f[1] for f in figures[True])
        off_cpu = statistics.median(f[1] for f in figures[False])
        writer = statistics.median(f[2] for f in figures[True]) - statistics.median(f[2] for f in figures[False])
        print(
            f"  median: on {on_rps:.0f} req/s, off {off_rps:.0f} req/s -> logging costs "
            f"{(1 - on_rps / off_rps) * 100:.1f}% of throughput"
        )
        print(
            f"  gateway CPU per request: on {on_cpu:.3f} ms, off {off_cpu:.3f} ms -> "
            f"{(on_cpu / off_cpu - 1) * 100:+.1f}%"
        )
        print(
            f"  the writer's own CPU (threads outside the event loop, on minus off): {writer:.3f} ms per "
            f"request = {writer / off_cpu * 100:.1f}% of a request's CPU with logging off"
        )
        print(f"  request rows written while on: {logged:,} (expected {runs * (requests + 200):,})")
    finally:
        stop(upstream)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--db", type=Path, default=None, help="the seeded SQLite file (default: .data/)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--skip-queries", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    database = args.db or DATA / f"analytics-{args.rows}.sqlite3"
    if not args.skip_throughput:
        throughput(args.runs, args.requests)
    if not args.skip_queries:
        queries(args.rows, database.resolve(), args.runs)


if __name__ == "__main__":
    main()

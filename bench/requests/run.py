"""The request log at ten million rows: `GET /api/requests` with each filter, and deep paging.

    .venv/bin/python bench/requests/run.py [--rows 10000000] [--db PATH] [--runs 3] [--pages 100]

Reuses bench/analytics' seeded SQLite file (bench/analytics/.data/analytics-N.sqlite3; seeded
with `manage.py seed_analytics` when missing, ~4 minutes for 10M rows; topped up to now and
migrated when reused, so a file from before the request log's indexes, analytics migration
0004, gets them). It prints the indexes the table has.

`seed_analytics` writes no API key on its rows, so that the `key` filter reads something this
bench gives two keys rows once (and keeps them in the file): `bench-busy` every 10th row (10 %),
`bench-rare` every 10,000th (0.01 %).

Each case is timed as a median of `runs` x 10 calls after a warm-up, twice:
- through the real server (`manage.py serve`, the default server): `GET /api/requests?...`
  with httpx on one kept-alive connection (the HTTP exchange, auth, the query, JSON);
- in process: `analytics.requests.page(parse_filters(...))`, the query and the rows' summary.
Deep paging follows `next_cursor` `--pages` times from the first page (50 rows a page) and
reports the median page and the last one. `--explain` prints SQLite's plan of each case.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.analytics.run import DATA, ensure_seeded, environment, manage, median_ms, serve, stop  # noqa: E402

KEYED = {"bench-busy": 10, "bench-rare": 10_000}  # key name -> every Nth row (by id)


def indexes(database: Path) -> list[str]:
    with sqlite3.connect(database) as db:
        return [row[1] for row in db.execute("PRAGMA index_list('analytics_requestlog')")]


def give_keys(database: Path, env: dict[str, str]) -> None:
    """Create the bench's keys and put them on their share of rows, once per file."""
    with sqlite3.connect(database) as db:
        known = dict(db.execute("SELECT name, id FROM providers_apikey WHERE name IN (?, ?)", tuple(KEYED)).fetchall())
    for name in KEYED:
        if name not in known:
            manage(env, "create_api_key", name, "--scopes", "gateway")
    with sqlite3.connect(database, timeout=60) as db:
        ids = dict(db.execute("SELECT name, id FROM providers_apikey WHERE name IN (?, ?)", tuple(KEYED)).fetchall())
        if db.execute("SELECT 1 FROM analytics_requestlog WHERE api_key_id IS NOT NULL LIMIT 1").fetchone():
            return
        started = time.monotonic()
        for name, every in KEYED.items():
            db.execute("UPDATE analytics_requestlog SET api_key_id = ? WHERE id % ? = 0", (ids[name], every))
        db.commit()
        print(f"gave keys to their rows in {time.monotonic() - started:.0f} s")


def cases(first_row: dict[str, Any], now: datetime) -> list[tuple[str, dict[str, str]]]:
    hour_ago = (now - timedelta(hours=1)).isoformat()
    old = now - timedelta(days=20)
    return [
        ("no filter", {}),
        (f"route={first_row['route']}", {"route": first_row["route"]}),
        (f"provider={first_row['provider']}", {"provider": first_row["provider"]}),
        ("key=bench-busy (10 % of rows)", {"key": "bench-busy"}),
        ("key=bench-rare (0.01 % of rows)", {"key": "bench-rare"}),
        ("status=failed", {"status": "failed"}),
        ("status=ok", {"status": "ok"}),
        ("since=1 hour ago", {"since": hour_ago}),
        (
            "since+until: one hour, 20 days ago",
            {"since": old.isoformat(), "until": (old + timedelta(hours=1)).isoformat()},
        ),
        (
            "route + status=failed + since 24 h",
            {"route": first_row["route"], "status": "failed", "since": (now - timedelta(days=1)).isoformat()},
        ),
        ("provider=nobody (no rows)", {"provider": "nobody"}),
    ]


def deep(
    fetch: Callable[[dict[str, str]], dict[str, Any]], params: dict[str, str], pages: int
) -> tuple[float, float, int]:
    """Follow next_cursor `pages` times: (median page ms, last page ms, rows seen)."""
    times = []
    cursor: str | None = None
    seen = 0
    for _ in range(pages + 1):
        start = time.perf_counter()
        answer = fetch({**params, **({"cursor": cursor} if cursor else {})})
        times.append((time.perf_counter() - start) * 1000)
        seen += len(answer["requests"])
        cursor = answer["next_cursor"]
        if cursor is None:
            break
    return statistics.median(times[1:] or times), times[-1], seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument(
        "--db", type=Path, default=None, help="the seeded SQLite file (default: bench/analytics/.data/)"
    )
    parser.add_argument("--runs", type=int, default=3, help="each case is timed runs x 10 times")
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--explain", action="store_true", help="print SQLite's plan of each case")
    args = parser.parse_args()
    database = (args.db or DATA / f"analytics-{args.rows}.sqlite3").resolve()
    env = environment(database)
    ensure_seeded(args.rows, database, env)
    give_keys(database, env)
    print(f"request log indexes: {', '.join(sorted(indexes(database)))}")
    key = manage(env, "create_api_key", f"bench-requests-{os.getpid()}", "--scopes", "read").strip().splitlines()[-1]
    now = datetime.now(UTC)
    server: dict[str, float] = {}
    server_deep: dict[str, tuple[float, float, int]] = {}
    proc, url = serve(env)
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:

            def get(params: dict[str, str]) -> dict[str, Any]:
                answer = client.get("/api/requests", params=params)
                answer.raise_for_status()
                return answer.json()  # type: ignore[no-any-return]

            first = get({})
            top = first["requests"][0]
            all_cases = cases(top, now)
            for name, params in all_cases:
                server[name] = median_ms(lambda p=params: get(p), args.runs)
            for name, params in (
                ("no filter", {}),
                ("status=failed", {"status": "failed"}),
                ("key=bench-busy", {"key": "bench-busy"}),
            ):
                server_deep[name] = deep(get, params, args.pages)
            found = median_ms(lambda: client.get(f"/api/requests/{top['request_id']}").raise_for_status(), args.runs)
    finally:
        stop(proc)

    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    from analytics import requests as log

    def page(params: dict[str, str]) -> dict[str, Any]:
        return log.page(log.parse_filters(params))

    local = {name: median_ms(lambda p=params: page(p), args.runs) for name, params in all_cases}
    local_deep = {
        name: deep(page, params, args.pages)
        for name, params in (
            ("no filter", {}),
            ("status=failed", {"status": "failed"}),
            ("key=bench-busy", {"key": "bench-busy"}),
        )
    }

    print(
        f"\nGET /api/requests at {args.rows:,} rows (SQLite, {database.stat().st_size / 1e9:.1f} GB), 50 rows a page;"
        f" medians of {args.runs * 10}; load average {os.getloadavg()[0]:.2f}"
    )
    print("| filter | real server, ms | in process `page()`, ms |")
    print("|---|---|---|")
    for name, _ in all_cases:
        print(f"| {name} | {server[name]:.1f} | {local[name]:.1f} |")
    print(f"| `GET /api/requests/<request_id>` | {found:.1f} | — |")
    for name, (median_page, last, seen) in server_deep.items():
        l_median, l_last, _ = local_deep[name]
        print(
            f"| {name}: following next_cursor {args.pages} pages ({seen:,} rows): median page / page {args.pages} "
            f"| {median_page:.1f} / {last:.1f} | {l_median:.1f} / {l_last:.1f} |"
        )
    if args.explain:
        print()
        for name, params in all_cases:
            f = log.parse_filters(params)
            print(f"{name}: {log._filtered(f)[: f.limit + 1].explain()}")


if __name__ == "__main__":
    main()

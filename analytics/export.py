"""CSV export of a window's rollups: one line per time bucket and dimension."""

from __future__ import annotations

import csv
import io
from datetime import datetime

from .models import ProviderRollup, RouteRollup
from .queries import provider_block, route_block, stamp
from .rollups import PROVIDER_VALUES, ROUTE_VALUES
from .sums import series_sums
from .windows import window

PROVIDER_COLUMNS = (
    "requests",
    "successes",
    "failures",
    "success_rate",
    "rate_limited",
    "exhausted",
    "deadlines",
    "caller_errors",
    "cancelled",
    "skipped",
    "failovers",
    "retries",
    "served",
)
ROUTE_COLUMNS = (
    "requests",
    "successes",
    "failures",
    "success_rate",
    "unavailable",
    "deadlines",
    "caller_errors",
    "cancelled",
    "failovers",
    "retries",
    "calls",
)
USAGE = ("tokens_in", "tokens_out", "characters", "images", "cost", "cost_unknown")
LATENCY = ("avg", "p50", "p95", "p99")


def export_csv(name: str = "24h", *, by: str = "provider", now: datetime | None = None) -> str:
    """The window as CSV, one line per step of its time series and provider and route.

    `by="provider"`: attempts per provider and route (provider blocks); `by="route"`: client
    requests per route and serving provider (route blocks, provider empty when none served).
    """
    if by not in ("provider", "route"):
        raise ValueError("by must be 'provider' or 'route'")
    win = window(name, now)
    step = int(win.step.total_seconds())
    columns: tuple[str, ...]
    if by == "provider":
        rows = series_sums(ProviderRollup, win, ("provider", "route"), PROVIDER_VALUES)
        block, columns = provider_block, PROVIDER_COLUMNS
    else:
        rows = series_sums(RouteRollup, win, ("provider", "route"), ROUTE_VALUES)
        block, columns = route_block, ROUTE_COLUMNS
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["bucket_start", "bucket_seconds", "provider", "route", *columns, *(f"latency_{k}_ms" for k in LATENCY), *USAGE]
    )
    for (at, provider, route), sums in sorted(rows.items()):
        b = block(sums)
        writer.writerow(
            [
                stamp(at),
                step,
                provider,
                route,
                *(b[c] if b[c] is not None else "" for c in columns),
                *(b["latency_ms"][k] if b["latency_ms"][k] is not None else "" for k in LATENCY),
                *(b[u] for u in USAGE),
            ]
        )
    return out.getvalue()

"""The console's /analytics page (staff only): what `analytics.queries.page` reads from the
rollups, as tiles, server-drawn charts and tables, for one window (5 min to 30 days).

Part of the console (this app), drawn from analytics' queries. One template
(templates/analytics/page.html) renders the whole page or, for htmx, a named partial: `body`
for the window tabs, `live` for the refresh that polls while the page is open (every
ANALYTICS_REFRESH_S seconds: one request re-reads the rollups, which costs the same as the
page itself, a few milliseconds to a few tens, and nothing when no one looks).

With no window asked for, the page opens on the smallest window that holds all the data
(`analytics.windows.fitting_window`), up to 24 hours.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.http import HttpResponse
from django.shortcuts import render

from analytics.queries import oldest_data, page
from analytics.windows import WINDOWS, fitting_window

from . import charts
from .access import console_view
from .annotations import config_changes
from .uptime import uptime
from .views import ConsoleRequest

TEMPLATE = "analytics/page.html"
LABELS = {"5m": "5 minutes", "1h": "1 hour", "24h": "24 hours", "7d": "7 days", "30d": "30 days"}
REFRESH_S = 15  # how often an open page re-reads its figures


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _pct(value: float | None) -> float | None:
    return None if value is None else value * 100


def _charts(data: dict[str, Any], label: str, notes: list[charts.Annotation]) -> dict[str, Any]:
    start, end = _epoch(data["from"]), _epoch(data["to"])
    step = data["series"]["step_s"]
    raw = data["series"]["points"]
    starts = [_epoch(p["at"]) for p in raw]
    # A rate or latency is drawn in the middle of its step; the current step at "now".
    mid = [min(max(t + step / 2, start), end) for t in starts]
    per = _step(step)
    traffic = charts.bar_chart(
        starts,
        step,
        [
            charts.Stack("succeeded", [p["successes"] for p in raw], "series-ok"),
            charts.Stack("failed", [p["failures"] for p in raw], "series-bad"),
            charts.Stack(
                "caller errors and cancelled",
                [max(p["requests"] - p["successes"] - p["failures"], 0) for p in raw],
                "series-muted",
            ),
        ],
        start,
        end,
        label=f"Requests per {per} over the last {label}",
        annotations=notes,
        width=1000,
        height=220,
    )
    failovers = charts.bar_chart(
        starts,
        step,
        [charts.Stack("failovers", [p["failovers"] for p in raw], "series-c")],
        start,
        end,
        label=f"Requests that failed over, per {per}, over the last {label}",
        annotations=notes,
        width=1000,
        height=140,
    )
    latency = charts.line_chart(
        [
            charts.Series("p50", [(t, p["latency_ms"]["p50"]) for t, p in zip(mid, raw, strict=True)], "series-a"),
            charts.Series("p95", [(t, p["latency_ms"]["p95"]) for t, p in zip(mid, raw, strict=True)], "series-b"),
        ],
        start,
        end,
        label=f"End-to-end latency over the last {label}",
        annotations=notes,
    )
    success = charts.line_chart(
        [charts.Series("success", [(t, _pct(p["success_rate"])) for t, p in zip(mid, raw, strict=True)], "series-ok")],
        start,
        end,
        unit="%",
        y_max=100,
        label=f"Success rate of requests over the last {label}",
        annotations=notes,
    )
    # The charts' figures as a table (screen readers, copying): the steps that had requests.
    table = [{"at": datetime.fromtimestamp(t, tz=UTC), **p} for t, p in zip(starts, raw, strict=True) if p["requests"]]
    return {
        "traffic_chart": traffic,
        "failover_chart": failovers,
        "latency_chart": latency,
        "success_chart": success,
        "chart_rows": table,
        "step_label": per,
    }


def _sparks(data: dict[str, Any]) -> dict[str, str]:
    per = _step(data["series"]["step_s"])
    sparks: dict[str, str] = {}
    for name, series in data["provider_series"].items():
        values = [float(p["requests"]) for p in series]
        if any(values):
            sparks[name] = charts.sparkline(
                values, noun="steps", fmt=lambda v: f"{v:,.0f}", label=f"{name} attempts per {per}"
            )
    return sparks


def context(window: str, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    data = page(window, now=now)
    start, end = datetime.fromisoformat(data["from"]), datetime.fromisoformat(data["to"])
    changes = config_changes(start, end)
    ups = uptime(start, min(end, now))
    sparks = _sparks(data)
    providers = [
        {**row, "spark": sparks.get(row["name"], ""), "uptime": ups.get(row["name"])} for row in data["providers"]
    ]
    label = LABELS[window]
    return {
        "section": "analytics",
        "window": window,
        "window_label": label,
        "data": data,
        "windows": [{"value": w, "label": LABELS[w], "current": w == window} for w in WINDOWS],
        "total": data["total"],
        "providers": providers,
        "routes": sorted(data["routes"].items()),
        "breakdown": data["breakdown"],
        "costs": data["costs"],
        "top_errors": data["top_errors"],
        "changes": changes[::-1][:20],
        "changes_count": len(changes),
        "refresh_s": REFRESH_S,
        "updated_at": now,
        **_charts(data, label, [c.annotation for c in changes]),
    }


def _step(seconds: int) -> str:
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return "hour" if hours == 1 else f"{hours} hours"
    minutes = seconds // 60
    return "minute" if minutes == 1 else f"{minutes} minutes"


@console_view()
def analytics_page(request: ConsoleRequest) -> HttpResponse:
    now = datetime.now(UTC)
    window = request.GET.get("window", "")
    if window not in WINDOWS:
        window = fitting_window(oldest_data(now), now)
    ctx = {**context(window, now), "role": request.role}
    if request.htmx and not request.htmx.history_restore_request:
        part = "live" if request.htmx.target == "analytics-live" else "body"
        return render(request, f"{TEMPLATE}#{part}", ctx)
    return render(request, TEMPLATE, ctx)

"""The console's /analytics page (staff only): what `analytics.queries.page` reads from the
rollups, as tiles, server-drawn charts and tables, for one window (5 min to 30 days).

Part of the console (this app), drawn from analytics' queries. One template
(templates/analytics/page.html) renders the whole page or, for htmx (the window tabs), its
`body` partial.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpResponse
from django.shortcuts import render

from analytics.queries import page
from analytics.windows import DEFAULT_WINDOW, WINDOWS

from . import charts
from .access import console_view
from .views import ConsoleRequest

TEMPLATE = "analytics/page.html"
LABELS = {"5m": "5 minutes", "1h": "1 hour", "24h": "24 hours", "7d": "7 days", "30d": "30 days"}


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _pct(value: float | None) -> float | None:
    return None if value is None else value * 100


def context(window: str) -> dict[str, Any]:
    data = page(window)
    start, end = _epoch(data["from"]), _epoch(data["to"])
    step = data["series"]["step_s"]
    # Each point is drawn in the middle of its step; the current step at "now".
    points = [(min(max(_epoch(p["at"]) + step / 2, start), end), p) for p in data["series"]["points"]]
    label = LABELS[window]
    traffic = charts.line_chart(
        [
            charts.Series("requests", [(t, p["requests"]) for t, p in points], "series-a"),
            charts.Series("failures", [(t, p["failures"]) for t, p in points], "series-bad"),
            charts.Series("failovers", [(t, p["failovers"]) for t, p in points], "series-c"),
        ],
        start,
        end,
        unit="",
        label=f"Requests per {_step(step)} over the last {label}",
        width=1000,
        height=220,
    )
    latency = charts.line_chart(
        [
            charts.Series("p50", [(t, p["latency_ms"]["p50"]) for t, p in points], "series-a"),
            charts.Series("p95", [(t, p["latency_ms"]["p95"]) for t, p in points], "series-b"),
        ],
        start,
        end,
        label=f"End-to-end latency over the last {label}",
    )
    success = charts.line_chart(
        [charts.Series("success", [(t, _pct(p["success_rate"])) for t, p in points], "series-ok")],
        start,
        end,
        unit="%",
        y_max=100,
        label=f"Success rate of requests over the last {label}",
    )
    sparks = {}
    for name, series in data["provider_series"].items():
        values = [float(p["requests"]) for p in series]
        sparks[name] = (
            charts.sparkline(
                values, noun="steps", fmt=lambda v: f"{v:,.0f}", label=f"{name} attempts per {_step(step)}"
            )
            if any(values)
            else ""
        )
    providers = [{**row, "spark": sparks.get(row["name"], "")} for row in data["providers"]]
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
        "traffic_chart": traffic,
        "latency_chart": latency,
        "success_chart": success,
    }


def _step(seconds: int) -> str:
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return "hour" if hours == 1 else f"{hours} hours"
    minutes = seconds // 60
    return "minute" if minutes == 1 else f"{minutes} minutes"


@console_view()
def analytics_page(request: ConsoleRequest) -> HttpResponse:
    window = request.GET.get("window") or DEFAULT_WINDOW
    if window not in WINDOWS:
        window = DEFAULT_WINDOW
    ctx = {**context(window), "role": request.role}
    return render(request, f"{TEMPLATE}#body" if request.htmx else TEMPLATE, ctx)

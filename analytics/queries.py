"""What the analytics API and the console's /analytics page read: sums of rollups over a window.

Nothing here touches the raw request log. Each function takes a window name (5m, 1h, 24h,
7d, 30d) and an optional `now`, and returns plain dicts and lists ready for JSON.

Two perspectives, as in the rollups (analytics/rollups.py):
- a *route block* counts client requests: `requests`, `successes`, `failures` (every target
  failed or was skipped, the deadline ran out, a stream broke), `caller_errors` and
  `cancelled` apart; latency is end to end.
- a *provider block* counts the attempts sent to a provider: `requests` is its attempts,
  `failures` its failed ones (errors, rate limits, exhausted credit, timeouts, broken
  streams), `failovers` how often a request left it for another provider; latency is per
  attempt; tokens and cost are those of the answers it served.
In both, `cost` sums the known costs and `cost_unknown` counts the answers whose cost is
unknown (a model without a known price): an unknown cost is never added as 0.
In both, `success_rate` = successes / (successes + failures): caller errors and cancellations
are nobody's outage. It is null when there was nothing to count.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from . import histogram
from .models import ErrorRollup, Granularity, ProviderRollup, RouteRollup
from .rollups import PROVIDER_VALUES, ROUTE_VALUES
from .sums import Sums, add, series_sums, window_sums
from .windows import SPANS, Window, window

ROUTE_FAILURES = ("failures", "unavailable", "deadlines", "stream_aborted")
PROVIDER_FAILURES = ("failures", "rate_limited", "exhausted", "deadlines", "stream_aborted")

# -- blocks ------------------------------------------------------------------------------------


def _ratio(a: float, b: float, digits: int = 4) -> float | None:
    return round(a / b, digits) if b else None


def _latency(s: Sums) -> dict[str, float | None]:
    counts = [int(s.get(c, 0)) for c in histogram.COLUMNS]
    n = sum(counts)

    def pct(q: float) -> float | None:
        value = histogram.percentile(counts, q)
        return round(value, 1) if value is not None else None

    return {
        "avg": round(s.get("latency_sum_ms", 0) / n, 1) if n else None,
        "p50": pct(50),
        "p95": pct(95),
        "p99": pct(99),
    }


def _usage(s: Sums) -> dict[str, Any]:
    return {
        "tokens_in": int(s.get("tokens_in", 0)),
        "tokens_out": int(s.get("tokens_out", 0)),
        "characters": int(s.get("characters", 0)),
        "images": int(s.get("images", 0)),
        "cost": round(s.get("cost_nano", 0) / 1e9, 9),  # the known costs only
        "cost_unknown": int(s.get("cost_unknown", 0)),  # answers whose cost is unknown, not in `cost`
    }


def route_block(s: Sums | None) -> dict[str, Any]:
    """The figures of client requests (RouteRollup sums)."""
    s = s or {}
    requests = int(s.get("requests", 0))
    successes = int(s.get("successes", 0))
    failures = int(sum(s.get(c, 0) for c in ROUTE_FAILURES))
    failovers = int(s.get("failovers", 0))
    ttft_count = s.get("ttft_count", 0)
    return {
        "requests": requests,
        "successes": successes,
        "failures": failures,
        "success_rate": _ratio(successes, successes + failures),
        "caller_errors": int(s.get("caller_errors", 0)),
        "cancelled": int(s.get("cancelled", 0)),
        "unavailable": int(s.get("unavailable", 0)),
        "deadlines": int(s.get("deadlines", 0)),
        "failovers": failovers,
        "failover_rate": _ratio(failovers, requests),
        "retries": int(s.get("retries", 0)),
        "calls": int(s.get("calls", 0)),
        "cache_hits": int(s.get("cache_hits", 0)),
        "cache_saved": round(s.get("cache_saved_nano", 0) / 1e9, 9),
        "latency_ms": _latency(s),
        "ttft_ms": {"avg": round(s.get("ttft_sum_ms", 0) / ttft_count, 1) if ttft_count else None},
        **_usage(s),
    }


def provider_block(s: Sums | None) -> dict[str, Any]:
    """The figures of the attempts sent to a provider (ProviderRollup sums)."""
    s = s or {}
    attempts = int(s.get("attempts", 0))
    successes = int(s.get("successes", 0))
    failures = int(sum(s.get(c, 0) for c in PROVIDER_FAILURES))
    failovers = int(s.get("failovers", 0))
    return {
        "requests": attempts,
        "successes": successes,
        "failures": failures,
        "success_rate": _ratio(successes, successes + failures),
        "rate_limited": int(s.get("rate_limited", 0)),
        "exhausted": int(s.get("exhausted", 0)),
        "deadlines": int(s.get("deadlines", 0)),
        "caller_errors": int(s.get("caller_errors", 0)),
        "cancelled": int(s.get("cancelled", 0)),
        "skipped": int(s.get("skipped", 0)),
        "failovers": failovers,
        "failover_rate": _ratio(failovers, attempts),
        "retries": int(s.get("retries", 0)),
        "hedges": int(s.get("hedges", 0)),
        "served": int(s.get("served", 0)),
        "latency_ms": _latency(s),
        **_usage(s),
    }


def stamp(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _head(win: Window) -> dict[str, Any]:
    return {"window": win.name, "from": stamp(win.start), "to": stamp(win.end)}


def _configured_providers() -> list[str]:
    from providers.models import Provider

    return list(Provider.objects.order_by("name").values_list("name", flat=True))


# -- public queries ----------------------------------------------------------------------------


def summary(name: str = "24h", *, now: datetime | None = None) -> dict[str, Any]:
    """The `/api/analytics` answer: total (client requests), providers and routes."""
    win = window(name, now)
    return _summary(win, window_sums(ProviderRollup, win, ("provider", "route"), PROVIDER_VALUES))


def _summary(win: Window, pairs: dict[tuple, Sums]) -> dict[str, Any]:
    by_route = window_sums(RouteRollup, win, ("route",), ROUTE_VALUES)
    total: Sums | None = None
    for sums in by_route.values():
        total = add(total, sums)
    by_provider: dict[str, Sums] = {}
    for (provider, _route), sums in pairs.items():
        by_provider[provider] = add(by_provider.get(provider), sums)
    names = sorted(set(_configured_providers()) | set(by_provider))
    return {
        **_head(win),
        "total": route_block(total),
        "providers": {p: provider_block(by_provider.get(p)) for p in names},
        "routes": {k[0]: route_block(s) for k, s in sorted(by_route.items())},
    }


def breakdown(name: str = "24h", *, now: datetime | None = None) -> list[dict[str, Any]]:
    """Provider blocks per (provider, route), busiest first: cost and reliability per pair."""
    win = window(name, now)
    return _breakdown(window_sums(ProviderRollup, win, ("provider", "route"), PROVIDER_VALUES))


def _breakdown(pairs: dict[tuple, Sums]) -> list[dict[str, Any]]:
    rows = [{"provider": p, "route": r, **provider_block(s)} for (p, r), s in pairs.items()]
    return sorted(rows, key=lambda row: (-row["requests"], row["provider"], row["route"]))


def compare_providers(name: str = "24h", *, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every provider's block side by side (configured ones too when idle), busiest first."""
    providers = summary(name, now=now)["providers"]
    rows = [{"name": p, **block} for p, block in providers.items()]
    return sorted(rows, key=lambda row: (-row["requests"], row["name"]))


def _point(at: datetime, block: dict[str, Any]) -> dict[str, Any]:
    return {"at": stamp(at), **block}


def _fill(win: Window, rows: dict[datetime, Sums], block: Any) -> list[dict[str, Any]]:
    points = []
    at = win.series_start
    while at < win.end:
        points.append(_point(at, block(rows.get(at))))
        at += win.step
    return points


def series(
    name: str = "24h", *, provider: str | None = None, route: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """A time series over the window, one point per step (every step present, zeros when idle).

    Without `provider`: client requests (route blocks), of one route or all. With `provider`:
    that provider's attempts (provider blocks), of one route or all.
    """
    win = window(name, now)
    if provider is None:
        rows = series_sums(RouteRollup, win, (), ROUTE_VALUES, {"route": route} if route is not None else None)
        block = route_block
    else:
        equal = {"provider": provider, **({"route": route} if route is not None else {})}
        rows = series_sums(ProviderRollup, win, (), PROVIDER_VALUES, equal)
        block = provider_block
    return {
        **_head(win),
        "step_s": int(win.step.total_seconds()),
        "points": _fill(win, {k[0]: s for k, s in rows.items()}, block),
    }


def provider_series(name: str = "24h", *, latency: bool = True, now: datetime | None = None) -> dict[str, Any]:
    """Per provider, one point per step: provider blocks (attempts, success rate, failovers,
    cost...). With `latency=False` the points' latency figures are null and the query reads
    a fifth of the columns (the histogram is most of a row)."""
    win = window(name, now)
    columns = PROVIDER_VALUES if latency else tuple(c for c in PROVIDER_VALUES if c not in histogram.COLUMNS)
    rows = series_sums(ProviderRollup, win, ("provider",), columns)
    by_provider: dict[str, dict[datetime, Sums]] = {}
    for (at, p), sums in rows.items():
        by_provider.setdefault(p, {})[at] = sums
    return {
        **_head(win),
        "step_s": int(win.step.total_seconds()),
        "providers": {p: _fill(win, points, provider_block) for p, points in sorted(by_provider.items())},
    }


def top_errors(
    name: str = "24h",
    *,
    provider: str | None = None,
    route: str | None = None,
    kind: str | None = None,
    limit: int = 10,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """The most frequent error reasons: `kind` request (what clients got), attempt (what a
    provider answered) or skip (why a target was passed over); all kinds when None."""
    win = window(name, now)
    equal = {k: v for k, v in (("provider", provider), ("route", route), ("kind", kind)) if v is not None}
    counts = window_sums(ErrorRollup, win, ("kind", "provider", "error"), ("count",), equal)
    total = sum(s["count"] for s in counts.values())
    rows = [
        {"kind": k, "provider": p, "error": e, "count": int(s["count"]), "share": _ratio(s["count"], total)}
        for (k, p, e), s in counts.items()
    ]
    rows.sort(key=lambda row: (-row["count"], row["kind"], row["provider"], row["error"]))
    return rows[:limit]


def costs(name: str = "24h", *, now: datetime | None = None) -> dict[str, Any]:
    """Cost and tokens in total, per provider, per route and per (provider, route)."""
    pairs = breakdown(name, now=now)
    return _costs(pairs)


def _costs(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    def tally(key: str) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for row in pairs:
            t = out.setdefault(row[key], {"cost": 0.0, "cost_unknown": 0, "tokens_in": 0, "tokens_out": 0, "served": 0})
            for field in t:
                t[field] += row[field]
        for t in out.values():
            t["cost"] = round(t["cost"], 9)
        return dict(sorted(out.items(), key=lambda kv: -kv[1]["cost"]))

    return {
        "total": round(sum(row["cost"] for row in pairs), 9),
        "cost_unknown": sum(row["cost_unknown"] for row in pairs),
        "providers": tally("provider"),
        "routes": tally("route"),
        "pairs": [
            {k: row[k] for k in ("provider", "route", "cost", "cost_unknown", "tokens_in", "tokens_out", "served")}
            for row in sorted(pairs, key=lambda row: -row["cost"])
            if row["served"]
        ],
    }


def provider_detail(provider: str, name: str = "24h", *, now: datetime | None = None) -> dict[str, Any]:
    """The `/api/analytics/<name>` answer: the provider's block, per route, series, top errors."""
    win = window(name, now)
    pairs = window_sums(ProviderRollup, win, ("route",), PROVIDER_VALUES, {"provider": provider})
    total: Sums | None = None
    for sums in pairs.values():
        total = add(total, sums)
    return {
        **_head(win),
        "provider": provider,
        **provider_block(total),
        "routes": {k[0]: provider_block(s) for k, s in sorted(pairs.items())},
        "series": {k: v for k, v in series(name, provider=provider, now=now).items() if k in ("step_s", "points")},
        "top_errors": top_errors(name, provider=provider, now=now),
    }


def provider_known(provider: str) -> bool:
    """Configured now, or seen in the rollups (a provider removed since still has history)."""
    from providers.models import Provider

    return (
        Provider.objects.filter(name=provider).exists()
        or ProviderRollup.objects.filter(granularity=Granularity.DAY, provider=provider).exists()
    )


def oldest_data(now: datetime | None = None) -> datetime | None:
    """When the oldest request still in the rollups was made, to the minute while minute
    rollups keep it (to the hour beyond), or None when there is none. Two indexed reads."""
    hours = RouteRollup.objects.filter(granularity=Granularity.HOUR).order_by("bucket")
    first_hour = hours.values_list("bucket", flat=True).first()
    if first_hour is None:
        return None
    minutes = RouteRollup.objects.filter(
        granularity=Granularity.MINUTE, bucket__gte=first_hour, bucket__lt=first_hour + SPANS[Granularity.HOUR]
    )
    first_minute = minutes.order_by("bucket").values_list("bucket", flat=True).first()
    return first_minute or first_hour


def page(name: str = "24h", *, now: datetime | None = None) -> dict[str, Any]:
    """Everything the console's /analytics page shows, in one call.

    `total` and `routes` (route blocks), `providers` (provider blocks side by side, busiest
    first, each with `name`), `series` (client requests over time), `provider_series`
    (per provider over time, without latency: `series(provider=...)` has one provider's),
    `breakdown` (per provider and route), `costs`, `top_errors`.
    """
    now = now or datetime.now(UTC)  # one instant for every part
    win = window(name, now)
    pairs = window_sums(ProviderRollup, win, ("provider", "route"), PROVIDER_VALUES)
    head = _summary(win, pairs)
    rows = _breakdown(pairs)
    providers = sorted(
        ({"name": p, **b} for p, b in head["providers"].items()), key=lambda row: (-row["requests"], row["name"])
    )
    total_series = series(name, now=now)
    return {
        **{k: head[k] for k in ("window", "from", "to", "total", "routes")},
        "providers": providers,
        "series": {"step_s": total_series["step_s"], "points": total_series["points"]},
        "provider_series": provider_series(name, latency=False, now=now)["providers"],
        "breakdown": rows,
        "costs": _costs(rows),
        "top_errors": top_errors(name, now=now),
    }

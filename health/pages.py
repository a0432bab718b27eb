"""The console pages' contexts, shared by the views (full pages and htmx partials) and the
websocket consumer (fragments pushed on a change), so both render the same markup."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from django.core.cache import cache
from django.template.loader import render_to_string
from django.utils import timezone

from analytics.queries import series as traffic_series
from analytics.requests import recent_failed
from project.database import db_call
from providers.demo import demo_present
from providers.models import MaintenanceWindow, Provider, ProviderModel
from providers.runtime import runtime

from . import charts, pulls
from .access import Role
from .annotations import config_changes
from .cards import Card, Filters, boards, load_cards, recent_events, status_counts
from .history import WINDOW_LABELS, WINDOWS, History, probe_history
from .probe_details import latest_server_details
from .uptime import uptime_of

log = logging.getLogger(__name__)

DASHBOARD = "health/dashboard.html"
PROVIDER = "health/provider.html"
EVENTS = "health/events.html"
PROVIDER_EVENTS = 20
FAILED_REQUESTS = 5


# -- dashboard -------------------------------------------------------------------------------


def _board(filters: Filters, cards: list[Card]) -> dict[str, Any]:
    choices = filters.choices()
    return {
        "filters": filters,
        "cards": cards,
        "filter_groups": [
            ("status", "Status", choices["status"]),
            ("capability", "Capability", choices["capability"]),
            ("sort", "Sort", choices["sort"]),
        ],
    }


async def dashboard_context(filters: Filters, role: Role) -> dict[str, Any]:
    every = await load_cards()
    query = filters.href().removeprefix("?")
    return {
        "section": "providers",
        "role": role,
        **_board(filters, filters.apply(every)),
        "total": len(every),
        "counts": status_counts([c.status for c in every]),
        "demo": await db_call(demo_present),
        "recent": await db_call(recent_events, 8),
        # The socket starts out knowing the view; the page tells it when its URL changes.
        "ws_url": f"/ws/health/?{query}" if query else "/ws/health/",
    }


async def dashboard_listing(filters: Filters) -> list[str]:
    """The names of the cards the dashboard lists with these filters, in their order."""
    return [c.name for c in filters.apply(await load_cards(beats=False))]


async def render_dashboard_push(
    names: list[str],
    role: Role,
    filters: Filters | None = None,
    shown: list[str] | None = None,
    seen: int | None = None,
) -> tuple[str, list[str]]:
    """Fragments for changed providers, and the list of cards the view shows now.

    When that list differs from `shown` (what the page listed after the last push; None:
    not known), the whole board is pushed, so a card that no longer matches the filters goes,
    one that now matches comes, and the order follows the sort. Otherwise: the changed
    cards (a delete for one that is gone). The counts and recent changes come with both.

    The data is one load, shared by the consoles of this process that push the same changes
    (`seen`: the last change this console heard of, see `cards.SharedBoards`; None: a load
    of its own); only the rendering, for this role and these filters, is this console's."""
    filters = filters or Filters()
    board = await boards.get(seen)
    every = board.cards
    chosen = filters.apply(every)
    listed = [c.name for c in chosen]
    context: dict[str, Any] = {
        "role": role,
        "filters": filters,
        "total": len(every),
        "counts": status_counts([c.status for c in every]),
        "recent": board.recent,
    }
    if shown is None or listed != shown:
        context.update(_board(filters, chosen), board=True)
        return render_to_string(f"{DASHBOARD}#push", context), listed
    changed = set(names) & set(listed)
    cards = [c for c in every if c.name in changed]  # in the configuration's order, as loaded
    context.update(cards=cards, gone=[n for n in names if n not in changed], board=False)
    return render_to_string(f"{DASHBOARD}#push", context), listed


# -- provider page ---------------------------------------------------------------------------


def _provider_rows(name: str) -> dict[str, Any] | None:
    provider = Provider.objects.filter(name=name).first()
    if provider is None:
        return None
    now = timezone.now()
    windows = list(MaintenanceWindow.objects.filter(provider=provider, ends_at__gt=now).order_by("starts_at"))
    return {
        "provider": provider,
        "maintenance_windows": windows,
        "active_window": next((w for w in windows if w.starts_at <= now), None),
        "events": recent_events(PROVIDER_EVENTS, name),
    }


async def provider_live_context(name: str, role: Role) -> dict[str, Any] | None:
    """What changes while the page is open: the summary, configuration state, events, pull,
    and the server's details from its latest probe."""
    rows = await db_call(_provider_rows, name)
    if rows is None:
        return None
    cards = await load_cards([name])
    card = cards[0] if cards else Card(name=name, kind=rows["provider"].kind, status="unknown", breaker="closed")
    return {
        "name": name,
        "card": card,
        "role": role,
        **rows,
        "pull": await cache.aget(pulls.state_key(name)),
        # what the latest probe said about the server (version, loaded models, memory)
        "server": await db_call(latest_server_details, name),
    }


def _traffic(name: str, window: str, start: float, end: float) -> list[tuple[float, dict[str, Any]]]:
    """The gateway's calls to the provider over the window, from the analytics rollups."""
    data = traffic_series(window, provider=name)
    step = data["step_s"]
    out = []
    for point in data["points"]:
        at = datetime.fromisoformat(point["at"].replace("Z", "+00:00")).timestamp()
        if at + step > start and at < end:  # the current step is drawn at "now", not past it
            out.append((min(max(at + step / 2, start), end), point))
    return out


def history_charts(name: str, window: str) -> dict[str, Any]:
    """Latency and success over the window: the monitor's checks and the gateway's calls."""
    history: History = probe_history(name, window)
    width = (history.end - history.start) / len(history.buckets)
    mid = [b.start + width / 2 for b in history.buckets]
    traffic = _traffic(name, window, history.start, history.end)
    calls = sum(p["requests"] for _, p in traffic)
    latency = [
        charts.Series("checks p50", [(t, b.p50_ms) for t, b in zip(mid, history.buckets, strict=True)], "series-a"),
        charts.Series("checks p95", [(t, b.p95_ms) for t, b in zip(mid, history.buckets, strict=True)], "series-b"),
    ]
    success = [
        charts.Series("checks", [(t, b.success_pct) for t, b in zip(mid, history.buckets, strict=True)], "series-ok")
    ]
    if calls:
        latency.append(
            charts.Series(
                "calls p95", [(t, p["latency_ms"]["p95"] if p["requests"] else None) for t, p in traffic], "series-c"
            )
        )
        success.append(
            charts.Series(
                "calls",
                [(t, None if p["success_rate"] is None else p["success_rate"] * 100) for t, p in traffic],
                "series-c",
            )
        )
    label = WINDOW_LABELS[window]
    # the provider's configuration changes in the window: a marker on both charts and a list
    changes = config_changes(datetime.fromtimestamp(history.start, UTC), datetime.fromtimestamp(history.end, UTC), name)
    notes = [c.annotation for c in changes]
    return {
        "history": history,
        "uptime": uptime_of(name, datetime.fromtimestamp(history.start, UTC), datetime.fromtimestamp(history.end, UTC)),
        "changes": changes[::-1][:20],
        "changes_count": len(changes),
        "calls": calls,
        "window": window,
        "window_label": label,
        "latency_chart": charts.line_chart(
            latency, history.start, history.end, label=f"Latency of {name} over the last {label}", annotations=notes
        ),
        "success_chart": charts.line_chart(
            success,
            history.start,
            history.end,
            unit="%",
            y_max=100,
            label=f"Success rate of {name} over the last {label}",
            annotations=notes,
        ),
        "windows": [{"value": w, "label": WINDOW_LABELS[w], "current": w == window} for w in WINDOWS],
    }


def _models(name: str) -> list[ProviderModel]:
    return list(ProviderModel.objects.filter(provider__name=name).order_by("name"))


async def _sd_state(name: str) -> dict[str, Any]:
    """The SD WebUI checkpoint loaded now (asked with a short timeout) and the ones known."""
    rt = runtime()
    entry = (await rt.current()).providers.get(name)
    state: dict[str, Any] = {"current": None, "error": ""}
    if entry is None:
        return state
    adapter: Any = rt.adapter(entry, entry.credentials[0][0] if entry.credentials else None)
    try:
        async with asyncio.timeout(2.5):
            state["current"] = await adapter.current_model(timeout=2.0)
    except Exception as exc:  # the page still renders; the summary shows the provider's health
        state["error"] = f"could not ask for the loaded model: {type(exc).__name__}"
    return state


async def provider_context(name: str, window: str, role: Role) -> dict[str, Any] | None:
    live = await provider_live_context(name, role)
    if live is None:
        return None
    context = {
        **live,
        **await db_call(history_charts, name, window),
        "section": "providers",
        "models": await db_call(_models, name),
        "ws_url": f"/ws/health/?provider={name}",
        "failed_requests": await db_call(recent_failed, name, FAILED_REQUESTS),
    }
    if live["provider"].kind == "sdwebui":
        context["sd"] = await _sd_state(name)
    return context


async def render_provider_push(name: str, role: Role) -> str:
    context = await provider_live_context(name, role)
    if context is None:
        return ""
    return render_to_string(f"{PROVIDER}#live", context)


def render_pull(name: str, state: dict[str, Any]) -> str:
    """The pull's progress; once it ended, also the page's message saying how."""
    ended = pulls.outcome(state)
    return render_to_string(
        f"{PROVIDER}#pushed-pull",
        {
            "name": name,
            "pull": state,
            "oob": True,
            "flash": [ended] if ended else [],
            "flash_version": state.get("version"),
        },
    )

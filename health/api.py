"""The health part of the operations API: state per provider with a summary of the fleet,
"check now", "reset statistics", and the event history as a list and as a stream."""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.http import require_http_methods

from project.database import db_call
from providers.api import actor, audit, provider_entry
from providers.gateway.auth import api_view
from providers.gateway.errors import RequestError
from providers.openapi import SSE, Param, Response, document
from providers.runtime import runtime

from . import cooldowns, feed, scores, stream
from . import schemas as s
from .events import record_action
from .models import ProbeResult, ProviderHealth, Status
from .monitor import ProbeOutcome, check_now


def _rows() -> dict[str, ProviderHealth]:
    return {h.provider.name: h for h in ProviderHealth.objects.select_related("provider")}


async def health_entries(names: list[str] | None = None) -> list[dict[str, Any]]:
    """Every provider's health (or these providers'): the monitor's row, corrected by this
    process's live engine state where that state is a fact. A breaker forced open or open,
    or every credential set aside, makes the provider unavailable the moment it happens,
    whatever the row (saved at the monitor's last evaluation) says."""
    rt = runtime()
    snapshot = await rt.current()
    rows = await db_call(_rows)
    chosen = [
        e
        for e in sorted(snapshot.providers.values(), key=lambda p: (p.priority, p.name))
        if names is None or e.name in names
    ]
    snaps = {}
    for entry in chosen:
        await rt.engine.refresh(entry.name)
        snaps[entry.name] = rt.engine.snapshot(entry.name)
    set_aside = {name: cooldowns.of_snapshot(snap) for name, snap in snaps.items() if snap.cooldowns}
    reasons = await db_call(cooldowns.reasons, set_aside) if set_aside else {}
    entries = []
    for entry in chosen:
        snap = snaps[entry.name]
        row = rows.get(entry.name)
        active = set_aside.get(entry.name, [])
        status, reason = _status(entry, snap.state, row, active, reasons)
        entries.append(
            {
                "name": entry.name,
                "kind": entry.kind,
                "status": status,
                "reason": reason,
                "score": row.score if row is not None else None,
                "score_parts": row.score_parts if row is not None else {},
                "breaker": {"metrics_only": "closed"}.get(snap.state, snap.state),
                "success_rate": snap.success_rate if snap.calls else (row.success_rate if row else None),
                "calls": snap.calls,
                "latency_ms": {
                    "p50": snap.p50_ms if snap.p50_ms is not None else (row.p50_ms if row else None),
                    "p95": snap.p95_ms if snap.p95_ms is not None else (row.p95_ms if row else None),
                },
                "last_check_at": row.last_check_at.isoformat() if row is not None and row.last_check_at else None,
                "last_check_ok": row.last_check_ok if row is not None else None,
                "last_error": row.last_error if row is not None else "",
                "cooldowns": [
                    {
                        "credential": cd.credential,
                        "kind": cd.kind,
                        "until": cd.until,
                        "scope": cd.scope,
                        "reason": reasons.get((entry.name, cd.credential, cd.kind, cd.scope), ""),
                    }
                    for cd in active
                ],
                "enabled": entry.enabled,
                "maintenance": entry.maintenance,
            }
        )
    return entries


def _status(
    entry: Any,
    breaker: str,
    row: ProviderHealth | None,
    active: list[cooldowns.Active],
    reasons: dict[tuple[str, str | None, str, str], str],
) -> tuple[str, str]:
    """The row's status and reason, unless a live fact (the configuration, the breaker, the
    credentials) decides otherwise."""
    status, reason = (row.status, row.reason) if row is not None else ("unknown", "no data yet")
    cooling, why, _ = cooldowns.set_aside(entry.name, active, [c for c, _ in entry.credentials], reasons)
    fact = scores.fact(
        scores.Inputs(
            enabled=entry.enabled,
            maintenance=entry.maintenance,
            breaker=breaker,
            cooling=cooling,
            cooling_reason=why,
            probe=None,
            success_rate=None,
            calls=0,
            p95_ms=None,
            target_p95_ms=0.0,
        )
    )
    if fact is not None:
        return fact
    if breaker == "open" and not (status == "unhealthy" and reason.startswith("breaker open")):
        return "unhealthy", "breaker open: unavailable"
    return status, reason


def summarize(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """How many providers are in each status, and the enabled ones' mean score weighted by
    their traffic (the calls in their rolling windows; a plain mean while none has calls)."""
    counts = Counter(e["status"] for e in entries)
    scored = [(e["score"], e["calls"]) for e in entries if e["enabled"] and e["score"] is not None]
    score = None
    if scored:
        calls = sum(c for _, c in scored)
        score = (sum(v * c for v, c in scored) / calls) if calls else sum(v for v, _ in scored) / len(scored)
    return {
        "total": len(entries),
        **{status: counts.get(status, 0) for status in Status.values},
        "score": round(score, 1) if score is not None else None,
    }


@document(
    "GET",
    "/api/health",
    "Every provider's status, score, breaker, success rate and latency, and a summary of the fleet",
    scope="read",
    tags=["health"],
    responses={200: Response("Health per provider", s.HealthList)},
)
@api_view("read")
async def health_list(request: HttpRequest) -> HttpResponse:
    entries = await health_entries()
    return JsonResponse({"summary": summarize(entries), "providers": entries})


def _last_probe(name: str) -> dict[str, Any] | None:
    row = ProbeResult.objects.filter(provider__name=name).order_by("-at", "-id").first()
    if row is None:
        return None
    return {
        "at": feed.iso(row.at),
        "ok": row.ok,
        "slow": row.slow,
        "latency_ms": round(row.latency_ms, 1),
        "error": row.error,
        "detail": row.detail or {},
    }


@document(
    "GET",
    "/api/health/{name}",
    "One provider's health and its latest probe (server version, models, memory where the server reports them)",
    scope="read",
    tags=["health"],
    responses={200: Response("The provider's health", s.HealthDetail)},
    errors=(401, 403, 404),
)
@api_view("read")
async def health_detail(request: HttpRequest, name: str) -> HttpResponse:
    await provider_entry(name)
    entry = (await health_entries([name]))[0]
    entry["probe"] = await db_call(_last_probe, name)
    return JsonResponse(entry)


def _forget_row_statistics(name: str) -> None:
    """The saved success rate and call count go with the window they were read from (the
    monitor's next evaluation saves the fresh ones anyway); the score stays until then."""
    ProviderHealth.objects.filter(provider__name=name).update(success_rate=None, calls=0)


@document(
    "POST",
    "/api/health/{name}/reset",
    "Reset the provider's statistics: clear its rolling health window "
    "and consecutive counters (the breaker and cooldowns stay; see /api/breakers/{name}/reset)",
    scope="admin",
    tags=["health"],
    responses={200: Response("The counts after the reset", s.StatisticsReset)},
    errors=(401, 403, 404),
)
@require_http_methods(["POST"])
@api_view("admin")
async def health_reset(request: HttpRequest, name: str) -> HttpResponse:
    """Recorded as an `action` event `reset_statistics` (`health.reset` in the events API) and
    audited. With shared state (Redis) the pooled window is cleared for every process; each
    other process's local layer keeps its own counts until they age out of the window."""
    await provider_entry(name)
    rt = runtime()
    await rt.engine.reset_statistics(name)
    await db_call(_forget_row_statistics, name)
    await db_call(audit, request, "reset_statistics", "provider", name)
    event = await db_call(
        record_action,
        name,
        "reset_statistics",
        actor(request),
        "rolling health window and consecutive counters cleared",
    )
    snap = rt.engine.snapshot(name)
    return JsonResponse(
        {
            "provider": name,
            "calls": snap.calls,
            "success_rate": snap.success_rate if snap.calls else None,
            "consecutive_failures": snap.consecutive_failures,
            "event_id": event.pk,
        }
    )


def _result(outcome: ProbeOutcome) -> dict[str, Any]:
    return {
        "provider": outcome.provider,
        "ok": outcome.ok,
        "slow": outcome.slow,
        "latency_ms": round(outcome.latency_ms, 1),
        "error": outcome.error,
        "detail": outcome.detail,
        "at": outcome.at.isoformat(),
    }


async def _check(request: HttpRequest, names: list[str]) -> HttpResponse:
    results = await check_now(runtime(), names)
    who = actor(request)
    for name in names:
        await db_call(record_action, name, "check_now", who)
    await db_call(audit, request, "check_now", "provider", ",".join(names) or "none")
    return JsonResponse({"results": [_result(r) for r in results]})


@document(
    "POST",
    "/api/health/check",
    "Probe every enabled provider now",
    scope="admin",
    tags=["health"],
    responses={200: Response("The probe results", s.CheckResults)},
)
@require_http_methods(["POST"])
@api_view("admin")
async def health_check_all(request: HttpRequest) -> HttpResponse:
    snapshot = await runtime().current()
    return await _check(request, [n for n, p in snapshot.providers.items() if p.enabled])


@document(
    "POST",
    "/api/health/{name}/check",
    "Probe one provider now",
    scope="admin",
    tags=["health"],
    responses={200: Response("The probe result", s.CheckResults)},
    errors=(401, 403, 404),
)
@require_http_methods(["POST"])
@api_view("admin")
async def health_check_one(request: HttpRequest, name: str) -> HttpResponse:
    await provider_entry(name)
    return await _check(request, [name])


EVENT_FILTERS = [
    Param("provider", description="only this provider's events"),
    Param(
        "kind",
        description="only these event types (comma-separated or repeated): " + ", ".join(feed.EVENT_NAMES),
        schema={"type": "array", "items": {"type": "string", "enum": list(feed.EVENT_NAMES)}},
    ),
]


@document(
    "GET",
    "/api/events",
    "The event history (state changes, alerts, operator actions, failed requests), newest first, cursor-paged",
    scope="read",
    tags=["events"],
    responses={200: Response("One page of events", s.EventPage)},
    params=[
        *EVENT_FILTERS,
        Param("since", description="from this time on (ISO 8601 or seconds since the epoch)"),
        Param("until", description="before this time (exclusive; ISO 8601 or seconds since the epoch)"),
        Param(
            "q",
            description="text search: events whose provider name or reason holds every word (case-insensitive)",
            schema={"type": "string", "maxLength": feed.Q_MAX},
        ),
        Param(
            "limit",
            description=f"events per page (1-{feed.MAX_LIMIT}, default {feed.DEFAULT_LIMIT})",
            schema={"type": "integer", "minimum": 1, "maximum": feed.MAX_LIMIT},
        ),
        Param("cursor", description="the `next_cursor` of the previous page"),
    ],
    errors=(400, 401, 403),
)
@api_view("read")
async def events_list(request: HttpRequest) -> HttpResponse:
    """Names and fields: health/feed.py."""
    return JsonResponse(await db_call(feed.page, _query(request)))


def _query(request: HttpRequest) -> feed.EventQuery:
    try:
        return feed.parse_query(request.GET)
    except feed.QueryError as exc:
        raise RequestError(400, str(exc), code="invalid_parameter", param=exc.param) from None


@document(
    "GET",
    "/api/events/stream",
    "Every new event as it happens (server-sent events), resumable with Last-Event-ID",
    scope="read",
    tags=["events"],
    responses={
        200: Response(
            "`id:` the event's id, `event:` its type, `data:` the event as /api/events "
            "lists it (provider, from, to, reason, at, ...)",
            content_type=SSE,
        )
    },
    params=[
        Param(
            "Last-Event-ID",
            "header",
            "resume after this event id (an EventSource sends it)",
            schema={"type": "integer", "minimum": 0},
        ),
        Param(
            "last_event_id",
            description="the same, for a client that cannot set headers",
            schema={"type": "integer", "minimum": 0},
        ),
        *EVENT_FILTERS,
    ],
    errors=(400, 401, 403),
)
@api_view("read")
async def events_stream(request: HttpRequest) -> StreamingHttpResponse:
    """Server-sent events: health/stream.py says how they are read and resumed.

    `request.failed` (a request every target failed, with its route, request id, the
    providers tried and the error) is stored like every other event, so it is listed, resumed
    and sent to event-feed webhooks like them; its storage is bounded (health/failures.py):
    per process and route, the first failure in a second is one event, the rest of that
    second one more event that counts them (`detail.count`), and only the newest
    EVENTS_REQUEST_FAILED_KEEP of them are kept. A flood of failures is therefore at most two
    events per route per second on the stream and in the database.
    """
    start = stream.start_id(request)
    query = _query(request)
    response = StreamingHttpResponse(
        stream.events(start, query.provider, query.kind), content_type="text/event-stream; charset=utf-8"
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # a proxy in front must pass each event at once
    return response

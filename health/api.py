"""The health part of the operations API: state per provider, and "check now"."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_http_methods

from project.database import db_call
from providers.api import actor, audit, provider_entry
from providers.gateway.auth import api_view
from providers.openapi import Response, document
from providers.runtime import runtime

from . import cooldowns, scores
from . import schemas as s
from .events import record_action
from .models import ProviderHealth
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
    chosen = [e for e in sorted(snapshot.providers.values(), key=lambda p: (p.priority, p.name))
              if names is None or e.name in names]
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
        entries.append({
            "name": entry.name,
            "kind": entry.kind,
            "status": status,
            "reason": reason,
            "score": row.score if row is not None else None,
            "score_parts": row.score_parts if row is not None else {},
            "breaker": {"metrics_only": "closed"}.get(snap.state, snap.state),
            "success_rate": snap.success_rate if snap.calls else (row.success_rate if row else None),
            "calls": snap.calls,
            "latency_ms": {"p50": snap.p50_ms if snap.p50_ms is not None else (row.p50_ms if row else None),
                           "p95": snap.p95_ms if snap.p95_ms is not None else (row.p95_ms if row else None)},
            "last_check_at": row.last_check_at.isoformat() if row is not None and row.last_check_at else None,
            "last_check_ok": row.last_check_ok if row is not None else None,
            "last_error": row.last_error if row is not None else "",
            "cooldowns": [{"credential": cd.credential, "kind": cd.kind, "until": cd.until, "scope": cd.scope,
                           "reason": reasons.get((entry.name, cd.credential, cd.kind, cd.scope), "")}
                          for cd in active],
            "enabled": entry.enabled,
            "maintenance": entry.maintenance,
        })
    return entries


def _status(entry: Any, breaker: str, row: ProviderHealth | None, active: list[cooldowns.Active],
            reasons: dict[tuple[str, str | None, str, str], str]) -> tuple[str, str]:
    """The row's status and reason, unless a live fact (the configuration, the breaker, the
    credentials) decides otherwise."""
    status, reason = (row.status, row.reason) if row is not None else ("unknown", "no data yet")
    cooling, why, _ = cooldowns.set_aside(entry.name, active, [c for c, _ in entry.credentials], reasons)
    fact = scores.fact(scores.Inputs(enabled=entry.enabled, maintenance=entry.maintenance, breaker=breaker,
                                     cooling=cooling, cooling_reason=why, probe=None, success_rate=None,
                                     calls=0, p95_ms=None, target_p95_ms=0.0))
    if fact is not None:
        return fact
    if breaker == "open" and not (status == "unhealthy" and reason.startswith("breaker open")):
        return "unhealthy", "breaker open: unavailable"
    return status, reason


@document("GET", "/api/health", "Every provider's status, score, breaker, success rate and latency",
          scope="read", tags=["health"], responses={200: Response("Health per provider", s.HealthList)})
@api_view("read")
async def health_list(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"providers": await health_entries()})


@document("GET", "/api/health/{name}", "One provider's health", scope="read", tags=["health"],
          responses={200: Response("The provider's health", s.HealthEntry)}, errors=(401, 403, 404))
@api_view("read")
async def health_detail(request: HttpRequest, name: str) -> HttpResponse:
    await provider_entry(name)
    return JsonResponse((await health_entries([name]))[0])


def _result(outcome: ProbeOutcome) -> dict[str, Any]:
    return {"provider": outcome.provider, "ok": outcome.ok, "slow": outcome.slow,
            "latency_ms": round(outcome.latency_ms, 1), "error": outcome.error, "detail": outcome.detail,
            "at": outcome.at.isoformat()}


async def _check(request: HttpRequest, names: list[str]) -> HttpResponse:
    results = await check_now(runtime(), names)
    who = actor(request)
    for name in names:
        await db_call(record_action, name, "check_now", who)
    await db_call(audit, request, "check_now", "provider", ",".join(names) or "none")
    return JsonResponse({"results": [_result(r) for r in results]})


@document("POST", "/api/health/check", "Probe every enabled provider now", scope="admin", tags=["health"],
          responses={200: Response("The probe results", s.CheckResults)})
@require_http_methods(["POST"])
@api_view("admin")
async def health_check_all(request: HttpRequest) -> HttpResponse:
    snapshot = await runtime().current()
    return await _check(request, [n for n, p in snapshot.providers.items() if p.enabled])


@document("POST", "/api/health/{name}/check", "Probe one provider now", scope="admin", tags=["health"],
          responses={200: Response("The probe result", s.CheckResults)}, errors=(401, 403, 404))
@require_http_methods(["POST"])
@api_view("admin")
async def health_check_one(request: HttpRequest, name: str) -> HttpResponse:
    await provider_entry(name)
    return await _check(request, [name])

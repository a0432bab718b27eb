"""The incidents API: `GET /api/incidents` (read), `POST /api/incidents/<id>/acknowledge` and
`POST /api/incidents/<id>/mute` (admin). What an incident is: health/incidents.py."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_http_methods

from project.database import db_call
from providers.api import actor, audit
from providers.gateway.auth import api_view
from providers.gateway.bodies import parse_json, validate
from providers.gateway.errors import RequestError
from providers.openapi import Param, Response, document

from . import feed, incidents
from . import schemas as s
from .alerts import notify_acknowledged
from .events import publish
from .models import Incident

MAX_LIMIT = 500


def as_item(incident: Incident) -> dict[str, Any]:
    def iso(at: Any) -> str | None:
        return feed.iso(at) if at is not None else None

    return {
        "id": incident.pk,
        "provider": incident.provider_name,
        "state": incident.state,
        "opened_at": feed.iso(incident.opened_at),
        "resolved_at": iso(incident.resolved_at),
        "reason": incident.reason,
        "resolution": incident.resolution,
        "acknowledged_by": incident.acknowledged_by,
        "acknowledged_at": iso(incident.acknowledged_at),
        "muted_until": iso(incident.muted_until),
        "events": [feed.as_item(e) for e in getattr(incident, "timeline", [])],
    }


def _listing(state: str, provider: str, limit: int) -> list[dict[str, Any]]:
    return [as_item(i) for i in incidents.listing(state, provider, limit)]


@document(
    "GET",
    "/api/incidents",
    "Incidents (one per outage of a provider) with their timelines, newest first",
    scope="read",
    tags=["incidents"],
    responses={200: Response("Incidents", s.IncidentList)},
    params=[
        Param("state", description="open or resolved", schema={"type": "string", "enum": ["open", "resolved"]}),
        Param("provider", description="only this provider's incidents"),
        Param(
            "limit",
            description=f"at most this many (1-{MAX_LIMIT}, default 100)",
            schema={"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
        ),
    ],
    errors=(400, 401, 403),
)
@api_view("read")
async def incidents_list(request: HttpRequest) -> HttpResponse:
    state = request.GET.get("state", "")
    if state not in ("", *Incident.State.values):
        raise RequestError(400, "`state` must be open or resolved", code="invalid_parameter", param="state")
    provider = request.GET.get("provider", "")[:64]
    raw = request.GET.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise RequestError(
            400, f"`limit` must be a whole number from 1 to {MAX_LIMIT}", code="invalid_parameter", param="limit"
        )
    return JsonResponse({"incidents": await db_call(_listing, state, provider, int(raw))})


def _acknowledge(pk: int, who: str) -> tuple[Incident, int]:
    incident, event = incidents.acknowledge(pk, who)
    notify_acknowledged(incident.pk, incident.provider_name, who, f"acknowledged by {who}")
    return incident, event.pk


def _mute(pk: int, minutes: float, who: str) -> tuple[Incident, int]:
    incident, event = incidents.mute(pk, minutes, who)
    return incident, event.pk


async def _act(request: HttpRequest, pk: int, action: str, *args: Any) -> HttpResponse:
    who = actor(request)
    try:
        incident, event_id = await db_call(_acknowledge if action == "acknowledge" else _mute, pk, *args, who)
    except incidents.IncidentError as exc:
        code = {404: "incident_not_found", 409: "conflict"}.get(exc.status, "invalid_parameter")
        raise RequestError(exc.status, exc.message, code=code) from None
    await db_call(audit, request, f"{action}_incident", "incident", str(pk), {"args": list(args)} if args else None)
    await publish({"type": "health.event", "provider": incident.provider_name, "event_id": event_id})
    incident.timeline = []  # type: ignore[attr-defined]
    return JsonResponse(as_item(incident))


@document(
    "POST",
    "/api/incidents/{id}/acknowledge",
    "Acknowledge an open incident (someone is on it); the channels that sent its alert are told",
    scope="admin",
    tags=["incidents"],
    responses={200: Response("The incident", s.IncidentItem)},
    errors=(401, 403, 404, 409),
)
@require_http_methods(["POST"])
@api_view("admin")
async def incident_acknowledge(request: HttpRequest, id: int) -> HttpResponse:
    return await _act(request, id, "acknowledge")


@document(
    "POST",
    "/api/incidents/{id}/mute",
    "Mute an incident's alerts (and its resolution message) for some minutes; 0 ends a mute",
    scope="admin",
    tags=["incidents"],
    request=s.MuteRequest,
    responses={200: Response("The incident", s.IncidentItem)},
    errors=(400, 401, 403, 404),
)
@require_http_methods(["POST"])
@api_view("admin")
async def incident_mute(request: HttpRequest, id: int) -> HttpResponse:
    body = parse_json(request, what='The body ({"minutes": N})')
    validate(s.MuteRequest, body)
    return await _act(request, id, "mute", body["minutes"])

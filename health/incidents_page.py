"""The console's incidents page (`/incidents`, staff): every incident with its timeline, and
for operators and admins (health/access.py's "act" level) acknowledge and mute buttons, plain
forms with CSRF that work without JavaScript (htmx swaps the list in place)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from providers.models import AuditLog

from . import incidents
from .access import Role, console_view
from .actions import see_other
from .alerts import notify_acknowledged
from .events import publish_sync
from .models import Incident
from .views import ConsoleRequest

TEMPLATE = "health/incidents.html"
MUTE_CHOICES = (15, 60, 240, 1440)


def _context(state: str, provider: str, role: Role) -> dict[str, Any]:
    return {
        "section": "incidents",
        "role": role,
        "state": state,
        "provider": provider,
        "now": timezone.now(),
        "incidents": incidents.listing(state, provider, 100),
        "mute_choices": MUTE_CHOICES,
        "providers": sorted(set(Incident.objects.values_list("provider_name", flat=True))),
    }


def _filters(values: Any) -> tuple[str, str]:
    """The list's filters (state, provider) from a query or from an action's form, which carries
    them so that the list comes back as the operator had filtered it."""
    state = values.get("state", "")
    return (state if state in Incident.State.values else ""), values.get("provider", "")[:64]


def _list_url(state: str, provider: str) -> str:
    query = urlencode({k: v for k, v in (("state", state), ("provider", provider)) if v})
    return reverse("health-incidents") + (f"?{query}" if query else "")


@console_view()
def incidents_page(request: ConsoleRequest) -> HttpResponse:
    context = _context(*_filters(request.GET), request.role)
    template = f"{TEMPLATE}#incident-list" if request.htmx else TEMPLATE
    return render(request, template, context)


def _act(pk: int, action: str, minutes: float, user: Any) -> tuple[Incident, int]:
    who = user.get_username()
    if action == "acknowledge":
        incident, event = incidents.acknowledge(pk, who)
        notify_acknowledged(incident.pk, incident.provider_name, who, f"acknowledged by {who}")
    else:
        incident, event = incidents.mute(pk, minutes, who)
    AuditLog.objects.create(
        actor=who,
        action=f"{action}_incident",
        object_type="incident",
        object_name=str(pk),
        changes={"minutes": minutes} if action == "mute" else {},
    )
    return incident, event.pk


def _answer(request: ConsoleRequest, pk: int, action: str, minutes: float = 0) -> HttpResponse:
    try:
        incident, event_id = _act(pk, action, minutes, request.user)
    except incidents.IncidentError as exc:
        text, level, status = exc.message, messages.ERROR, exc.status
    else:
        publish_sync({"type": "health.event", "provider": incident.provider_name, "event_id": event_id})
        done = "acknowledged" if action == "acknowledge" else (f"muted for {minutes:g} min" if minutes else "unmuted")
        text, level, status = f"Incident #{pk} of {incident.provider_name} {done}.", messages.SUCCESS, 200
    return _list(request, level, text, status)


@require_POST
@console_view("act")
def acknowledge_incident(request: ConsoleRequest, pk: int) -> HttpResponse:
    return _answer(request, pk, "acknowledge")


@require_POST
@console_view("act")
def mute_incident(request: ConsoleRequest, pk: int) -> HttpResponse:
    raw = request.POST.get("minutes", "")
    try:
        minutes = float(raw)
    except ValueError:
        minutes = -1.0
    if not 0 <= minutes <= incidents.MAX_MUTE_MINUTES:
        return _refuse(request, f"Minutes must be from 0 to {incidents.MAX_MUTE_MINUTES}.")
    return _answer(request, pk, "mute", minutes)


def _refuse(request: ConsoleRequest, text: str) -> HttpResponse:
    return _list(request, messages.ERROR, text, 400)


def _list(request: ConsoleRequest, level: int, text: str, status: int) -> HttpResponse:
    """After an action: the list with its message, filtered as it was when the form was sent."""
    filters = _filters(request.POST)
    if request.htmx:
        context = _context(*filters, request.role)
        context["flash"] = [("error" if level == messages.ERROR else "success", text)]
        return render(request, f"{TEMPLATE}#incident-list", context, status=status)
    messages.add_message(request, level, text)
    return see_other(_list_url(*filters))

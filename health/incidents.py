"""Incidents: one per outage of a provider, with its timeline, acknowledged and muted by people.

`track` is called by `Monitor.evaluate` once per evaluation with what it decided of every
provider (the debounced status and the breaker, `alerts.Observation`), in one place:

- an incident opens when a provider is `down`: its status unhealthy or its breaker open
  (a breaker an operator forced open is a drill, not an incident; a disabled provider or one
  in a maintenance window opens none);
- while open it collects the provider's events (status, breaker, cooldowns, alerts, operator
  actions: `HealthEvent.incident`), the few that led to it included (`LOOKBACK`);
- it resolves when the provider has `recovered` (healthy again with its breaker closed), or
  when an operator disables it or a maintenance window starts (the outage is theirs now);
- never two open for one provider (a unique constraint holds it even against a bug).

Each opening, acknowledgement and resolution is a HealthEvent of kind `incident` (`new`:
open / acknowledged / resolved, `data`: {"incident": id}), named `incident.opened`,
`incident.acknowledged`, `incident.resolved` by the events API (health/feed.py).

The observations `track` returns carry each provider's open incident and whether it is muted
(`muted_until` in the future, even once resolved), which is what the alerts go by
(health/alerts.py): one alert per incident, one resolution message, nothing while muted.

Errors: `IncidentError` (`status` 404 or 409) for an incident that cannot be acted on.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import Max, Prefetch, Q, QuerySet
from django.utils import timezone

from providers.models import Provider

from .alerts import Observation
from .models import HealthEvent, Incident

__all__ = ["IncidentError", "Tracked", "acknowledge", "down", "listing", "mute", "recovered", "track"]

LOOKBACK = timedelta(minutes=2)  # the events that led to an incident are part of it
RECENT = timedelta(days=1)
MAX_MUTE_MINUTES = 7 * 24 * 60
TIMELINE_LIMIT = 200  # events shown per incident (the newest)


class IncidentError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def silenced(obs: Observation) -> bool:
    return not obs.enabled or obs.maintenance or obs.status in ("disabled", "maintenance")


def down(obs: Observation) -> bool:
    """Whether this evaluation calls for an incident."""
    if silenced(obs) or obs.breaker == "forced_open":
        return False
    return obs.status == "unhealthy" or obs.breaker == "open"


def recovered(obs: Observation) -> bool:
    return obs.status == "healthy" and obs.breaker in ("closed", "disabled")


@dataclass(frozen=True)
class Tracked:
    observations: list[Observation]  # with `incident` and `muted` set
    events: list[tuple[int, str]]  # (event id, provider) written now, to publish


def _event(incident: Incident, old: str, new: str, reason: str, actor: str = "", **data: Any) -> HealthEvent:
    return HealthEvent(
        provider_id=incident.provider_id,
        provider_name=incident.provider_name,
        at=timezone.now(),
        kind=HealthEvent.Kind.INCIDENT,
        old=old,
        new=new,
        reason=reason,
        actor=actor,
        data={"incident": incident.pk, **data},
        incident=incident,
    )


def track(observations: list[Observation]) -> Tracked:
    """Open, collect and resolve incidents after one evaluation (module docstring)."""
    now = timezone.now()
    opened = {i.provider_name: i for i in Incident.objects.filter(state=Incident.State.OPEN)}
    wanted = [obs.provider for obs in observations if down(obs) and obs.provider not in opened]
    ids = dict(Provider.objects.filter(name__in=wanted).values_list("name", "id")) if wanted else {}
    written: list[HealthEvent] = []
    resolved: list[Incident] = []
    # A transaction only with work to do: under SQLite's IMMEDIATE mode it takes the write lock.
    with transaction.atomic() if opened or wanted else contextlib.nullcontext():
        for obs in observations:
            incident = opened.get(obs.provider)
            if incident is None and down(obs):
                incident = Incident.objects.create(
                    provider_id=ids.get(obs.provider), provider_name=obs.provider, opened_at=now, reason=obs.reason
                )
                opened[obs.provider] = incident
                written.append(_event(incident, "", Incident.State.OPEN, obs.reason))
            elif incident is not None and (silenced(obs) or recovered(obs)):
                why = (
                    f"provider {obs.status}"
                    if silenced(obs) and obs.status in ("disabled", "maintenance")
                    else "provider disabled"
                    if not obs.enabled
                    else "maintenance window"
                    if obs.maintenance
                    else f"recovered: {obs.reason}"
                )
                incident.state, incident.resolved_at, incident.resolution = Incident.State.RESOLVED, now, why
                incident.save(update_fields=["state", "resolved_at", "resolution"])
                resolved.append(incident)
                written.append(_event(incident, Incident.State.OPEN, Incident.State.RESOLVED, why))
        for incident in opened.values():  # the open ones and those resolved now
            # Its events so far (and those that led to it) that no incident holds yet.
            HealthEvent.objects.filter(
                provider_name=incident.provider_name, incident__isnull=True, at__gte=incident.opened_at - LOOKBACK
            ).update(incident=incident)
        HealthEvent.objects.bulk_create(written)
    muted = set(Incident.objects.filter(muted_until__gt=now).values_list("provider_name", flat=True))
    still = {name: i.pk for name, i in opened.items() if i.state == Incident.State.OPEN}
    # The incident a resolution message names (sent after success_threshold good evaluations).
    latest = dict(
        Incident.objects.filter(Q(state=Incident.State.OPEN) | Q(resolved_at__gte=now - RECENT))
        .values("provider_name")
        .annotate(last=Max("id"))
        .values_list("provider_name", "last")
    )
    marked = [
        replace(obs, incident=still.get(obs.provider), latest=latest.get(obs.provider), muted=obs.provider in muted)
        for obs in observations
    ]
    return Tracked(marked, [(e.pk, e.provider_name) for e in written])


# -- people's actions ---------------------------------------------------------------------------


def _get(pk: int) -> Incident:
    incident = Incident.objects.filter(pk=pk).first()
    if incident is None:
        raise IncidentError(404, f"no incident {pk}")
    return incident


def acknowledge(pk: int, actor: str) -> tuple[Incident, HealthEvent]:
    """Someone is on it: recorded once (a second acknowledgement is a 409), open incidents only."""
    with transaction.atomic():
        incident = _get(pk)
        if incident.state != Incident.State.OPEN:
            raise IncidentError(409, f"incident {pk} is already resolved")
        if incident.acknowledged_by:
            raise IncidentError(409, f"incident {pk} is already acknowledged by {incident.acknowledged_by}")
        incident.acknowledged_by, incident.acknowledged_at = actor[:150], timezone.now()
        incident.save(update_fields=["acknowledged_by", "acknowledged_at"])
        event = _event(incident, Incident.State.OPEN, "acknowledged", f"acknowledged by {actor}", actor=actor)
        event.save()
    return incident, event


def mute(pk: int, minutes: object, actor: str) -> tuple[Incident, HealthEvent]:
    """No alert for this incident (nor its resolution) for `minutes` (1 to MAX_MUTE_MINUTES;
    0 ends a mute). Recorded as an operator action (`provider.action`, `to` mute_incident)."""
    if isinstance(minutes, bool) or not isinstance(minutes, int | float) or not 0 <= minutes <= MAX_MUTE_MINUTES:
        raise IncidentError(400, f"`minutes` must be a number from 0 to {MAX_MUTE_MINUTES}")
    with transaction.atomic():
        incident = _get(pk)
        until = timezone.now() + timedelta(minutes=float(minutes)) if minutes else None
        incident.muted_until, incident.muted_by = until, actor[:150] if until else ""
        incident.save(update_fields=["muted_until", "muted_by"])
        why = f"incident {pk} muted for {minutes:g} min by {actor}" if until else f"incident {pk} unmuted by {actor}"
        event = HealthEvent(
            provider_id=incident.provider_id,
            provider_name=incident.provider_name,
            at=timezone.now(),
            kind=HealthEvent.Kind.ACTION,
            new="mute_incident",
            reason=why,
            actor=actor,
            data={"incident": pk, "muted_until": until.isoformat() if until else None},
            incident=incident,
        )
        event.save()
    return incident, event


# -- reading ------------------------------------------------------------------------------------


def listing(state: str = "", provider: str = "", limit: int = 100) -> list[Incident]:
    """Incidents newest first, each with `timeline`: its events, oldest first."""
    rows: QuerySet[Incident] = Incident.objects.all()
    if state:
        rows = rows.filter(state=state)
    if provider:
        rows = rows.filter(provider_name=provider)
    found: list[Incident] = list(
        rows.order_by("-opened_at", "-id")[:limit].prefetch_related(
            Prefetch("events", queryset=HealthEvent.objects.order_by("-id"), to_attr="newest")
        )
    )
    for incident in found:
        incident.timeline = list(reversed(incident.newest[:TIMELINE_LIMIT]))  # type: ignore[attr-defined]
    return found

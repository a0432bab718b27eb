"""Uptime: the share of the monitored time a provider was up, per window.

Definition (README "Uptime"): over a window, from the provider's status history (the
`status` HealthEvents the monitor writes on every change),

    uptime = time healthy or degraded / time monitored

where *monitored* is the time the status was healthy, degraded or unhealthy, minus the time
inside a maintenance window (MaintenanceWindow rows, and the `maintenance` status). Time
`unknown` (not checked yet), `disabled` or in maintenance counts neither way. Degraded
counts as up: the provider answered, only slower or with some errors. The status held at the
window's start is the one set by the last change before it; a provider with no change ever
recorded holds its current status since it was created. None when nothing was monitored.

Reads two indexed queries plus one per provider with history before the window: cheap
enough for the analytics page's refresh and a provider page.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db.models import OuterRef, Subquery

from providers.models import MaintenanceWindow, Provider

from .models import HealthEvent, ProviderHealth, Status

__all__ = ["Uptime", "uptime", "uptime_of"]

UP = frozenset({Status.HEALTHY, Status.DEGRADED})
MONITORED = frozenset({Status.HEALTHY, Status.DEGRADED, Status.UNHEALTHY})

Span = tuple[float, float]


@dataclass(frozen=True)
class Uptime:
    """Seconds up and monitored over a window; `ratio` is None when nothing was monitored."""

    up_s: float
    monitored_s: float
    maintenance_s: float

    @property
    def ratio(self) -> float | None:
        return round(self.up_s / self.monitored_s, 6) if self.monitored_s > 0 else None


def _overlap(span: Span, others: Iterable[Span]) -> float:
    """Seconds of `span` covered by the union of `others`."""
    a, b = span
    covered, reach = 0.0, a
    for x, y in sorted(others):
        x, y = max(x, reach), min(y, b)
        if y > x:
            covered += y - x
            reach = y
    return covered


def measure(
    changes: Sequence[tuple[float, str]], first: str, start: float, end: float, pauses: Sequence[Span]
) -> Uptime:
    """Uptime over [start, end) of a status that is `first` at `start` and then changes at
    the given (epoch seconds, new status) moments; `pauses` are maintenance spans. Pure."""
    up = monitored = paused = 0.0
    status, since = first, start
    for at, new in [*sorted(changes), (end, "")]:
        at = min(max(at, start), end)
        if at > since:
            length = at - since
            if status in MONITORED:
                excluded = _overlap((since, at), pauses)
                paused += excluded
                monitored += length - excluded
                if status in UP:
                    up += length - excluded
            elif status == Status.MAINTENANCE:
                paused += length
        status, since = new, max(at, since)
    return Uptime(up, monitored, paused)


def uptime(start: datetime, end: datetime, names: Sequence[str] | None = None) -> dict[str, Uptime]:
    """Uptime of every configured provider (or those in `names`) over [start, end)."""
    providers = Provider.objects.order_by("name")
    if names is not None:
        providers = providers.filter(name__in=list(names))
    before = HealthEvent.objects.filter(
        kind=HealthEvent.Kind.STATUS, provider_name=OuterRef("name"), at__lt=start
    ).order_by("-at", "-id")
    rows = list(providers.annotate(before=Subquery(before.values("new")[:1])).values("name", "before", "created_at"))
    wanted = [r["name"] for r in rows]
    changes: dict[str, list[tuple[float, str, str]]] = {}
    for name, at, old, new in (
        HealthEvent.objects.filter(kind=HealthEvent.Kind.STATUS, provider_name__in=wanted, at__gte=start, at__lt=end)
        .order_by("at", "id")
        .values_list("provider_name", "at", "old", "new")
    ):
        changes.setdefault(name, []).append((at.timestamp(), old, new))
    pauses: dict[str, list[Span]] = {}
    for name, a, b in MaintenanceWindow.objects.filter(
        provider__name__in=wanted, starts_at__lt=end, ends_at__gt=start
    ).values_list("provider__name", "starts_at", "ends_at"):
        pauses.setdefault(name, []).append((a.timestamp(), b.timestamp()))
    current = dict(ProviderHealth.objects.filter(provider__name__in=wanted).values_list("provider__name", "status"))
    s, e = start.timestamp(), end.timestamp()
    out = {}
    for row in rows:
        name = row["name"]
        mine = changes.get(name, [])
        begin = s
        if row["before"] is not None:
            first = row["before"]
        elif mine:
            first = mine[0][1] or Status.UNKNOWN  # what the first change in the window left
        else:  # no change ever recorded: its current status, since it was created
            first = current.get(name, Status.UNKNOWN)
            begin = max(s, row["created_at"].timestamp())
        out[name] = measure([(at, new) for at, _old, new in mine], first, begin, e, pauses.get(name, []))
    return out


def uptime_of(provider: str, start: datetime, end: datetime) -> Uptime | None:
    """One provider's uptime over [start, end) (None when no such provider)."""
    return uptime(start, end, [provider]).get(provider)

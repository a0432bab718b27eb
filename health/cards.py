"""What a provider card shows: the monitor's row and this process's live engine state
(`health_entries`), the last checks from the probe history, and the dashboard's filters.

The dashboard, the provider page and the websocket consumer all build cards here, so a
card pushed over the socket is the same markup as the one in the page.

A dashboard push needs every card (to filter, sort and count them) and the recent changes,
the same for every console: `boards.get(seen)` loads them once for all the consoles of this
process that heard of the same changes (a single flight), and each console renders its own
view of them (its role, its filters).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.safestring import SafeString

from project.database import db_call
from providers.models import Capability, Kind, MaintenanceWindow, Provider

from . import charts
from .api import health_entries
from .models import HealthEvent, ProbeResult, ProviderHealth, Status

BEATS = 30  # checks in a card's heartbeat strip and sparkline

# "Worst first": what needs an operator's eyes comes first.
STATUS_ORDER = {"unhealthy": 0, "degraded": 1, "unknown": 2, "maintenance": 3, "healthy": 4, "disabled": 5}
BREAKER_ORDER = {"open": 0, "forced_open": 0, "half_open": 1}
BREAKER_LABELS = {
    "closed": "closed",
    "open": "open",
    "half_open": "half-open",
    "forced_open": "forced open",
    "disabled": "off",
}
KIND_LABELS = dict(Kind.choices)
SORTS = {"priority": "Priority", "worst": "Worst first", "name": "Name"}


@dataclass(frozen=True)
class Card:
    name: str
    kind: str
    status: str
    breaker: str
    reason: str = ""
    capabilities: tuple[str, ...] = ()
    is_demo: bool = False
    enabled: bool = True
    maintenance: bool = False
    maintenance_until: datetime | None = None
    priority: int = 1
    score: float | None = None
    score_parts: dict[str, float] = field(default_factory=dict)
    success_rate: float | None = None
    calls: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    last_check_at: datetime | None = None
    last_check_ok: bool | None = None
    last_check_ms: float | None = None
    last_error: str = ""
    cooldowns: tuple[dict[str, Any], ...] = ()
    beats: tuple[charts.Beat, ...] = ()

    @property
    def dom_id(self) -> str:
        return f"card-{self.name}"

    @property
    def kind_label(self) -> str:
        return KIND_LABELS.get(self.kind, self.kind)

    @property
    def breaker_label(self) -> str:
        return BREAKER_LABELS.get(self.breaker, self.breaker.replace("_", " "))

    @property
    def breaker_tone(self) -> str:
        return {"closed": "ok", "half_open": "warn", "disabled": "muted"}.get(self.breaker, "bad")

    @property
    def parts(self) -> list[tuple[str, str]]:
        """The score's parts, named for people."""
        names = {"probe": "Probe", "latency": "Latency", "reliability": "Reliability"}
        out = [(names[k], f"{self.score_parts[k]:g}") for k in names if k in self.score_parts]
        factor = self.score_parts.get("state_factor")
        if factor is not None:
            out.append(("Breaker", f"× {factor:g}"))
        return out

    @property
    def parts_text(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in self.parts) or "no score yet"

    @cached_property
    def heartbeat(self) -> SafeString:
        return charts.heartbeat(self.beats, label=f"{self.name} checks", slots=BEATS)

    @cached_property
    def sparkline(self) -> SafeString:
        return charts.sparkline(
            [b.latency_ms for b in self.beats], [not b.ok for b in self.beats], label=f"{self.name} check latency"
        )

    def worst_first(self) -> tuple[Any, ...]:
        return (
            STATUS_ORDER.get(self.status, 2),
            BREAKER_ORDER.get(self.breaker, 2),
            -1 if self.score is None else self.score,
            self.name,
        )


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _extras(names: list[str], beats: bool = True) -> dict[str, dict[str, Any]]:
    """Per provider: the last checks, the capabilities, the end of an open maintenance window."""
    out: dict[str, dict[str, Any]] = {
        p.name: {
            "capabilities": tuple(p.effective_capabilities),
            "is_demo": p.is_demo,
            "beats": [],
            "priority": p.priority,
        }
        for p in Provider.objects.filter(name__in=names)
    }
    for name, ms in ProviderHealth.objects.filter(provider__name__in=names).values_list(
        "provider__name", "last_check_ms"
    ):
        out.setdefault(name, {})["last_check_ms"] = ms
    now = timezone.now()
    for name, ends in (
        MaintenanceWindow.objects.filter(provider__name__in=names, starts_at__lte=now, ends_at__gt=now)
        .order_by("ends_at")
        .values_list("provider__name", "ends_at")
    ):
        out.setdefault(name, {})["maintenance_until"] = ends
    if not beats:
        return {name: {**extra, "beats": ()} for name, extra in out.items()}
    recent = (
        ProbeResult.objects.filter(provider__name__in=names)
        .annotate(n=Window(RowNumber(), partition_by=[F("provider_id")], order_by=F("at").desc()))
        .filter(n__lte=BEATS)
        .values_list("provider__name", "at", "ok", "slow", "latency_ms", "error")
    )
    for name, at, ok, slow, ms, error in recent:
        out.setdefault(name, {"beats": []}).setdefault("beats", []).append(charts.Beat(at, ok, slow, ms, error))
    for extra in out.values():
        extra["beats"] = tuple(sorted(extra.get("beats", ()), key=lambda b: b.at))
    return out


async def load_cards(names: list[str] | None = None, *, beats: bool = True) -> list[Card]:
    """Cards for these providers (all when None), in the configuration's priority order;
    without `beats`, no check history (enough to filter and sort them)."""
    entries = await health_entries(names)
    extras = await db_call(_extras, [e["name"] for e in entries], beats)
    cards = []
    for e in entries:
        extra = extras.get(e["name"], {})
        cards.append(
            Card(
                name=e["name"],
                kind=e["kind"],
                status=e["status"],
                reason=e["reason"],
                breaker=e["breaker"],
                capabilities=extra.get("capabilities", ()),
                is_demo=extra.get("is_demo", False),
                enabled=e["enabled"],
                maintenance=e["maintenance"],
                maintenance_until=extra.get("maintenance_until"),
                priority=extra.get("priority", 1),
                score=e["score"],
                score_parts=dict(e["score_parts"] or {}),
                success_rate=e["success_rate"],
                calls=e["calls"],
                p50_ms=e["latency_ms"]["p50"],
                p95_ms=e["latency_ms"]["p95"],
                last_check_at=_parse(e["last_check_at"]),
                last_check_ok=e["last_check_ok"],
                last_check_ms=extra.get("last_check_ms"),
                last_error=e["last_error"],
                cooldowns=tuple(e["cooldowns"]),
                beats=extra.get("beats", ()),
            )
        )
    return cards


@dataclass(frozen=True)
class Filters:
    """The dashboard's GET parameters; unknown values are ignored, never an error."""

    capability: str = ""
    status: str = ""
    sort: str = "priority"

    @classmethod
    def from_query(cls, query: Any) -> Filters:
        capability = query.get("capability", "")
        status = query.get("status", "")
        sort = query.get("sort", "priority")
        return cls(
            capability if capability in Capability.values else "",
            status if status in Status.values else "",
            sort if sort in SORTS else "priority",
        )

    def apply(self, cards: Iterable[Card]) -> list[Card]:
        chosen = [
            c
            for c in cards
            if (not self.capability or self.capability in c.capabilities)
            and (not self.status or c.status == self.status)
        ]
        if self.sort == "worst":
            chosen.sort(key=Card.worst_first)
        elif self.sort == "name":
            chosen.sort(key=lambda c: c.name)
        return chosen

    def href(self, **changes: str) -> str:
        """The dashboard's URL with these parameters changed ("" removes one)."""
        values = {**{"capability": self.capability, "status": self.status, "sort": self.sort}, **changes}
        if values["sort"] == "priority":
            values["sort"] = ""
        query = urlencode({k: v for k, v in values.items() if v})
        return f"?{query}" if query else "?"

    @property
    def active(self) -> bool:
        return bool(self.capability or self.status)

    def choices(self) -> dict[str, list[dict[str, Any]]]:
        """Links for every filter and sort value, each with its href and whether it is on."""
        return {
            "capability": [
                {"value": "", "label": "All", "href": self.href(capability=""), "current": not self.capability}
            ]
            + [
                {"value": c, "label": c, "href": self.href(capability=c), "current": self.capability == c}
                for c in Capability.values
            ],
            "status": [{"value": "", "label": "All", "href": self.href(status=""), "current": not self.status}]
            + [
                {"value": s, "label": s, "href": self.href(status=s), "current": self.status == s}
                for s in Status.values
            ],
            "sort": [
                {"value": k, "label": v, "href": self.href(sort=k), "current": self.sort == k} for k, v in SORTS.items()
            ],
        }


def status_counts(statuses: Iterable[str]) -> list[tuple[str, int]]:
    counts = Counter(statuses)
    return [(s, counts[s]) for s in STATUS_ORDER if counts[s]]


def recent_events(limit: int = 8, provider: str | None = None) -> list[HealthEvent]:
    rows = HealthEvent.objects.all()
    if provider is not None:
        rows = rows.filter(provider_name=provider)
    return list(rows[:limit])


# -- one load for every console ------------------------------------------------------------------


@dataclass(frozen=True)
class Board:
    """What every dashboard push is made of: every card, with its checks, and the recent changes."""

    cards: tuple[Card, ...]
    recent: tuple[HealthEvent, ...]


async def load_board() -> Board:
    return Board(tuple(await load_cards()), tuple(await db_call(recent_events, 8)))


@dataclass(frozen=True)
class _Flight:
    started: int  # the changes heard of when the load started: it reflects all of them
    loop: asyncio.AbstractEventLoop
    task: asyncio.Task[Board]


class SharedBoards:
    """A single flight of `load_board` for the consoles of this process.

    Each console counts the changes it hears of (`note_change`, on every `health.update` or
    `health.event`) and asks for a board that reflects the last one it heard of (`get(seen)`).
    A load started after that change reflects it, in flight or done: the consoles pushing the
    same changes share it. A load started before it, failed, or of another event loop does
    not: a new one starts. A console that goes away while it waits cancels only its waiting.
    """

    def __init__(self) -> None:
        self.changes = 0
        self._flight: _Flight | None = None

    def note_change(self) -> int:
        """One more change heard of; returns its number, for `get`."""
        self.changes += 1
        return self.changes

    async def get(self, seen: int | None = None) -> Board:
        """A board that reflects change `seen` (None: everything until now)."""
        if seen is None:
            seen = self.note_change()
        loop = asyncio.get_running_loop()
        flight = self._flight
        if flight is None or flight.started < seen or flight.loop is not loop or _failed(flight.task):
            flight = self._flight = _Flight(self.changes, loop, loop.create_task(load_board()))
        return await asyncio.shield(flight.task)


def _failed(task: asyncio.Task[Board]) -> bool:
    return task.done() and (task.cancelled() or task.exception() is not None)


boards = SharedBoards()

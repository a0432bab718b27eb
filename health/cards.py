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
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
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

# The table: the default view above TABLE_AT providers (a wall of cards past a dozen).
TABLE_AT = 12
VIEWS = ("cards", "table")
STRIP = 20  # checks in a table row's strip
# Sortable columns, each with the direction it starts in: what needs eyes first.
COLUMNS = {
    "name": ("Name", "asc"),
    "status": ("Status", "asc"),
    "score": ("Score", "asc"),
    "latency": ("Latency", "desc"),
    "errors": ("Error rate", "desc"),
    "priority": ("Priority", "asc"),
}
Q_MAX = 64  # characters of a name search


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
    hidden: bool = False  # a table row the page's filters or search leave out (it stays, hidden)

    @property
    def dom_id(self) -> str:
        return f"card-{self.name}"

    @property
    def row_id(self) -> str:
        return f"row-{self.name}"

    @property
    def error_rate(self) -> float | None:
        return None if self.success_rate is None else max(0.0, 1.0 - self.success_rate)

    def sort_value(self, column: str) -> float | str | None:
        """The value a table column sorts by (None: no value, always last). table.js sorts the
        rows on the page by the same values (`data-k-<column>`), so the two orders agree."""
        if column == "name":
            return self.name
        if column == "status":
            return STATUS_ORDER.get(self.status, 2) * 3 + BREAKER_ORDER.get(self.breaker, 2)
        if column == "score":
            return self.score
        if column == "latency":
            return self.p95_ms
        if column == "errors":
            return self.error_rate
        return self.priority

    @property
    def sort_keys(self) -> dict[str, str]:
        """The sort values as the row's data attributes ("" for none)."""
        return {c: "" if (v := self.sort_value(c)) is None else f"{v:g}" for c in COLUMNS if c != "name"}

    @cached_property
    def strip(self) -> SafeString:
        return status_strip(self.beats, label=f"{self.name} checks")

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


def status_strip(beats: Iterable[charts.Beat], *, label: str, slots: int = STRIP) -> SafeString:
    """The last `slots` checks as a compact strip, oldest left: one path per outcome (a table
    row's strip is a few hundred bytes, so 200 rows stay light), one summary for people."""
    shown = list(beats)[-slots:]
    paths: dict[str, list[str]] = {"none": [], "ok": [], "slow": [], "fail": []}
    offset = slots - len(shown)
    for i in range(slots):
        state = "none" if i < offset else _outcome(shown[i - offset])
        paths[state].append(f"M{i * 4} 0h3v12h-3z")
    failed = sum(1 for b in shown if not b.ok)
    slow = sum(1 for b in shown if b.ok and b.slow)
    summary = (
        f"{label}: last {len(shown)} checks, {len(shown) - failed - slow} ok, {slow} slow, {failed} failed"
        if shown
        else f"{label}: no checks yet"
    )
    drawn = "".join(f'<path class="beat beat-{state}" d="{"".join(d)}"></path>' for state, d in paths.items() if d)
    return format_html(
        '<svg class="strip" role="img" aria-label="{}" viewBox="0 0 {} 12" preserveAspectRatio="none">'
        "<title>{}</title>{}</svg>",
        summary,
        slots * 4 - 1,
        summary,
        SafeString(drawn),
    )


def _outcome(beat: charts.Beat) -> str:
    return "fail" if not beat.ok else ("slow" if beat.slow else "ok")


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
    """The dashboard's GET parameters; unknown values are ignored, never an error.

    Two views: cards (filtered by status and capability, sorted by `sort`) and a table
    (`view=table`, or by default above TABLE_AT providers), which also filters by kind,
    searches names (`q`) and sorts by any column (`sort`, `dir`).

    The table keeps every row on the page, hiding those its filters leave out, so that a push
    replaces one row in place whatever the page's search and sort: the socket lists all rows
    in the configuration's order and the page (table.js) arranges them, live, as its URL says.
    Only a page render (`arrange`, the view's own) sorts and hides them on the server, for the
    first paint and for a browser without JavaScript.
    """

    capability: str = ""
    status: str = ""
    sort: str = "priority"
    view: str = ""  # "cards", "table", or "": the table above TABLE_AT providers
    kind: str = ""
    q: str = ""
    dir: str = ""  # "asc", "desc", or "": the column's own
    arrange: bool = False

    @classmethod
    def from_query(cls, query: Any, *, arrange: bool = False) -> Filters:
        def pick(name: str, allowed: Iterable[str], default: str = "") -> str:
            value = query.get(name, default)
            return value if value in allowed else default

        return cls(
            capability=pick("capability", Capability.values),
            status=pick("status", Status.values),
            sort=pick("sort", {*SORTS, *COLUMNS}, "priority"),
            view=pick("view", VIEWS),
            kind=pick("kind", Kind.values),
            q=str(query.get("q", "")).strip()[:Q_MAX],
            dir=pick("dir", ("asc", "desc")),
            arrange=arrange,
        )

    threshold = TABLE_AT  # for templates: `total > filters.threshold`

    def table_for(self, total: int) -> bool:
        """Whether a dashboard of `total` providers shows the table."""
        return self.view == "table" or (not self.view and total > TABLE_AT)

    def matches(self, card: Card) -> bool:
        return (
            (not self.capability or self.capability in card.capabilities)
            and (not self.status or card.status == self.status)
            and (not self.kind or card.kind == self.kind)
            and (not self.q or self.q.lower() in card.name.lower())
        )

    @property
    def column(self) -> str:
        """The table's sort column (the cards' "worst first" is its status column)."""
        return "status" if self.sort == "worst" else self.sort

    @property
    def descending(self) -> bool:
        return (self.dir or COLUMNS[self.column][1]) == "desc"

    def apply(self, cards: Iterable[Card]) -> list[Card]:
        every = list(cards)
        if self.table_for(len(every)):
            if not self.arrange:
                return every
            return [c if self.matches(c) else replace(c, hidden=True) for c in self.ordered(every)]
        chosen = [
            c
            for c in every
            if (not self.capability or self.capability in c.capabilities)
            and (not self.status or c.status == self.status)
        ]
        if self.sort == "worst":
            chosen.sort(key=Card.worst_first)
        elif self.sort == "name":
            chosen.sort(key=lambda c: c.name)
        elif self.sort in COLUMNS:
            chosen = self.ordered(chosen)
        return chosen

    def ordered(self, cards: list[Card]) -> list[Card]:
        """By the sort column; rows without a value last, ties by name (as table.js)."""
        if self.column == "priority" and not self.dir:
            return list(cards)  # the configuration's order: priority, then name
        by_name = sorted(cards, key=lambda c: c.name)
        known = [c for c in by_name if c.sort_value(self.column) is not None]
        known.sort(key=lambda c: c.sort_value(self.column), reverse=self.descending)  # type: ignore[arg-type,return-value]
        return known + [c for c in by_name if c.sort_value(self.column) is None]

    def href(self, **changes: str) -> str:
        """The dashboard's URL with these parameters changed ("" removes one)."""
        values = {
            "view": self.view,
            "capability": self.capability,
            "status": self.status,
            "kind": self.kind,
            "q": self.q,
            "sort": self.sort,
            "dir": self.dir,
            **changes,
        }
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

    def columns(self) -> list[dict[str, str]]:
        """The table's sortable headers: each with its link (the other direction when it is
        the sort column) and its `aria-sort`."""
        out = []
        for name, (label, first) in COLUMNS.items():
            current = self.column == name
            direction = ("asc" if self.descending else "desc") if current else first
            out.append(
                {
                    "name": name,
                    "label": label,
                    "href": self.href(sort=name, dir=direction, view="table"),
                    "sort": ("descending" if self.descending else "ascending") if current else "none",
                    "first": first,
                }
            )
        return out

    @property
    def cards_href(self) -> str:
        return self.href(view="cards")

    @property
    def table_href(self) -> str:
        return self.href(view="table")

    @property
    def kinds(self) -> list[tuple[str, str]]:
        return list(Kind.choices)

    @property
    def statuses(self) -> list[str]:
        return list(Status.values)

    @property
    def capabilities(self) -> list[str]:
        return list(Capability.values)


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

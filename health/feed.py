"""The event history under the events API's names: what `GET /api/events` lists, what
`GET /api/events/stream` sends and what an event-feed webhook receives, all from the same rows
(HealthEvent), so the three agree.

Each row is one event, named from its kind and values:

| name                      | row                                                          |
|---------------------------|--------------------------------------------------------------|
| `breaker.opened`          | breaker, to `open` or `forced_open`                          |
| `breaker.half_open`       | breaker, to `half_open`                                      |
| `breaker.closed`          | breaker, to `closed`                                         |
| `breaker.mode`            | breaker, to an operator's mode (`disabled`, `metrics_only`)  |
| `provider.maintenance`    | status, into or out of `maintenance`                         |
| `provider.status`         | status, any other change                                     |
| `credential.rejected`     | cooldown `rejected` (a 401/403)                              |
| `credential.exhausted`    | cooldown `exhausted` (quota or credit gone)                  |
| `credential.rate_limited` | cooldown `rate_limited` (a 429)                              |
| `model.missing`           | cooldown `model_missing`                                     |
| `alert.sent`              | alert, delivered                                             |
| `alert.failed`            | alert, not delivered                                         |
| `provider.enabled`        | action `enable`                                              |
| `provider.disabled`       | action `disable`                                             |
| `health.reset`            | action `reset_statistics`                                    |
| `provider.action`         | any other operator action (`to` names it: `reset_breaker`...)|
| `request.failed`          | request (health/failures.py)                                 |
| `incident.opened`         | incident, to `open` (health/incidents.py)                    |
| `incident.acknowledged`   | incident, to `acknowledged`                                  |
| `incident.resolved`       | incident, to `resolved`                                      |

Every event is `{id, event, provider, from, to, reason, at, actor, detail}`; `detail` is
`{}` except for `request.failed`: `route`, `request_id`, `providers` (called, in order),
`skipped` (not tried: breaker open, credentials set aside), `error`, `status` (what the client
got) and `count` (1, or how many failed in the window it sums up: health/failures.py); its
`provider` is the last one called and `to` the outcome (`failure`, `unavailable`, `deadline`).
An `incident.*` event's `detail` is `{"incident": id}` (and `muted_until` for a mute).
Ids grow with each row written: the stream's `id:` and its `Last-Event-ID` are these ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from django.db.models import Q, QuerySet
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from .models import EVENT_TYPES, HealthEvent

K = HealthEvent.Kind
OPENED, MAINTENANCE = ("open", "forced_open"), "maintenance"
ACTION_NAMES = {"enable": "provider.enabled", "disable": "provider.disabled", "reset_statistics": "health.reset"}
COOLDOWN_NAMES = {
    "rejected": "credential.rejected",
    "exhausted": "credential.exhausted",
    "rate_limited": "credential.rate_limited",
    "model_missing": "model.missing",
}
INCIDENT_NAMES = {"open": "incident.opened", "acknowledged": "incident.acknowledged", "resolved": "incident.resolved"}
EVENT_NAMES = EVENT_TYPES

# Each name as a filter on the rows (`?kind=`), matching `event_name` below.
_FILTERS: dict[str, Q] = {
    "breaker.opened": Q(kind=K.BREAKER, new__in=OPENED),
    "breaker.half_open": Q(kind=K.BREAKER, new="half_open"),
    "breaker.closed": Q(kind=K.BREAKER, new="closed"),
    "breaker.mode": Q(kind=K.BREAKER) & ~Q(new__in=(*OPENED, "half_open", "closed")),
    "provider.maintenance": Q(kind=K.STATUS) & (Q(new=MAINTENANCE) | Q(old=MAINTENANCE)),
    "provider.status": Q(kind=K.STATUS) & ~Q(new=MAINTENANCE) & ~Q(old=MAINTENANCE),
    **{name: Q(kind=K.COOLDOWN, new=kind) for kind, name in COOLDOWN_NAMES.items()},
    "alert.sent": Q(kind=K.ALERT, new="sent"),
    "alert.failed": Q(kind=K.ALERT) & ~Q(new="sent"),
    **{name: Q(kind=K.ACTION, new=action) for action, name in ACTION_NAMES.items()},
    "provider.action": Q(kind=K.ACTION) & ~Q(new__in=list(ACTION_NAMES)),
    "request.failed": Q(kind=K.REQUEST),
    **{name: Q(kind=K.INCIDENT, new=state) for state, name in INCIDENT_NAMES.items()},
}
assert set(_FILTERS) == set(EVENT_NAMES), "every event name has its filter"

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
Q_MAX = 100  # characters of a text search


def event_name(kind: str, old: str, new: str) -> str:
    """The events API's name of a row of `kind` going from `old` to `new`."""
    if kind == K.BREAKER:
        if new in OPENED:
            return "breaker.opened"
        return {"half_open": "breaker.half_open", "closed": "breaker.closed"}.get(new, "breaker.mode")
    if kind == K.STATUS:
        return "provider.maintenance" if MAINTENANCE in (old, new) else "provider.status"
    if kind == K.COOLDOWN:
        return COOLDOWN_NAMES.get(new, "credential.rate_limited")
    if kind == K.ALERT:
        return "alert.sent" if new == "sent" else "alert.failed"
    if kind == K.ACTION:
        return ACTION_NAMES.get(new, "provider.action")
    if kind == K.INCIDENT:
        return INCIDENT_NAMES.get(new, "incident.opened")
    return "request.failed"


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def as_item(row: HealthEvent) -> dict[str, Any]:
    """One row as the API shows it (the list's item and the stream's `data`)."""
    return {
        "id": row.pk,
        "event": event_name(row.kind, row.old, row.new),
        "provider": row.provider_name,
        "from": row.old,
        "to": row.new,
        "reason": row.reason,
        "at": iso(row.at),
        "actor": row.actor,
        "detail": row.data or {},
    }


# -- the list's query -------------------------------------------------------------------------


def _names(value: Any) -> Any:
    """`kind=a,b` and `kind=a&kind=b` alike: one list of names."""
    values = value if isinstance(value, list) else [value]
    return [part.strip() for v in values if isinstance(v, str) for part in v.split(",") if part.strip()]


def _instant(value: Any) -> Any:
    # pydantic reads ISO 8601 and epoch seconds; a time without a zone is UTC here
    return value.strip() if isinstance(value, str) else value


class EventQuery(BaseModel):
    """`GET /api/events`' parameters; an error names the one at fault.

    `since` is inclusive and `until` exclusive (ISO 8601, UTC unless it says, or seconds since
    the epoch); `q` keeps the events whose provider name or reason holds every one of its
    words, ignoring case."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    provider: str = Field(default="", max_length=64)
    kind: Annotated[list[str], BeforeValidator(_names)] = Field(default_factory=list, max_length=len(EVENT_NAMES))
    since: Annotated[datetime | None, BeforeValidator(_instant)] = None
    until: Annotated[datetime | None, BeforeValidator(_instant)] = None
    q: str = Field(default="", max_length=Q_MAX)
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: int | None = Field(default=None, ge=1)

    @field_validator("kind")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        unknown = [n for n in names if n not in _FILTERS]
        if unknown:
            raise ValueError(f"unknown event type {unknown[0]!r}; known: {', '.join(EVENT_NAMES)}")
        return names

    @field_validator("since", "until")
    @classmethod
    def _zoned(cls, at: datetime | None) -> datetime | None:
        return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at

    @field_validator("q")
    @classmethod
    def _text(cls, text: str) -> str:
        return " ".join(text.split())

    @model_validator(mode="after")
    def _range(self) -> EventQuery:
        if self.since is not None and self.until is not None and self.since > self.until:
            raise ValueError("`since` is after `until`")
        return self


@dataclass(frozen=True)
class QueryError(ValueError):
    param: str
    message: str

    def __str__(self) -> str:
        return f"`{self.param}` {self.message}"


def parse_query(query: Any) -> EventQuery:
    """The parameters of a QueryDict (or a mapping of lists); QueryError for a bad one."""
    raw: dict[str, Any] = {}
    for name in ("provider", "since", "until", "q", "limit", "cursor"):
        value = query.get(name)
        if value not in (None, ""):
            raw[name] = value
    kinds = query.getlist("kind") if hasattr(query, "getlist") else query.get("kind")
    if kinds:
        raw["kind"] = kinds
    try:
        return EventQuery.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        param = str(error["loc"][0]) if error["loc"] else "since"
        message = error["msg"].removeprefix("Value error, ")
        if not error["loc"]:  # the range as a whole
            message = "is after `until`"
        elif param in ("since", "until"):
            message = "must be an ISO 8601 time (2026-12-03T10:00:00Z) or seconds since the epoch"
        raise QueryError(param, message[:600]) from None


def filtered(q: EventQuery) -> QuerySet[HealthEvent]:
    rows = HealthEvent.objects.all()
    if q.provider:
        rows = rows.filter(provider_name=q.provider)
    if q.kind:
        match = Q()
        for name in q.kind:
            match |= _FILTERS[name]
        rows = rows.filter(match)
    if q.since is not None:
        rows = rows.filter(at__gte=q.since)
    if q.until is not None:
        rows = rows.filter(at__lt=q.until)
    for word in q.q.split():
        rows = rows.filter(Q(provider_name__icontains=word) | Q(reason__icontains=word))
    return rows


def page(q: EventQuery) -> dict[str, Any]:
    """One page, newest first (by id: the order events were written, the stream's order), and
    the cursor of the next (None on the last page)."""
    rows = filtered(q)
    if q.cursor is not None:
        rows = rows.filter(id__lt=q.cursor)
    found = list(rows.order_by("-id")[: q.limit + 1])
    more = len(found) > q.limit
    found = found[: q.limit]
    return {"events": [as_item(r) for r in found], "next_cursor": str(found[-1].pk) if more else None}


def matches(item: dict[str, Any], provider: str, kinds: list[str]) -> bool:
    """Whether a stream's filters (`?provider=`, `?kind=`) let `item` through."""
    return (not provider or item["provider"] == provider) and (not kinds or item["event"] in kinds)


def after(event_id: int, limit: int) -> list[HealthEvent]:
    """The rows written after `event_id`, oldest first (the stream, a feed)."""
    return list(HealthEvent.objects.filter(id__gt=event_id).order_by("id")[:limit])


def by_ids(ids: list[int]) -> list[HealthEvent]:
    return list(HealthEvent.objects.filter(id__in=ids).order_by("id")) if ids else []


def last_id() -> int:
    return HealthEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0

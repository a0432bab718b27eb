"""`request.failed`: a request that no target served, as an event of the history.

The gateway announces every finished request (providers/gateway/records.py); this listener
(connected in HealthConfig.ready) keeps those whose outcome is `failure` (every target
failed), `unavailable` (none could be tried: breakers open, credentials set aside) or
`deadline` (the time ran out before one answered).

They are stored like every other event (kind `request`), so the list, the stream's resume
and event-feed webhooks all have them, and bounded, so a flood of failures floods neither
the database nor the streams:

- per route and per process, the first failure opens a window of
  EVENTS_REQUEST_FAILED_WINDOW_S (1 s) and is written at once; the failures that follow in
  the window are counted, and when it closes they are written as one more event
  (`detail.count` says how many, `detail.request_id` is the last one's). A sustained flood
  is thus at most two events per route per second per process;
- only the newest EVENTS_REQUEST_FAILED_KEEP (10 000) `request` rows are kept: the oldest
  beyond that are deleted as new ones are written.

The listener only queues (it runs on the request's event loop and must not block); a task
writes the rows and publishes each, as the engine's events are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings

from project.database import db_call
from providers.gateway.records import RequestRecord
from providers.models import Provider

from .events import publish
from .models import HealthEvent

log = logging.getLogger(__name__)

FAILED = frozenset({"failure", "unavailable", "deadline"})
PRUNE_EVERY = 100  # rows written between two prunings


def window_s() -> float:
    return float(getattr(settings, "EVENTS_REQUEST_FAILED_WINDOW_S", 1.0))


def keep() -> int:
    return int(getattr(settings, "EVENTS_REQUEST_FAILED_KEEP", 10_000))


@dataclass
class Failure:
    """One failed request, or the count of those that followed it in a window."""

    at: datetime
    route: str
    request_id: str
    outcome: str
    status: int
    error: str
    providers: list[str]
    skipped: list[str]
    count: int = 1

    @classmethod
    def of(cls, record: RequestRecord) -> Failure:
        called = [a.get("provider", "") for a in record.attempts if a.get("skipped") is None]
        skipped = [a.get("provider", "") for a in record.attempts if a.get("skipped") is not None]
        return cls(
            record.at,
            record.route,
            record.request_id,
            record.outcome,
            record.status,
            record.error,
            list(dict.fromkeys(called)),
            list(dict.fromkeys(skipped)),
        )

    def add(self, other: Failure) -> None:
        self.count += 1
        self.at, self.request_id, self.outcome, self.status, self.error = (
            other.at,
            other.request_id,
            other.outcome,
            other.status,
            other.error,
        )
        self.providers = list(dict.fromkeys([*self.providers, *other.providers]))
        self.skipped = list(dict.fromkeys([*self.skipped, *other.skipped]))

    def row(self, burst: bool) -> HealthEvent:
        why = self.error or self.outcome
        if burst:
            reason = f"{self.count} more requests failed on route {self.route} (last: {why})"
        elif self.outcome == "unavailable":
            reason = f"no target of route {self.route} could be tried ({why})"
        else:
            tried = f"; tried {', '.join(self.providers)}" if self.providers else ""
            reason = f"every target of route {self.route} failed ({why}){tried}"
        provider = self.providers[-1] if self.providers else (self.skipped[-1] if self.skipped else "")
        return HealthEvent(
            provider_name=provider[:64],
            at=self.at,
            kind=HealthEvent.Kind.REQUEST,
            old="",
            new=self.outcome[:40],
            reason=reason,
            data={
                "route": self.route,
                "request_id": self.request_id,
                "providers": self.providers,
                "skipped": self.skipped,
                "error": self.error,
                "status": self.status,
                "count": self.count,
            },
        )


@dataclass
class _Loop:
    """What one event loop has going (tests run one loop each; a server, one per worker)."""

    loop: asyncio.AbstractEventLoop
    windows: dict[str, Failure | None] = field(default_factory=dict)  # route -> its burst so far
    timers: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    queue: list[HealthEvent] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    unpruned: int = 0  # rows written since the last pruning


class FailureLog:
    """The listener: `log(record)` for each finished request."""

    def __init__(self) -> None:
        self._state: _Loop | None = None

    def _here(self) -> _Loop | None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        if self._state is None or self._state.loop is not loop:
            self._state = _Loop(loop)
        return self._state

    def __call__(self, record: RequestRecord) -> None:
        if record.outcome not in FAILED:
            return
        state = self._here()
        if state is None:
            return
        failure = Failure.of(record)
        route = record.route
        if route in state.windows:
            burst = state.windows[route]
            if burst is None:
                state.windows[route] = failure
            else:
                burst.add(failure)
            return
        state.windows[route] = None
        state.timers[route] = state.loop.call_later(window_s(), self._close, state, route)
        self._write(state, failure.row(burst=False))

    def _close(self, state: _Loop, route: str) -> None:
        state.timers.pop(route, None)
        burst = state.windows.pop(route, None)
        if burst is not None:
            self._write(state, burst.row(burst=True))

    def _write(self, state: _Loop, row: HealthEvent) -> None:
        state.queue.append(row)
        if state.task is None or state.task.done():
            state.task = state.loop.create_task(self._flush(state))

    async def _flush(self, state: _Loop) -> None:
        while state.queue:
            rows, state.queue = state.queue, []
            state.unpruned += len(rows)
            prune = state.unpruned >= PRUNE_EVERY
            if prune:
                state.unpruned = 0
            try:
                written = await db_call(_store, rows, prune)
            except Exception:
                log.exception("could not record %d failed requests", len(rows))
                continue
            for row in written:
                await publish({"type": "health.event", "provider": row.provider_name, "event_id": row.pk})

    async def drain(self) -> None:
        """Close every open window now and wait until what is queued is written (shutdown, tests)."""
        state = self._here()
        if state is None:
            return
        for route, timer in list(state.timers.items()):
            timer.cancel()
            self._close(state, route)
        task = state.task
        if task is not None:
            with contextlib.suppress(Exception):
                await task


def _store(rows: list[HealthEvent], prune: bool) -> list[HealthEvent]:
    names = {r.provider_name for r in rows if r.provider_name}
    ids = dict(Provider.objects.filter(name__in=names).values_list("name", "id")) if names else {}
    for row in rows:
        row.provider_id = ids.get(row.provider_name)
    written = HealthEvent.objects.bulk_create(rows)
    if prune:
        prune_failures(keep())
    return written


def prune_failures(limit: int) -> int:
    """Keep the newest `limit` request rows (0: every one); returns how many were deleted."""
    if limit <= 0:
        return 0
    rows = HealthEvent.objects.filter(kind=HealthEvent.Kind.REQUEST)
    oldest_kept = list(rows.order_by("-id").values_list("id", flat=True)[limit - 1 : limit])
    if not oldest_kept:
        return 0
    deleted, _ = rows.filter(id__lt=oldest_kept[0]).delete()
    return deleted


failure_log = FailureLog()

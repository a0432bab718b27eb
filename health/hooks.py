"""Engine events into the event history and onto the consoles, from whichever process saw them.

Each process's engine emits `BreakerStateChanged` and `CooldownStarted` where they happen
(a live call in a worker, a probe in the monitor). The hook only queues them (the engine's
hot path must not wait for a database); a task writes them and publishes `health.update`.
With shared state in Redis only the process that won the transition emits it, so each
change is logged once. A cooldown's event says what it means (`cooldowns.event_reason`):
"credential key-a rejected by the provider (HTTP 401), until reset"; the monitor turns a
rejected credential into the provider's status reason and an alert.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from project.database import db_call
from providers.engine import BreakerStateChanged, CooldownStarted, Event
from providers.runtime import Runtime

from . import cooldowns
from .events import publish, record_event
from .models import HealthEvent

log = logging.getLogger(__name__)


class EventSink:
    def __init__(self) -> None:
        self.queue: list[Event] = []
        self._task: asyncio.Task[None] | None = None
        self.on_breaker_change: Callable[[], None] | None = None

    def __call__(self, event: Event) -> None:
        if not isinstance(event, BreakerStateChanged | CooldownStarted):
            return
        self.queue.append(event)
        if isinstance(event, BreakerStateChanged) and self.on_breaker_change is not None:
            self.on_breaker_change()  # an embedded monitor evaluates at once, not at its next tick
        if self._task is None or self._task.done():
            with contextlib.suppress(RuntimeError):  # no loop (a sync caller): the next event flushes both
                self._task = asyncio.get_running_loop().create_task(self.flush())

    async def written(self, limit_s: float = 5.0) -> None:
        """Wait until the events emitted so far are written (actions log theirs after)."""
        await asyncio.sleep(0)  # an event emitted just now starts its flush on this turn
        task = self._task
        if task is not None and not task.done():
            await asyncio.wait({task}, timeout=limit_s)

    async def flush(self) -> None:
        await asyncio.sleep(0)  # gather what the same call emitted
        events, self.queue = self.queue, []
        if not events:
            return
        try:
            await db_call(_write, events)
        except Exception:
            log.exception("could not record %d engine events", len(events))
        for name in dict.fromkeys(e.key for e in events):
            await publish({"type": "health.update", "provider": name})


def _write(events: list[Event]) -> None:
    for event in events:
        at = datetime.fromtimestamp(event.at, tz=UTC)
        if isinstance(event, BreakerStateChanged):
            record_event(event.key, HealthEvent.Kind.BREAKER, event.old, event.new, event.reason, at=at)
        elif isinstance(event, CooldownStarted):
            until = (
                f"until {datetime.fromtimestamp(event.until, tz=UTC):%H:%M:%S} UTC"
                if event.until is not None
                else "until reset"
            )
            model = getattr(event, "model", "") or getattr(event, "scope", "") or None
            kind = cooldowns.kind_of(event.kind)
            record_event(
                event.key,
                HealthEvent.Kind.COOLDOWN,
                "",
                kind,
                cooldowns.event_reason(kind, event.credential, event.reason, until, model),
                at=at,
            )


def attach(rt: Runtime) -> None:
    """A `runtime_created` hook (HealthConfig.ready): each new runtime's engine events go to
    a sink of its own, kept as `rt.event_sink`."""
    sink = EventSink()
    rt.engine.subscribe(sink)
    rt.event_sink = sink

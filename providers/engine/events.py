"""What the engine tells the outside world: frozen events and the hook they are handed to.

Every event has `at` (wall time, for people) and `key` (the breaker key). Hooks are plain
callables taking one event; they run synchronously on the caller's task, so they must not block
(hand the event to a queue or `loop.call_soon` if the work is slow). An exception from a hook is
logged and swallowed: observing a call must never break it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .outcome import Outcome

log = logging.getLogger("providers.engine")


@dataclass(frozen=True, slots=True)
class Event:
    at: float
    key: str


@dataclass(frozen=True, slots=True)
class BreakerStateChanged(Event):
    """Exactly one per transition; the transition is a compare-and-set on (state, generation)."""

    old: str
    new: str
    reason: str  # "failure_rate 0.62 >= 0.5 over 13 calls", "probe_ok", "manual_reset", ...
    generation: int
    open_until: float | None  # wall time, when the new state is open


@dataclass(frozen=True, slots=True)
class CooldownStarted(Event):
    """A credential, or one model family of a provider, set aside (see `cooldown`).

    kind "rejected" (a 401/403: until the configuration changes the key or an operator resets
    it) and "model_missing" (a route's model the provider does not have) are what the
    console shows as the provider's reason and alerts on.
    """

    credential: str | None
    kind: str  # rate_limited | exhausted | rejected | model_missing
    until: float | None  # wall time; None: until an operator resets it (or the key changes)
    reason: str
    scope: str = ""  # the model family (the model's name), "" for the whole credential
    provider: str = ""
    model: str = ""


@dataclass(frozen=True, slots=True)
class ThresholdExceeded(Event):
    """A trip rule fired in metrics_only mode; the state did not change."""

    reason: str
    calls: int
    failures: int
    slow: int


@dataclass(frozen=True, slots=True)
class AttemptFinished(Event):
    provider: str
    model: str
    credential: str | None
    outcome: Outcome
    status: int | None
    duration_ms: float
    slow: bool
    hedge: bool = False
    reason: str = ""


@runtime_checkable
class EventHook(Protocol):
    """Receives every event. Sync, quick, must not block; exceptions are logged, not raised."""

    def __call__(self, event: Event) -> None: ...


class Emitter:
    """Hands events to the subscribed hooks, isolating the caller from their failures."""

    __slots__ = ("hooks",)

    def __init__(self) -> None:
        self.hooks: list[EventHook] = []

    def subscribe(self, hook: EventHook) -> None:
        self.hooks.append(hook)

    def unsubscribe(self, hook: EventHook) -> None:
        if hook in self.hooks:
            self.hooks.remove(hook)

    def __bool__(self) -> bool:
        return bool(self.hooks)

    def emit(self, event: Event) -> None:
        for hook in self.hooks:
            try:
                hook(event)
            except Exception:
                log.exception("event hook %r failed on %s", hook, type(event).__name__)

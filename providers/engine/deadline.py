"""One absolute deadline per inbound request, carried in a contextvar (resilience.md §6).

The deadline is a monotonic time. Nested `execute` calls (or any code the attempt function
calls) see it through `current_deadline()` and can only shorten it, never extend it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from .clock import Clock

_deadline: ContextVar[float | None] = ContextVar("providers_engine_deadline", default=None)

MARGIN_S = 0.2  # kept back from every attempt's timeout: SRE's "a few hundred milliseconds"


def current_deadline() -> float | None:
    """The absolute monotonic deadline of the request this task works for, if any."""
    return _deadline.get()


def remaining(clock: Clock) -> float | None:
    deadline = _deadline.get()
    return None if deadline is None else deadline - clock.monotonic()


@contextmanager
def deadline_scope(seconds: float, clock: Clock) -> Iterator[float]:
    """Bound everything inside to `seconds` from now, or to an outer deadline if sooner."""
    deadline = clock.monotonic() + seconds
    outer = _deadline.get()
    if outer is not None and outer < deadline:
        deadline = outer
    token = _deadline.set(deadline)
    try:
        yield deadline
    finally:
        _deadline.reset(token)


class AttemptTimer:
    """`asyncio.timeout` for one attempt, at a quarter of its cost.

    Same contract: when the timer fires it cancels the task, and the `CancelledError` that
    comes out of the block becomes `TimeoutError`, unless someone else cancelled the task too
    (then the cancellation wins and propagates unchanged). A plain `with` block is enough
    because the cancellation is delivered at the awaits inside it.
    """

    __slots__ = ("_cancelling", "_fired", "_handle", "_task")

    def __init__(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("AttemptTimer must be used inside a task")
        self._task = task
        self._fired = False
        self._cancelling = task.cancelling()
        self._handle = loop.call_at(when, self._expire)

    def _expire(self) -> None:
        self._fired = True
        self._task.cancel()

    def __enter__(self) -> AttemptTimer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        self._handle.cancel()
        if self._fired and self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc

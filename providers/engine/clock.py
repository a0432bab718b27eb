"""Time, as the engine sees it: a monotonic clock for every decision, a wall clock for display.

Breakers, windows, cooldowns and deadlines are measured on `monotonic()` only, so a wall-clock
jump (NTP, a VM resume, an operator) cannot open or close anything (resilience.md scenario 22).
Wall time (`time()`) appears only in events and snapshots, for people to read.

The test mode makes time free: `FakeClock` is a clock you move by hand, and `FakeClock.new_loop()`
builds an asyncio event loop whose time *is* that clock. When every task waits on a timer, the
loop jumps the clock to the next timer instead of sleeping, so `asyncio.sleep(30)`,
`asyncio.timeout(…)` and the engine's backoff cost no real time and stay deterministic.
"""

from __future__ import annotations

import asyncio
import selectors
import time
from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

T = TypeVar("T")


@runtime_checkable
class Clock(Protocol):
    """Where the engine reads time. `sleep` must agree with `monotonic`."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards; the only clock decisions use."""
        ...

    def time(self) -> float:
        """Wall time (Unix seconds), for events and snapshots only."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time."""
        ...


class SystemClock:
    """The real clocks. `time.monotonic` is also what asyncio's default loop runs on."""

    __slots__ = ()

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class FakeClock:
    """A clock that moves only when told to, or when its own event loop is idle.

    `advance(s)` moves both clocks; `jump_wall(s)` moves the wall clock alone (to test clock
    safety). Run async code on `new_loop()` (or with `run(coro)`) so that asyncio's timers use
    this clock too; `sleep` then waits on the loop, which jumps time forward when nothing else
    can run.
    """

    def __init__(self, start: float = 1000.0, wall: float = 1_800_000_000.0) -> None:
        self._now = float(start)
        self._wall_offset = float(wall) - float(start)

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._now + self._wall_offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a monotonic clock cannot go backwards")
        self._now += seconds

    def jump_wall(self, seconds: float) -> None:
        """Move the wall clock alone (negative: backwards), as NTP or an operator might."""
        self._wall_offset += seconds

    async def sleep(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        if getattr(loop, "clock", None) is self:
            await asyncio.sleep(seconds)
        else:  # not on our own loop: move time ourselves, still yield once
            self.advance(max(0.0, seconds))
            await asyncio.sleep(0)

    def new_loop(self) -> VirtualTimeLoop:
        """A fresh event loop whose `time()` is this clock and whose idle waits are free."""
        return VirtualTimeLoop(self)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` to completion on a fresh virtual-time loop, then close the loop."""
        with asyncio.Runner(loop_factory=self.new_loop) as runner:
            return runner.run(coro)


class _VirtualSelector(selectors.BaseSelector):
    """Wraps a real selector: real I/O is polled without blocking; a timed wait becomes a jump."""

    def __init__(self, clock: FakeClock) -> None:
        self._selector = selectors.DefaultSelector()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout <= 0:
            return self._selector.select(0)
        events = self._selector.select(0)
        if events:
            return events
        if timeout is None:  # no timer pending: only real I/O (a thread, a socket) can wake us
            return self._selector.select(None)
        self._clock.advance(timeout)
        return []

    # Everything but `select` is the real selector's.
    def register(self, fileobj: FileDescriptorLike, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._selector.register(fileobj, events, data)

    def unregister(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        return self._selector.unregister(fileobj)

    def modify(self, fileobj: FileDescriptorLike, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._selector.modify(fileobj, events, data)

    def get_key(self, fileobj: FileDescriptorLike) -> selectors.SelectorKey:
        return self._selector.get_key(fileobj)

    def get_map(self) -> Mapping[FileDescriptorLike, selectors.SelectorKey]:
        return self._selector.get_map()

    def close(self) -> None:
        self._selector.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._selector, name)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop on a `FakeClock`: `loop.time()` is `clock.monotonic()`."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        super().__init__(selector=_VirtualSelector(clock))

    def time(self) -> float:
        return self.clock.monotonic()

"""The test mode: a virtual-time loop where waiting is free and deterministic."""

from __future__ import annotations

import asyncio
import selectors

import pytest

from providers.engine import FakeClock, SystemClock


class RecordingSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """The operating system's selector, noting how long each `select` was allowed to block."""

    waits: list[float | None] = []

    def select(self, timeout: float | None = None) -> list:  # type: ignore[type-arg]
        self.waits.append(timeout)
        return super().select(timeout)


def test_a_long_sleep_on_the_virtual_loop_never_blocks_on_the_operating_system(monkeypatch):
    monkeypatch.setattr(selectors, "DefaultSelector", RecordingSelector)
    monkeypatch.setattr(RecordingSelector, "waits", [])
    clock = FakeClock(start=0.0)

    async def main() -> float:
        await asyncio.sleep(3600.0)
        async with asyncio.timeout(5.0):
            await clock.sleep(2.5)
        return clock.monotonic()

    assert clock.run(main()) == 3602.5
    # Every timer was reached by jumping the clock: the loop only ever polled.
    assert RecordingSelector.waits and set(RecordingSelector.waits) == {0}


def test_timeouts_fire_at_their_virtual_time():
    clock = FakeClock(start=0.0)

    async def main() -> float:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(30.0):
                await asyncio.Event().wait()
        return clock.monotonic()

    assert clock.run(main()) == 30.0


def test_the_wall_clock_can_jump_without_moving_the_monotonic_one():
    clock = FakeClock(start=10.0, wall=1_000.0)
    clock.jump_wall(-3600.0)
    assert (clock.monotonic(), clock.time()) == (10.0, 1_000.0 - 3600.0)
    with pytest.raises(ValueError):
        clock.advance(-1.0)


async def test_the_system_clock_agrees_with_the_default_loop():
    clock = SystemClock()
    before = clock.monotonic()
    await clock.sleep(0)
    assert clock.monotonic() >= before and clock.time() > 1e9

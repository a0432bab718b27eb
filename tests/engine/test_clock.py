"""The test mode: a virtual-time loop where waiting is free and deterministic."""

from __future__ import annotations

import asyncio
import time

import pytest

from providers.engine import FakeClock, SystemClock


def test_a_long_sleep_on_the_virtual_loop_costs_no_real_time():
    clock = FakeClock(start=0.0)

    async def main() -> float:
        await asyncio.sleep(3600.0)
        async with asyncio.timeout(5.0):
            await clock.sleep(2.5)
        return clock.monotonic()

    real = time.perf_counter()
    assert clock.run(main()) == 3602.5
    assert time.perf_counter() - real < 1.0


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

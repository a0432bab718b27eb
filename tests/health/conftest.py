"""Monitor tests: monitors on the suite's fake clock (`clock`, tests/conftest.py) and the
test's runtime (`rt`); `configure` applies a configuration document."""

from __future__ import annotations

import random

import pytest

from health.monitor import Monitor
from providers.runtime import Runtime


@pytest.fixture
def make_monitor(rt, clock):
    def make(holder: str = "m1", runtime: Runtime | None = None) -> Monitor:
        return Monitor(runtime or rt, now=clock, rng=random.Random(7), holder=holder)

    return make


async def full_tick(monitor: Monitor) -> None:
    """A tick, its probes, and the tick that takes their results in."""
    await monitor.tick()
    await monitor.wait_for_probes()
    await monitor.tick()
    sink = monitor.rt.event_sink
    if sink is not None:
        await sink.flush()  # what a caller without a loop emitted
        await sink.written()

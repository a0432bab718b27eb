from __future__ import annotations

import random
import time

import pytest
from asgiref.sync import sync_to_async

from health.monitor import Monitor
from providers.config import apply_config
from providers.runtime import Runtime, install_runtime


class Clock:
    def __init__(self, start: float | None = None) -> None:
        self.t = time.time() if start is None else start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def configure():
    return sync_to_async(lambda doc: apply_config(doc, actor="test", prune=True))


@pytest.fixture
async def rt():
    runtime = install_runtime(Runtime())
    yield runtime
    await runtime.close()


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
    sink = getattr(monitor.rt, "event_sink", None)
    if sink is not None:
        await sink.flush()
        if sink._task is not None:
            await sink._task

"""The monitor loop's contract (healthchecks' `sendalerts`): a tick says whether more work
is ready right now; the loop goes round again at once when it is, and otherwise sleeps until
something happens (a probe finishing, a breaker change, a stop, the next due time), never
spinning and never waiting out MONITOR_TICK_S for a probe that already answered.

The monitors here are the real one, observed: `Observed` records what each tick returned
and each time the loop went to sleep, and can run something "meanwhile" at the end of a
tick (its housekeeping, the last step), standing for what happens while a tick is under way.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from health.models import ProbeResult, ProviderHealth
from health.monitor import Monitor

pytestmark = pytest.mark.django_db(transaction=True)

GUARD_S = 30.0  # a guard against a hang, never a measure of speed


def simulated(name: str = "sim", interval_s: float = 3600) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "simulated",
        "models": ["sim-small"],
        "capabilities": ["chat"],
        "options": {"latency_ms": 0, "seed": 1},
        "health_check": {"interval_s": interval_s, "timeout_s": 5},
    }


class Observed(Monitor):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ticks: list[bool] = []
        self.sleeps = 0
        self.meanwhile: Callable[[], Awaitable[None]] | None = None
        self.changed = asyncio.Condition()

    async def tick(self) -> bool:
        more = await super().tick()
        async with self.changed:
            self.ticks.append(more)
            self.changed.notify_all()
        return more

    async def housekeeping(self) -> bool:
        ran = await super().housekeeping()
        if self.meanwhile is not None:
            await self.meanwhile()
        return ran

    async def sleep(self, stop: asyncio.Event, timeout_s: float) -> None:
        async with self.changed:
            self.sleeps += 1
            self.changed.notify_all()
        await super().sleep(stop, timeout_s)

    async def until(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(GUARD_S), self.changed:
            await self.changed.wait_for(predicate)


@pytest.fixture
def observed(rt, clock, settings):  # type: ignore[no-untyped-def]
    # Nothing but an event can wake the loop within a test: not the tick, not the lease.
    settings.MONITOR_TICK_S = 3600.0
    settings.MONITOR_LEASE_S = 3600.0

    def make() -> Observed:
        return Observed(rt, now=clock, rng=random.Random(7), holder="loop")

    return make


@sync_to_async
def probes(name: str = "sim") -> int:
    return ProbeResult.objects.filter(provider__name=name).count()


@sync_to_async
def health(name: str = "sim") -> ProviderHealth | None:
    return ProviderHealth.objects.filter(provider__name=name).first()


async def test_a_tick_during_which_a_probe_finished_says_there_is_more_work(configure, observed):
    await configure({"providers": [simulated()]})
    monitor = observed()
    monitor.meanwhile = monitor.wait_for_probes  # the probe answers while the tick is under way
    assert await monitor.tick() is True
    assert await probes() == 0  # finished, not collected yet: that is the work ready now
    monitor.meanwhile = None
    assert await monitor.tick() is False  # collected, stored, evaluated; nothing else ready
    assert await probes() == 1
    row = await health()
    assert row is not None and row.last_check_ok is True and row.status == "healthy"


async def test_a_tick_during_which_a_provider_fell_due_says_there_is_more_work(configure, observed, clock):
    await configure({"providers": [simulated(interval_s=60)]})
    monitor = observed()
    await monitor.tick()
    await monitor.wait_for_probes()
    assert await monitor.tick() is False
    assert 0 < monitor.idle_s() <= 66  # asleep no longer than until the next probe (60 s ±10 %)

    async def time_passes() -> None:
        clock.advance(70)

    monitor.meanwhile = time_passes
    assert await monitor.tick() is True  # due, not started
    assert monitor.idle_s() == 0
    monitor.meanwhile = None
    await monitor.tick()  # starts it
    await monitor.wait_for_probes()
    await monitor.tick()
    assert await probes() == 2


async def test_the_loop_collects_a_finished_probe_at_once_not_a_tick_interval_later(configure, observed, settings):
    settings.MONITOR_CONCURRENCY = 1
    await configure({"providers": [simulated()]})
    monitor = observed()
    await monitor.semaphore.acquire()  # the one probe slot is busy: the probe waits for it
    stop = asyncio.Event()
    loop = asyncio.create_task(monitor.run(stop))
    try:
        await monitor.until(lambda: monitor.sleeps == 1)
        assert monitor.ticks == [False]  # the probe started and still waits: the loop sleeps
        monitor.semaphore.release()  # the probe runs and answers while the loop sleeps
        # MONITOR_TICK_S is an hour: only the probe's answer can wake the loop to take it in.
        await monitor.until(lambda: monitor.sleeps == 2)
        assert monitor.ticks == [False, False]
        assert await probes() == 1
        row = await health()
        assert row is not None and row.last_check_ok is True and row.status == "healthy"
    finally:
        stop.set()
        await asyncio.wait_for(loop, GUARD_S)


async def test_the_loop_sleeps_when_idle_and_a_breaker_change_wakes_it_for_one_tick(configure, observed, rt):
    await configure({"providers": [simulated()]})
    monitor = observed()
    stop = asyncio.Event()
    loop = asyncio.create_task(monitor.run(stop))
    try:
        await monitor.until(lambda: len(monitor.ticks) >= 2 and not monitor.ticks[-1] and monitor.sleeps >= 1)
        asleep = (len(monitor.ticks), monitor.sleeps)
        assert monitor.sleeps == monitor.ticks.count(False)  # every tick with nothing ready slept
        for _ in range(20):  # other work goes on; the idle loop does not tick meanwhile
            await probes()
        assert (len(monitor.ticks), monitor.sleeps) == asleep

        await rt.engine.force_open("sim", 600)  # a breaker change in this process wakes it
        await monitor.until(lambda: monitor.sleeps > asleep[1])
        assert monitor.ticks[asleep[0] :] == [False]  # one tick, then asleep again
        row = await health()
        assert row is not None and row.breaker == "forced_open" and row.status == "unhealthy"
        for _ in range(20):
            await probes()
        assert (len(monitor.ticks), monitor.sleeps) == (asleep[0] + 1, asleep[1] + 1)
    finally:
        stop.set()
        await asyncio.wait_for(loop, GUARD_S)

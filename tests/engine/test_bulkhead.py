"""The non-waiting bulkhead (resilience.md §7, scenario 24)."""

from __future__ import annotations

import asyncio

from providers.engine import RoutePolicy, TargetSpec
from providers.engine.bulkhead import Bulkhead

from .upstream import Router, Upstream, ok


async def test_the_thirty_third_concurrent_call_goes_straight_to_the_fallback(engine, clock):
    router = Router(a=Upstream(default=ok(delay=1.0)), b=Upstream())
    targets = [TargetSpec("a", "m", max_concurrent=32), TargetSpec("b", "m")]
    start = clock.monotonic()
    results = await asyncio.gather(*(engine.execute(RoutePolicy("r"), targets, router) for _ in range(33)))
    served = [r.target.provider for r in results]
    assert served.count("a") == 32 and served.count("b") == 1
    assert router["a"].calls == 32
    assert router["b"].started_at == [start]  # no waiting for a slot
    overflow = next(r for r in results if r.target.provider == "b")
    assert overflow.attempts[0].skipped == "bulkhead_full"
    assert engine.bulkhead_for(targets[0]).in_use == 0  # every slot given back


def test_a_lease_never_given_back_expires():
    bulkhead = Bulkhead(1)
    assert bulkhead.try_acquire(0.0, expires=10.0) is not None
    assert bulkhead.try_acquire(5.0, expires=15.0) is None
    assert not bulkhead.has_room(9.9)
    assert bulkhead.try_acquire(10.0, expires=20.0) is not None


def test_a_released_lease_frees_its_slot_at_once():
    bulkhead = Bulkhead(2)
    first = bulkhead.try_acquire(0.0, 100.0)
    assert first is not None and bulkhead.try_acquire(0.0, 100.0) is not None
    assert bulkhead.try_acquire(0.0, 100.0) is None
    bulkhead.release(first)
    assert bulkhead.try_acquire(0.0, 100.0) is not None

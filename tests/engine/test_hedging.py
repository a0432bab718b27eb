"""Hedged requests (resilience.md §5, scenario 18)."""

from __future__ import annotations

import asyncio

import pytest

from providers.engine import HedgePolicy, Outcome, RoutePolicy, TargetSpec
from providers.engine.hedging import hedge_delay
from providers.engine.latency import LatencySamples

from .upstream import Router, Upstream, http_error, ok

HEDGED = RoutePolicy("r", hedge=HedgePolicy(delay_s=1.0))
TARGETS = [TargetSpec("a", "m"), TargetSpec("b", "m")]


async def test_a_slow_primary_is_hedged_and_the_faster_secondary_wins(engine, clock):
    router = Router(a=Upstream(default=ok("primary", delay=5.0)), b=Upstream(default=ok("hedge", delay=0.3)))
    start = clock.monotonic()
    result = await engine.execute(HEDGED, TARGETS, router)
    assert result.value == "hedge" and result.target.provider == "b"
    assert clock.monotonic() - start == pytest.approx(1.3)
    assert router["a"].cancelled == 1 and router["a"].in_flight == 0  # closed before we returned
    assert router["b"].contexts[0].hedge
    by_provider = {a.provider: a for a in result.attempts}
    assert by_provider["a"].outcome is Outcome.CANCELLED and by_provider["a"].reason == "hedge_lost"
    assert by_provider["b"].outcome is Outcome.SUCCESS and by_provider["b"].hedge
    assert engine.budget_for(TARGETS[1]).window.b == 1  # the hedge spent a retry token
    assert engine.snapshot("a").calls == 0  # a cancelled loser is no evidence either way


async def test_a_primary_faster_than_the_delay_sends_no_hedge(engine, clock):
    router = Router(a=Upstream(default=ok(delay=0.5)), b=Upstream())
    result = await engine.execute(HEDGED, TARGETS, router)
    assert result.target.provider == "a" and router["b"].calls == 0


async def test_no_hedge_goes_to_a_target_whose_breaker_is_not_closed(engine, clock):
    await engine.force_open("b", 600.0)
    router = Router(a=Upstream(default=ok(delay=5.0)), b=Upstream())
    result = await engine.execute(HEDGED, TARGETS, router)
    assert result.target.provider == "a" and router["b"].calls == 0
    assert clock.monotonic() >= 5.0 + 1000.0  # we waited for the primary


async def test_no_hedge_goes_to_a_half_open_target(engine, clock):
    for _ in range(5):
        await engine.record("b", Outcome.FAILURE, 0.1)
    clock.advance(40.0)
    assert engine.snapshot("b").state == "half_open"
    router = Router(a=Upstream(default=ok(delay=5.0)), b=Upstream())
    result = await engine.execute(HEDGED, TARGETS, router)
    assert result.target.provider == "a" and router["b"].calls == 0


async def test_no_hedge_when_the_retry_budget_is_spent(engine, clock):
    budget = engine.budget_for(TARGETS[1])
    while budget.try_spend(clock.monotonic()):
        pass
    router = Router(a=Upstream(default=ok(delay=5.0)), b=Upstream())
    result = await engine.execute(HEDGED, TARGETS, router)
    assert result.target.provider == "a" and router["b"].calls == 0


async def test_no_hedge_after_the_first_byte_of_a_stream(engine, clock):
    router = Router(a=Upstream(default=ok("stream", delay=0.5)), b=Upstream())
    result = await engine.execute(HEDGED, TARGETS, router, streaming=True)
    assert result.target.provider == "a"
    await asyncio.sleep(10.0)  # the stream goes on long after the hedge delay
    await result.finish(None)
    assert router["b"].calls == 0


async def test_a_failed_hedge_leaves_the_primary_to_finish(engine, clock):
    router = Router(a=Upstream(default=ok("primary", delay=2.0)), b=Upstream(default=http_error(503)))
    result = await engine.execute(HEDGED, TARGETS, router)
    assert result.value == "primary" and clock.monotonic() == pytest.approx(1002.0)
    assert router["b"].calls == 1


def test_the_delay_is_the_p95_clamped_once_twenty_samples_exist():
    policy = HedgePolicy(delay_s=1.0)
    samples = LatencySamples()
    for _ in range(19):
        samples.add(2.0)
    assert hedge_delay(policy, samples) == 1.0  # fixed until 20 samples
    samples.add(2.0)
    assert hedge_delay(policy, samples) == 2.0
    for _ in range(100):
        samples.add(30.0)
    assert hedge_delay(policy, samples) == 5.0
    fast = LatencySamples()
    for _ in range(20):
        fast.add(0.01)
    assert hedge_delay(policy, fast) == 0.25

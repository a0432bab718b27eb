"""Operator states and actions: forced open, disabled, metrics only, reset (scenario 23)."""

from __future__ import annotations

import pytest

from providers.engine import (
    AllTargetsFailed,
    BreakerStateChanged,
    CircuitOpen,
    Outcome,
    RoutePolicy,
    TargetSpec,
    ThresholdExceeded,
)

from .upstream import Upstream, http_error

F = Outcome.FAILURE


def of(kind: type, events: list[object]) -> list:  # type: ignore[type-arg]
    return [e for e in events if isinstance(e, kind)]


async def test_forced_open_rejects_everything_and_emits_no_threshold_events(make_breaker, events):
    breaker = make_breaker()
    early = [await breaker.acquire() for _ in range(10)]
    await breaker.force_open(None)
    assert breaker.state() == "forced_open"
    with pytest.raises(CircuitOpen) as info:
        await breaker.acquire()
    assert info.value.state == "forced_open"
    for permit in early:  # results of calls admitted before: statistics only
        await breaker.record(permit, F, 0.1)
    assert breaker.counts().failures == 10
    assert [(e.old, e.new, e.reason) for e in of(BreakerStateChanged, events)] == [
        ("closed", "forced_open", "forced_open")
    ]
    assert of(ThresholdExceeded, events) == []


async def test_forced_open_for_a_time_probes_again_afterwards(make_breaker, clock):
    breaker = make_breaker()
    await breaker.force_open(600.0)
    clock.advance(599.0)
    assert breaker.check() == "forced_open"
    clock.advance(1.0)
    permit = await breaker.acquire()
    assert permit.probe is not None


async def test_disabled_lets_everything_through_and_records_nothing(make_breaker, events):
    breaker = make_breaker()
    await breaker.set_mode("disabled")
    for _ in range(30):
        await breaker.record(await breaker.acquire(), F, 0.1)
    assert breaker.state() == "disabled"
    assert breaker.counts().calls == 0
    assert [e.new for e in of(BreakerStateChanged, events)] == ["disabled"]


async def test_metrics_only_counts_and_announces_the_threshold_without_opening(make_breaker, events):
    breaker = make_breaker()
    await breaker.set_mode("metrics_only")
    for _ in range(20):
        await breaker.record(await breaker.acquire(), F, 0.1)
    assert breaker.state() == "metrics_only"
    assert breaker.counts().failures == 20
    exceeded = of(ThresholdExceeded, events)
    assert len(exceeded) == 1  # announced when crossed, not on every call
    assert exceeded[0].reason == "consecutive_failures 5"
    assert [e.new for e in of(BreakerStateChanged, events)] == ["metrics_only"]


async def test_back_to_normal_starts_a_fresh_closed_breaker(make_breaker):
    breaker = make_breaker()
    await breaker.set_mode("metrics_only")
    for _ in range(4):
        await breaker.record(await breaker.acquire(), F, 0.1)
    await breaker.set_mode("normal")
    assert breaker.state() == "closed"
    assert breaker.counts().calls == 0


async def test_an_unknown_mode_is_refused(make_breaker):
    with pytest.raises(ValueError, match="mode"):
        await make_breaker().set_mode("sideways")


async def test_reset_closes_the_breaker_and_clears_its_cooldowns(engine, clock):
    target = TargetSpec("a", "m", credentials=("k1",))
    route = RoutePolicy("r", max_attempts=1)
    with pytest.raises(AllTargetsFailed):
        await engine.execute(route, [target], Upstream(http_error(429, headers={"retry-after": "9"})))
    for _ in range(5):
        await engine.record("a", F, 0.1)
    snap = engine.snapshot("a")
    assert snap.state == "open"
    assert [(c, k) for c, k, _, _ in snap.scoped_cooldowns] == [("k1", "rate_limited")]
    await engine.reset("a")
    snap = engine.snapshot("a")
    assert (snap.state, snap.cooldowns, snap.opened_count, snap.calls) == ("closed", [], 0, 0)
    assert snap.reason == "manual_reset"
    upstream = Upstream()
    result = await engine.execute(route, [target], upstream)
    assert result.value == "ok" and upstream.calls == 1


async def test_engine_force_open_skips_the_target_without_a_call(engine):
    await engine.force_open("a", 60.0)
    upstream = Upstream()
    with pytest.raises(AllTargetsFailed) as info:
        await engine.execute(RoutePolicy("r"), [TargetSpec("a", "m")], upstream)
    assert upstream.calls == 0
    assert info.value.all_skipped
    assert info.value.attempts[0].skipped == "forced_open"
    assert engine.snapshot("a").open_until is not None

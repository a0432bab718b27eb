"""Retry budget and adaptive throttling (resilience.md §4, scenarios 15 and 20)."""

from __future__ import annotations

import asyncio
import random

import pytest

from providers.engine import AllTargetsFailed, Engine, RetryPolicy, RoutePolicy, TargetSpec
from providers.engine.budget import AdaptiveThrottle, RetryBudget

from .upstream import Router, Upstream, http_error


async def storm(engine: Engine, target: TargetSpec, upstream: Upstream) -> None:
    """1,000 single-target requests spread over 10 s, each allowed 2 attempts."""
    await engine.set_mode(target.breaker_key, "disabled")  # the budget alone must hold the line
    route = RoutePolicy("r", max_attempts=2)

    async def one(i: int) -> None:
        await asyncio.sleep(i * 0.01)
        with pytest.raises(AllTargetsFailed):
            await engine.execute(route, [target], upstream)

    await asyncio.gather(*(one(i) for i in range(1000)))


async def test_the_retry_budget_caps_a_storm_of_503s_at_ten_percent(engine):
    upstream = Upstream(default=http_error(503))
    target = TargetSpec("a", "m", max_concurrent=1000)
    await storm(engine, target, upstream)
    assert 1003 <= upstream.calls <= 1000 + max(3, 100)


async def test_without_the_budget_the_same_storm_doubles_the_load(engine):
    upstream = Upstream(default=http_error(503))
    generous = RetryPolicy(budget_ratio=1.0, budget_min_retries=10_000)
    await storm(engine, TargetSpec("a", "m", max_concurrent=1000, retry=generous), upstream)
    assert upstream.calls == 2000


async def test_a_lone_request_at_idle_still_gets_its_retry(engine):
    upstream = Upstream(default=http_error(503))
    with pytest.raises(AllTargetsFailed):
        await engine.execute(RoutePolicy("r"), [TargetSpec("a", "m")], upstream)
    assert upstream.calls == 2


async def test_a_retry_refused_by_the_budget_is_recorded_and_falls_back(engine, clock):
    target = TargetSpec("a", "m")
    budget = engine.budget_for(target)
    for _ in range(3):
        assert budget.try_spend(clock.monotonic())
    router = Router(a=Upstream(default=http_error(503)), b=Upstream())
    result = await engine.execute(RoutePolicy("r"), [target, TargetSpec("b", "m")], router)
    assert router["a"].calls == 1 and result.target.provider == "b"
    assert result.attempts[1].skipped == "budget"


def test_the_budget_floor_and_ratio():
    budget = RetryBudget(window_s=10.0, ratio=0.1, min_retries=3)
    assert [budget.try_spend(0.0) for _ in range(4)] == [True, True, True, False]
    for _ in range(50):
        budget.record_first(1.0)
    assert budget.try_spend(1.0) and budget.try_spend(1.0)  # 50 first attempts: the limit is 5
    assert not budget.try_spend(1.0)
    assert budget.allows(11.5)  # the t=0 and t=1 buckets left the window


def test_the_throttle_rejects_with_probability_req_minus_k_acc_over_req_plus_one():
    throttle = AdaptiveThrottle(window_s=120.0, k=2.0)
    for i in range(100):
        throttle.record(0.0, accepted=i < 40)
    assert throttle.reject_probability(0.0) == pytest.approx(20 / 101)
    rng = random.Random(2024)
    rejected = sum(throttle.should_reject(0.0, rng) for _ in range(10_000))
    assert abs(rejected / 10_000 - 20 / 101) <= 0.01


def test_the_throttle_never_rejects_while_half_the_requests_are_accepted():
    throttle = AdaptiveThrottle(window_s=120.0, k=2.0)
    for i in range(100):
        throttle.record(0.0, accepted=i < 50)
    assert throttle.reject_probability(0.0) == 0.0
    rng = random.Random(7)
    assert sum(throttle.should_reject(0.0, rng) for _ in range(10_000)) == 0


def test_the_throttle_forgets_after_its_window():
    throttle = AdaptiveThrottle(window_s=120.0, k=2.0)
    for _ in range(100):
        throttle.record(0.0, accepted=False)
    assert throttle.reject_probability(0.0) > 0.9
    assert throttle.reject_probability(121.0) == 0.0


async def test_overloaded_529s_make_the_engine_shed_load_locally(engine):
    target = TargetSpec("a", "m", retry=RetryPolicy(max_attempts=1))
    await engine.set_mode("a", "disabled")  # isolate throttling from the breaker
    router = Router(a=Upstream(default=http_error(529)), b=Upstream())
    for _ in range(200):
        await engine.execute(RoutePolicy("r"), [target, TargetSpec("b", "m")], router)
    assert 0 < router["a"].calls < 100
    throttled = engine.throttle_for(target)
    assert throttled.reject_probability(engine.clock.monotonic()) > 0.9


def test_an_exhausted_quota_is_not_an_overload_signal_for_the_throttle():
    from providers.engine.outcome import Classification, Outcome
    from providers.engine.policy import TargetSpec
    from providers.engine.sent import Sent

    target = TargetSpec.llm("p", "m")
    exhausted = Sent.__new__(Sent)
    exhausted.target, exhausted.status = target, 429
    exhausted.classification = Classification(Outcome.EXHAUSTED, "insufficient_quota")
    exhausted.ok = False
    assert exhausted.accepted is None
    overloaded = Sent.__new__(Sent)
    overloaded.target, overloaded.status = target, 429
    overloaded.classification = Classification(Outcome.RATE_LIMITED, "rate_limited")
    overloaded.ok = False
    assert overloaded.accepted is False

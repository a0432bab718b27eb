"""Policies: the defaults of resilience.md §10 and the start-up checks of §6."""

from __future__ import annotations

import dataclasses

import pytest

from providers.engine import BreakerPolicy, HedgePolicy, RetryPolicy, RoutePolicy, TargetSpec


def test_llm_defaults_follow_the_spec():
    target = TargetSpec.llm("openai", "gpt")
    b = target.breaker
    assert (target.attempt_timeout_s, target.first_byte_timeout_s, b.slow_call_s) == (30.0, 20.0, 10.0)
    assert (b.window_s, b.buckets, b.min_calls, b.failure_rate, b.slow_call_rate) == (60.0, 12, 10, 0.5, 0.8)
    assert (b.consecutive_failures, b.break_s, b.max_break_s, b.half_open_probes) == (5, 30.0, 300.0, 3)
    assert (b.probe_ttl_s, b.max_half_open_s, b.jitter) == (35.0, 70.0, 0.2)
    r = target.retry
    assert (r.max_attempts, r.base_delay_s, r.max_delay_s, r.max_retry_after_s) == (2, 0.5, 8.0, 20.0)
    assert (r.default_cooldown_s, r.discard_retry_after_s) == (60.0, 300.0)
    assert (target.max_concurrent, target.breaker_key, target.capability) == (32, "openai", "chat")
    target.validate()


def test_tts_and_image_defaults_follow_the_spec():
    tts, image = TargetSpec.tts("el", "v"), TargetSpec.image("sd", "xl")
    assert (tts.attempt_timeout_s, tts.breaker.slow_call_s, tts.breaker.window_s) == (10.0, 5.0, 60.0)
    assert (image.attempt_timeout_s, image.breaker.slow_call_s, image.breaker.window_s) == (120.0, 60.0, 240.0)
    assert image.breaker.probe_ttl_s == 125.0 and image.capability == "image"


def test_route_deadlines_default_per_capability():
    assert [RoutePolicy("r", capability=c).deadline_s for c in ("chat", "tts", "image")] == [60.0, 20.0, 180.0]
    route = RoutePolicy("r")
    assert (route.strategy, route.max_attempts, route.hedge) == ("priority", 3, None)


def test_policies_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        TargetSpec("a", "m").enabled = False  # type: ignore[misc]


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: TargetSpec("a", "m", breaker=BreakerPolicy(window_s=50.0)), "breaker.window_s"),
        (lambda: TargetSpec("a", "m", breaker=BreakerPolicy(probe_ttl_s=30.0)), "breaker.probe_ttl_s"),
        (lambda: TargetSpec("a", "m", breaker=BreakerPolicy(failure_rate=1.5)), "breaker.failure_rate"),
        (lambda: TargetSpec("a", "m", retry=RetryPolicy(max_attempts=0)), "retry.max_attempts"),
        (lambda: TargetSpec("a", "m", attempt_timeout_s=0), "target.attempt_timeout_s"),
        (lambda: TargetSpec("a", "m", credentials=("k", "k")), "target.credentials"),
    ],
)
def test_a_bad_target_setting_is_refused_by_name(build, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        build().validate()


def test_an_attempt_timeout_longer_than_the_deadline_is_refused():
    route = RoutePolicy("r", capability="tts")  # 20 s deadline
    with pytest.raises(ValueError, match=r"route\.deadline_s"):
        route.validate([TargetSpec("a", "m", attempt_timeout_s=30.0)])
    route.validate([TargetSpec.tts("a", "m")])


@pytest.mark.parametrize(
    ("route", "field"),
    [
        (RoutePolicy("r", strategy="fastest"), "route.strategy"),
        (RoutePolicy("r", max_attempts=0), "route.max_attempts"),
        (RoutePolicy("r", hedge=HedgePolicy(max_hedges=2)), "hedge.max_hedges"),
    ],
)
def test_a_bad_route_setting_is_refused_by_name(route, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        route.validate()

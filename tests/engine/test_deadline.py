"""One deadline bounds every attempt, backoff and fallback (resilience.md §6, scenario 16)."""

from __future__ import annotations

import random

import pytest

from providers.engine import (
    AllTargetsFailed,
    DeadlineExceeded,
    Outcome,
    RetryPolicy,
    RoutePolicy,
    TargetSpec,
    UpstreamError,
)
from providers.engine.deadline import current_deadline, deadline_scope

from .upstream import Router, Upstream, hang, http_error


class MaxRandom(random.Random):
    """Every uniform draw returns its upper bound: the longest possible backoff."""

    def uniform(self, a: float, b: float) -> float:
        return b


async def test_no_attempt_starts_when_less_than_min_useful_time_is_left(engine, clock):
    router = Router(a=Upstream(default=http_error(503, delay=9.0)), b=Upstream())
    targets = [TargetSpec("a", "m", min_useful_s=2.0), TargetSpec("b", "m", min_useful_s=2.0)]
    start = clock.monotonic()
    with pytest.raises(DeadlineExceeded) as info:
        await engine.execute(RoutePolicy("r"), targets, router, deadline_s=10.0)
    assert clock.monotonic() - start == pytest.approx(9.0)
    assert (router["a"].calls, router["b"].calls) == (1, 0)
    assert isinstance(info.value.last_error, UpstreamError) and info.value.last_error.status == 503
    assert [a.skipped for a in info.value.attempts] == [None, "deadline", "deadline"]
    assert not info.value.all_skipped


async def test_min_useful_time_defaults_to_the_targets_median_latency(engine, clock):
    target = TargetSpec("a", "m")
    fast = Upstream(default=Upstream().default)
    for _ in range(3):
        await engine.execute(RoutePolicy("r"), [target], fast)
    assert engine.min_useful_time(target) == 0.0  # instant calls
    assert engine.min_useful_time(TargetSpec("new", "m")) == 1.0  # no data: 1 s


async def test_every_attempt_timeout_is_the_attempt_timeout_capped_by_the_deadline(engine, clock):
    router = Router(a=Upstream(default=hang()), b=Upstream(default=hang()))
    targets = [TargetSpec("a", "m"), TargetSpec("b", "m")]
    start = clock.monotonic()
    with pytest.raises(DeadlineExceeded) as info:
        await engine.execute(RoutePolicy("r"), targets, router, deadline_s=50.0)
    deadline = start + 50.0
    contexts = [(c, t) for u in (router["a"], router["b"]) for c, t in zip(u.contexts, u.started_at, strict=True)]
    assert len(contexts) == 2  # a for 30 s, a again for what is left; b gets no time at all
    for ctx, started in contexts:
        assert ctx.deadline == deadline
        assert ctx.timeout == pytest.approx(min(30.0, deadline - started - 0.2))
    sent = [a for a in info.value.attempts if a.outcome is not None]
    assert [a.outcome for a in sent] == [Outcome.DEADLINE, Outcome.DEADLINE]
    assert sent[0].duration_ms == pytest.approx(30_000)
    assert clock.monotonic() <= deadline


async def test_a_backoff_longer_than_the_time_left_is_not_slept(clock):
    from providers.engine import Engine

    engine = Engine(clock=clock, rng=MaxRandom(1))
    upstream = Upstream(default=http_error(503, delay=8.5))
    target = TargetSpec("a", "m", retry=RetryPolicy(base_delay_s=4.0, max_delay_s=8.0))
    start = clock.monotonic()
    with pytest.raises(DeadlineExceeded) as info:
        await engine.execute(RoutePolicy("r"), [target], upstream, deadline_s=10.0)
    assert clock.monotonic() - start == pytest.approx(8.5)  # 1.5 s left: no 4 s sleep
    assert upstream.calls == 1
    assert info.value.attempts[-1].skipped == "deadline"


async def test_a_backoff_that_fits_is_slept_and_the_retry_gets_what_is_left(clock):
    from providers.engine import Engine

    engine = Engine(clock=clock, rng=MaxRandom(1))
    upstream = Upstream(http_error(503, delay=1.0))
    target = TargetSpec("a", "m", retry=RetryPolicy(base_delay_s=4.0, max_delay_s=8.0))
    result = await engine.execute(RoutePolicy("r"), [target], upstream, deadline_s=10.0)
    assert result.value == "ok"
    assert upstream.started_at[1] - upstream.started_at[0] == pytest.approx(5.0)
    assert upstream.contexts[1].timeout == pytest.approx(10.0 - 5.0 - 0.2)


async def test_the_deadline_is_visible_inside_the_call_and_nested_calls_cannot_extend_it(engine, clock):
    seen: list[float | None] = []

    async def call(target, ctx):  # type: ignore[no-untyped-def]
        seen.append(current_deadline())
        with deadline_scope(100.0, clock) as inner:
            seen.append(inner)
        return "ok"

    start = clock.monotonic()
    await engine.execute(RoutePolicy("r"), [TargetSpec("a", "m")], call, deadline_s=12.0)
    assert seen == [start + 12.0, start + 12.0]
    assert current_deadline() is None


async def test_an_outer_deadline_shortens_the_route_deadline(engine, clock):
    upstream = Upstream()
    with deadline_scope(5.0, clock):
        await engine.execute(RoutePolicy("r"), [TargetSpec("a", "m")], upstream)
    assert upstream.contexts[0].timeout == pytest.approx(4.8)


async def test_a_deadline_too_short_for_anything_skips_every_target(engine):
    upstream = Upstream()
    with pytest.raises(DeadlineExceeded) as info:
        await engine.execute(RoutePolicy("r"), [TargetSpec("a", "m")], upstream, deadline_s=0.5)
    assert upstream.calls == 0 and info.value.all_skipped
    assert isinstance(info.value, AllTargetsFailed)

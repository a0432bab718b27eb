"""Rate limits, Retry-After and exhausted quota: cooldowns, not outages (scenarios 6, 13, 14)."""

from __future__ import annotations

import asyncio
import json
from email.utils import formatdate

import pytest

from providers.engine import AllTargetsFailed, CooldownStarted, RetryPolicy, RoutePolicy, TargetSpec

from .upstream import Router, Upstream, http_error

NO_THROTTLE = RetryPolicy(throttle=False)


def rate_limited(**headers: str):  # type: ignore[no-untyped-def]
    return http_error(429, headers=headers)


async def test_fifty_rate_limits_cool_the_key_down_without_tripping_the_breaker(engine, clock, events):
    a = TargetSpec("a", "m", max_concurrent=50)
    route = RoutePolicy("r", max_attempts=1)
    upstream = Upstream(default=http_error(429, delay=0.1, headers={"retry-after": "5"}))
    results = await asyncio.gather(*(engine.execute(route, [a], upstream) for _ in range(50)), return_exceptions=True)
    start = clock.monotonic()  # when the 429s arrived
    assert upstream.calls == 50 and all(isinstance(r, AllTargetsFailed) for r in results)
    snap = engine.snapshot("a")
    assert snap.state == "closed" and snap.calls == 0
    assert [(c, k) for c, k, _, _ in snap.scoped_cooldowns] == [(None, "rate_limited")]
    assert snap.scoped_cooldowns[0][2] == pytest.approx(clock.time() + 5.0)
    assert len([e for e in events if isinstance(e, CooldownStarted)]) == 1

    router = Router(a=upstream, b=Upstream())
    b = TargetSpec("b", "m")
    clock.advance(4.999)
    result = await engine.execute(RoutePolicy("r"), [a, b], router)
    assert result.target.provider == "b" and upstream.calls == 50
    assert result.attempts[0].skipped == "cooldown"

    clock.advance(start + 5.0 - clock.monotonic())
    upstream.default = Upstream().default
    result = await engine.execute(RoutePolicy("r"), [a, b], router)
    assert result.target.provider == "a" and upstream.calls == 51


async def test_retry_after_ms_wins_and_the_retry_waits_up_to_twenty_percent_longer(engine, clock):
    upstream = Upstream(rate_limited(**{"retry-after-ms": "1500", "retry-after": "9"}))
    result = await engine.execute(RoutePolicy("r"), [TargetSpec("a", "m")], upstream)
    assert result.value == "ok" and upstream.calls == 2
    gap = upstream.started_at[1] - upstream.started_at[0]
    assert 1.5 <= gap <= 1.8


async def test_a_retry_after_date_in_the_past_means_no_wait(engine, clock):
    past = formatdate(clock.time() - 10, usegmt=True)
    upstream = Upstream(rate_limited(**{"retry-after": past}))
    result = await engine.execute(RoutePolicy("r"), [TargetSpec("a", "m")], upstream)
    assert result.value == "ok"
    assert upstream.started_at[1] == upstream.started_at[0]


async def test_a_long_retry_after_falls_back_at_once_and_cools_the_key(engine, clock):
    router = Router(a=Upstream(rate_limited(**{"retry-after": "120"})), b=Upstream())
    targets = [TargetSpec("a", "m"), TargetSpec("b", "m")]
    result = await engine.execute(RoutePolicy("r"), targets, router, deadline_s=30.0)
    assert result.target.provider == "b"
    assert router["b"].started_at[0] - router["a"].started_at[0] <= 0.010
    ((_, kind, until, _),) = engine.snapshot("a").scoped_cooldowns
    assert kind == "rate_limited" and until == pytest.approx(clock.time() + 120.0)


async def test_an_implausible_retry_after_is_ignored_for_the_default_cooldown(engine, clock):
    router = Router(a=Upstream(rate_limited(**{"retry-after": "100000"})), b=Upstream())
    result = await engine.execute(RoutePolicy("r"), [TargetSpec("a", "m"), TargetSpec("b", "m")], router)
    assert result.target.provider == "b"
    ((_, kind, until, _),) = engine.snapshot("a").scoped_cooldowns
    assert kind == "rate_limited" and until == pytest.approx(clock.time() + 60.0)


async def test_an_implausible_header_gives_way_to_the_next_one(engine, clock):
    router = Router(
        a=Upstream(rate_limited(**{"retry-after": "100000", "x-ratelimit-reset": str(clock.time() + 90)})), b=Upstream()
    )
    await engine.execute(RoutePolicy("r"), [TargetSpec("a", "m"), TargetSpec("b", "m")], router)
    ((_, _, until, _),) = engine.snapshot("a").scoped_cooldowns
    assert until == pytest.approx(clock.time() + 90.0)


@pytest.mark.parametrize("code", ["enforced_spend_limit_reached", "insufficient_quota"])
async def test_a_spend_cap_marks_the_key_exhausted_and_falls_back_without_retry(engine, code):
    body = json.dumps({"error": {"message": "no money", "details": {"error_code": code}}}).encode()
    router = Router(a=Upstream(default=http_error(429, body=body)), b=Upstream())
    result = await engine.execute(RoutePolicy("r"), [TargetSpec("a", "m"), TargetSpec("b", "m")], router)
    assert result.target.provider == "b"
    assert router["a"].calls == 1
    snap = engine.snapshot("a")
    assert [(c, k, u) for c, k, u in snap.cooldowns] == [(None, "exhausted", None)]
    assert (snap.calls, snap.failures) == (0, 0)
    again = await engine.execute(RoutePolicy("r"), [TargetSpec("a", "m"), TargetSpec("b", "m")], router)
    assert again.attempts[0].skipped == "exhausted" and router["a"].calls == 1


async def test_a_rate_limit_on_one_credential_moves_to_the_next_at_once(engine, clock):
    upstream = Upstream(rate_limited(**{"retry-after": "30"}))
    target = TargetSpec("a", "m", credentials=("k1", "k2"), retry=NO_THROTTLE)
    result = await engine.execute(RoutePolicy("r"), [target], upstream)
    assert [c.credential for c in upstream.contexts] == ["k1", "k2"]
    assert upstream.started_at[1] == upstream.started_at[0]
    assert result.failovers == 0 and result.retries == 1
    assert [(c, k) for c, k, _, _ in engine.snapshot("a").scoped_cooldowns] == [("k1", "rate_limited")]
    second = Upstream()
    await engine.execute(RoutePolicy("r"), [target], second)
    assert [c.credential for c in second.contexts] == ["k2"]  # k1 still cools; k2 does not


async def test_a_target_with_every_credential_cooling_is_skipped(engine):
    upstream = Upstream(default=rate_limited(**{"retry-after": "30"}))
    target = TargetSpec("a", "m", credentials=("k1", "k2"))
    with pytest.raises(AllTargetsFailed):
        await engine.execute(RoutePolicy("r"), [target], upstream)
    with pytest.raises(AllTargetsFailed) as info:
        await engine.execute(RoutePolicy("r"), [target], upstream)
    assert upstream.calls == 2
    assert info.value.all_skipped and info.value.attempts[0].skipped == "cooldown"

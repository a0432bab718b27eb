"""Per-provider request and token limits: a full provider is skipped, not sent a 429-bound call."""

from __future__ import annotations

from providers.engine import RoutePolicy, TargetSpec
from providers.engine.limits import LocalLimits

from .upstream import Router, Upstream


async def test_a_provider_at_its_request_limit_is_skipped_to_the_next_target(engine, clock):
    router = Router(a=Upstream(), b=Upstream())
    targets = [TargetSpec("a", "m", requests_per_minute=3), TargetSpec("b", "m")]
    served = [(await engine.execute(RoutePolicy("r"), targets, router)).target.provider for _ in range(5)]
    assert served == ["a", "a", "a", "b", "b"]
    assert router["a"].calls == 3
    last = await engine.execute(RoutePolicy("r"), targets, router)
    assert last.attempts[0].skipped == "limit"


async def test_the_limit_is_a_sliding_minute(engine, clock):
    router = Router(a=Upstream(), b=Upstream())
    targets = [TargetSpec("a", "m", requests_per_minute=4), TargetSpec("b", "m")]
    clock.jump_wall(60 * 1000 - clock.time())  # the start of a calendar minute
    for _ in range(4):
        assert (await engine.execute(RoutePolicy("r"), targets, router)).target.provider == "a"
    clock.advance(60)  # the next minute, just begun: the last minute's 4 still count fully
    assert (await engine.execute(RoutePolicy("r"), targets, router)).target.provider == "b"
    clock.advance(30)  # half way: 4 x 0.5 = 2 of them still count
    served = [(await engine.execute(RoutePolicy("r"), targets, router)).target.provider for _ in range(3)]
    assert served == ["a", "a", "b"]


async def test_a_token_limit_stops_new_requests_once_the_minute_has_used_it(engine, clock):
    router = Router(a=Upstream(), b=Upstream())
    targets = [TargetSpec("a", "m", tokens_per_minute=1000), TargetSpec("b", "m")]
    assert (await engine.execute(RoutePolicy("r"), targets, router)).target.provider == "a"
    await engine.limits.add_tokens("a", 600)
    assert (await engine.execute(RoutePolicy("r"), targets, router)).target.provider == "a"
    await engine.limits.add_tokens("a", 500)
    result = await engine.execute(RoutePolicy("r"), targets, router)
    assert result.target.provider == "b" and result.attempts[0].skipped == "limit"


async def test_an_open_breaker_does_not_use_up_the_minutes_requests(engine, clock):
    router = Router(a=Upstream(), b=Upstream())
    targets = [TargetSpec("a", "m", requests_per_minute=2), TargetSpec("b", "m")]
    await engine.force_open("a", 600)
    for _ in range(5):
        await engine.execute(RoutePolicy("r"), targets, router)
    await engine.reset("a")
    served = [(await engine.execute(RoutePolicy("r"), targets, router)).target.provider for _ in range(2)]
    assert served == ["a", "a"]


def test_local_usage_reports_the_sliding_estimate():
    now = [120.0]
    limits = LocalLimits(lambda: now[0])
    import asyncio

    async def fill() -> None:
        for _ in range(10):
            assert await limits.take("k", None, None)
        await limits.add_tokens("k", 300)

    asyncio.run(fill())
    assert limits.usage("k") == (10, 300)
    now[0] = 180 + 15  # a quarter into the next minute
    assert limits.usage("k") == (7.5, 225)

"""The fallback chain through `Engine.execute` (scenarios 1, 10, 11, 17 and the chain rules)."""

from __future__ import annotations

import asyncio
import itertools
import json
import random

import httpx
import pytest

from providers.engine import (
    AllTargetsFailed,
    BreakerPolicy,
    BreakerStateChanged,
    CallerError,
    CircuitOpen,
    NoTargets,
    Outcome,
    RetryPolicy,
    RoutePolicy,
    TargetSpec,
    UpstreamError,
)

from .upstream import Router, Upstream, http_error, ok, raises

RATE_ONLY = BreakerPolicy(consecutive_failures=0)


async def test_the_eleventh_request_fails_fast_without_touching_the_transport(engine, clock):
    target = TargetSpec("a", "m", breaker=RATE_ONLY)
    route = RoutePolicy("r", max_attempts=1)
    upstream = Upstream(default=http_error(503))
    for _ in range(10):
        with pytest.raises(AllTargetsFailed):
            await engine.execute(route, [target], upstream)
    assert engine.snapshot("a").state == "open"
    virtual = clock.monotonic()
    with pytest.raises(AllTargetsFailed) as info:
        await engine.execute(route, [target], upstream)
    assert upstream.calls == 10
    assert clock.monotonic() == virtual  # no backoff, no timeout: it waited for nothing
    assert info.value.all_skipped and info.value.attempts[0].skipped == "open"
    assert isinstance(info.value.last_error, CircuitOpen)
    assert 30.0 <= info.value.last_error.retry_after <= 36.0


async def test_a_failing_target_is_retried_once_then_the_next_one_serves(engine, clock):
    router = Router(a=Upstream(default=http_error(503)), b=Upstream())
    targets = [TargetSpec("a", "m", priority=1), TargetSpec("b", "m", priority=2)]
    result = await engine.execute(RoutePolicy("r"), targets, router)
    assert result.value == "ok" and result.target.provider == "b"
    assert (router["a"].calls, router["b"].calls) == (2, 1)
    assert (result.failovers, result.retries) == (1, 1)
    assert [(a.provider, a.outcome, a.status) for a in result.attempts] == [
        ("a", Outcome.FAILURE, 503),
        ("a", Outcome.FAILURE, 503),
        ("b", Outcome.SUCCESS, 200),
    ]
    assert [c.attempt for c in router["a"].contexts] == [1, 2]
    assert router["b"].contexts[0].chain_attempt == 3
    gap = router["a"].started_at[1] - router["a"].started_at[0]
    assert 0.0 <= gap <= 0.5  # full jitter after the first failure: U(0, 0.5)
    assert router["b"].started_at[0] == router["a"].started_at[1]  # no backoff before a fallback


OPENAI_WINDOWS = {"x-ratelimit-remaining-requests": "9999", "x-ratelimit-remaining-tokens": "29999000"}


class UpperBound(random.Random):
    """Jitter that always draws its upper bound: a backoff is exactly min(cap, base x 2^(n-1))."""

    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.mark.parametrize("reset", ["6ms", "1m30s"])
async def test_a_5xx_waits_the_backoff_not_the_reset_of_a_rate_limit_window(engine, reset):
    # OpenAI sends its rate-limit headers with every answer; a request window reopening in
    # 6 ms (or in a minute and a half) says nothing about when a failing server recovers.
    headers = {**OPENAI_WINDOWS, "x-ratelimit-reset-requests": reset, "x-ratelimit-reset-tokens": reset}
    router = Router(a=Upstream(default=http_error(503, headers=headers)), b=Upstream())
    targets = [
        TargetSpec("a", "m", priority=1, retry=RetryPolicy(max_attempts=3, base_delay_s=1.0)),
        TargetSpec("b", "m", priority=2),
    ]

    engine.rng = UpperBound()

    result = await engine.execute(RoutePolicy("r", max_attempts=4), targets, router)

    assert router["a"].calls == 3 and result.target.provider == "b"
    starts = router["a"].started_at
    assert [round(b - a, 6) for a, b in itertools.pairwise(starts)] == [1.0, 2.0]


async def test_a_5xx_with_retry_after_waits_what_the_server_asked(engine):
    router = Router(a=Upstream(default=http_error(503, headers={"retry-after": "2"})), b=Upstream())

    await engine.execute(RoutePolicy("r"), [TargetSpec("a", "m", priority=1), TargetSpec("b", "m", priority=2)], router)

    assert 2.0 <= router["a"].started_at[1] - router["a"].started_at[0] <= 2.4  # 2 s x U(1, 1.2)


async def test_the_chain_sends_at_most_three_calls_in_all(engine):
    router = Router(**{name: Upstream(default=http_error(502)) for name in "abcd"})
    targets = [TargetSpec(name, "m") for name in "abcd"]
    with pytest.raises(AllTargetsFailed) as info:
        await engine.execute(RoutePolicy("r"), targets, router)
    assert router.calls == 3
    assert not info.value.all_skipped
    assert isinstance(info.value.last_error, UpstreamError) and info.value.last_error.status == 502


async def test_a_caller_error_is_raised_at_once_without_retry_or_fallback(engine):
    router = Router(a=Upstream(default=http_error(422, body=b'{"error":{"message":"bad"}}')), b=Upstream())
    with pytest.raises(CallerError) as info:
        await engine.execute(RoutePolicy("r"), [TargetSpec("a", "m"), TargetSpec("b", "m")], router)
    assert (router["a"].calls, router["b"].calls) == (1, 0)
    assert info.value.upstream.status == 422 and info.value.upstream.message == "bad"
    assert engine.snapshot("a").calls == 0  # ignored by the breaker


async def test_a_refused_credential_is_set_aside_and_the_next_one_tried(engine):
    upstream = Upstream(http_error(401))
    target = TargetSpec("a", "m", credentials=("bad", "good"), rotate_credentials=True)
    result = await engine.execute(RoutePolicy("r"), [target], upstream)
    assert result.value == "ok"
    assert [c.credential for c in upstream.contexts] == ["bad", "good"]
    assert [(c, k) for c, k, _ in engine.snapshot("a").cooldowns] == [("bad", "rejected")]
    again = Upstream()
    await engine.execute(RoutePolicy("r"), [target], again)
    assert [c.credential for c in again.contexts] == ["good"]


async def test_a_refused_credential_without_rotation_is_set_aside_too_never_the_callers_answer(engine):
    upstream = Upstream(http_error(403))
    target = TargetSpec("a", "m", credentials=("bad", "good"))
    result = await engine.execute(RoutePolicy("r"), [target], upstream)
    assert result.value == "ok"
    assert [c.credential for c in upstream.contexts] == ["bad", "good"]
    assert [(c, k) for c, k, _ in engine.snapshot("a").cooldowns] == [("bad", "rejected")]


async def test_exactly_one_open_event_when_a_hundred_concurrent_failures_cross_together(engine, clock, events):
    target = TargetSpec("a", "m", breaker=RATE_ONLY, max_concurrent=100)
    route = RoutePolicy("r", max_attempts=1)
    upstream = Upstream(*[http_error(503, delay=1.0)] * 50, default=http_error(503, delay=2.0))
    calls = [asyncio.ensure_future(engine.execute(route, [target], upstream)) for _ in range(100)]
    await asyncio.sleep(1.5)  # the first 50 failed together; the other 50 are still in flight
    opened = [e for e in events if isinstance(e, BreakerStateChanged) and e.new == "open"]
    open_until = engine.store.state("a").open_until
    assert len(opened) == 1 and upstream.max_in_flight == 100
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, AllTargetsFailed) for r in results)
    assert len([e for e in events if isinstance(e, BreakerStateChanged)]) == 1
    assert engine.store.state("a").open_until == open_until
    assert engine.snapshot("a").failures == 100


async def test_a_hundred_concurrent_calls_through_one_closed_breaker_overlap(engine, clock):
    upstream = Upstream(default=ok(delay=0.2))
    start = clock.monotonic()
    results = await asyncio.gather(
        *(engine.execute(RoutePolicy("r"), [TargetSpec("a", "m", max_concurrent=100)], upstream) for _ in range(100))
    )
    assert len(results) == 100 and upstream.calls == 100
    assert upstream.max_in_flight == 100
    assert clock.monotonic() - start < 0.4


async def test_one_gateway_attempt_against_a_500_is_one_http_request(engine):
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(500, json={"error": {"message": "boom"}})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://up") as client:

        async def call(target, ctx):  # type: ignore[no-untyped-def]
            response = await client.post("/v1/chat/completions", json={}, timeout=ctx.timeout)
            if response.is_error:
                raise UpstreamError.from_response(response.status_code, response.headers, response.content)
            return response.json()

        with pytest.raises(AllTargetsFailed) as info:
            await engine.execute(RoutePolicy("r", max_attempts=1), [TargetSpec("a", "m")], call)
    assert len(requests) == 1
    assert info.value.attempts[0].status == 500 and info.value.attempts[0].error == "boom"


async def test_transport_errors_are_failures_that_fall_back(engine):
    router = Router(a=Upstream(default=raises(httpx.ConnectError("refused"))), b=Upstream())
    target_a = TargetSpec("a", "m", retry=TargetSpec("a", "m").retry.__class__(max_attempts=1))
    result = await engine.execute(RoutePolicy("r"), [target_a, TargetSpec("b", "m")], router)
    assert result.target.provider == "b"
    assert result.attempts[0].reason == "connect_error"
    assert engine.snapshot("a").failures == 1


async def test_the_preferred_provider_goes_first(engine):
    router = Router(a=Upstream(), b=Upstream())
    targets = [TargetSpec("a", "m"), TargetSpec("b", "m")]
    result = await engine.execute(RoutePolicy("r"), targets, router, preferred_provider="b")
    assert result.target.provider == "b" and router["a"].calls == 0


async def test_a_failing_hook_never_breaks_a_call(engine, caplog):
    def broken(event: object) -> None:
        raise RuntimeError("hook down")

    engine.subscribe(broken)
    result = await engine.execute(RoutePolicy("r"), [TargetSpec("a", "m")], Upstream())
    assert result.value == "ok"
    assert "hook down" in caplog.text


async def test_every_skip_is_recorded_and_the_attempt_list_is_json(engine):
    targets = [
        TargetSpec("off", "m", enabled=False),
        TargetSpec("maint", "m", maintenance=True),
        TargetSpec("a", "m"),
    ]
    result = await engine.execute(RoutePolicy("r"), targets, Upstream())
    assert [a.skipped for a in result.attempts] == ["disabled", "maintenance", None]
    assert result.failovers == 0
    data = json.loads(json.dumps(result.as_dict()))
    assert data["attempts"][2]["outcome"] == "success"
    assert data["attempts"][0]["skipped"] == "disabled"


async def test_a_route_without_targets_is_refused(engine):
    with pytest.raises(NoTargets):
        await engine.execute(RoutePolicy("r"), [], Upstream())


async def test_every_target_skipped_means_all_skipped(engine):
    targets = [TargetSpec("a", "m", enabled=False), TargetSpec("b", "m", maintenance=True)]
    with pytest.raises(AllTargetsFailed) as info:
        await engine.execute(RoutePolicy("r"), targets, Upstream())
    assert info.value.all_skipped
    assert [a.skipped for a in info.value.attempts] == ["disabled", "maintenance"]

"""Who is at fault decides what happens (product.md, resilience.md §2): refused keys, missing
models, targets that cannot take a request, our own translation errors, per-model cooldowns."""

from __future__ import annotations

import json

import pytest

from providers.engine import (
    AllTargetsFailed,
    BreakerPolicy,
    CallerError,
    CooldownStarted,
    Outcome,
    RoutePolicy,
    StreamDeadline,
    TargetSpec,
    UnsupportedRequest,
    mark_request_sent,
)
from providers.engine.policy import CAPABILITY_DEFAULTS, Modality

from .upstream import Router, Upstream, http_error, raises

MISSING = json.dumps({"error": {"message": "The model `m` does not exist", "code": "model_not_found"}}).encode()


def cooldown_events(events: list[object]) -> list[CooldownStarted]:
    return [e for e in events if isinstance(e, CooldownStarted)]


@pytest.mark.parametrize("status", [401, 403])
async def test_a_refused_key_falls_back_is_set_aside_and_leaves_the_breaker_alone(engine, events, status):
    router = Router(
        a=Upstream(http_error(status, body=b'{"error": {"message": "bad key sk-secret-123"}}')), b=Upstream()
    )
    targets = [TargetSpec("a", "m", credentials=("k1",), priority=0), TargetSpec("b", "m", priority=1)]
    result = await engine.execute(RoutePolicy("r"), targets, router)
    assert result.target.provider == "b"
    refused = result.attempts[0]
    assert refused.outcome is Outcome.CREDENTIAL_REJECTED and "sk-secret-123" not in refused.error
    snap = engine.snapshot("a")
    assert (snap.calls, snap.failures, snap.state) == (0, 0, "closed")
    assert [(c, k, u) for c, k, u in snap.cooldowns] == [("k1", "rejected", None)]
    (event,) = cooldown_events(events)
    assert (event.kind, event.credential, event.until) == ("rejected", "k1", None)
    again = await engine.execute(RoutePolicy("r"), targets, router)
    assert router["a"].calls == 1 and again.attempts[0].skipped == "rejected"


async def test_a_rejected_key_is_tried_again_once_the_configuration_changes_it(engine):
    upstream = Upstream(http_error(401))
    before = TargetSpec("a", "m", credentials=("k1",), credential_versions=("v1",))
    with pytest.raises(AllTargetsFailed):
        await engine.execute(RoutePolicy("r"), [before], upstream)
    with pytest.raises(AllTargetsFailed) as skipped:
        await engine.execute(RoutePolicy("r"), [before], upstream)
    assert skipped.value.all_skipped and upstream.calls == 1
    after = TargetSpec("a", "m", credentials=("k1",), credential_versions=("v2",))  # the key was edited
    result = await engine.execute(RoutePolicy("r"), [after], upstream)
    assert result.value == "ok" and upstream.calls == 2
    assert engine.snapshot("a").cooldowns == []  # the stale state is gone too


async def test_a_missing_model_the_route_chose_falls_back_and_is_flagged_model_missing(engine, events):
    router = Router(a=Upstream(http_error(404, body=MISSING)), b=Upstream())
    targets = [TargetSpec("a", "m", priority=0), TargetSpec("b", "m", priority=1)]
    result = await engine.execute(RoutePolicy("r"), targets, router)
    assert result.target.provider == "b"
    assert result.attempts[0].outcome is Outcome.TARGET_MISCONFIGURED
    (event,) = cooldown_events(events)
    assert (event.kind, event.scope, event.model) == ("model_missing", "m", "m")
    assert engine.snapshot("a").state == "closed" and engine.snapshot("a").failures == 0
    again = await engine.execute(RoutePolicy("r"), targets, router)
    assert again.attempts[0].skipped == "model_missing" and router["a"].calls == 1
    await engine.clear_model_missing("a", "m")  # the model was pulled
    third = await engine.execute(RoutePolicy("r"), targets, router)
    assert router["a"].calls == 2 and third.attempts[0].skipped is None


async def test_a_missing_model_comes_back_by_itself_after_its_ttl(engine, clock):
    router = Router(a=Upstream(http_error(404, body=MISSING)), b=Upstream())
    targets = [TargetSpec("a", "m", priority=0), TargetSpec("b", "m", priority=1)]
    await engine.execute(RoutePolicy("r"), targets, router)
    clock.advance(targets[0].retry.model_missing_ttl_s)
    await engine.execute(RoutePolicy("r"), targets, router)
    assert router["a"].calls == 2


async def test_a_404_on_a_target_the_caller_named_is_the_callers_answer(engine):
    upstream = Upstream(http_error(404, body=MISSING))
    with pytest.raises(CallerError) as caught:
        await engine.execute(RoutePolicy("a/m"), [TargetSpec("a", "m", caller_named=True)], upstream)
    assert caught.value.upstream.status == 404
    assert engine.snapshot("a").cooldowns == [] and engine.snapshot("a").scoped_cooldowns == []


async def test_a_404_for_something_the_caller_named_inside_the_request_is_not_a_missing_model(engine):
    body = json.dumps({"detail": {"status": "voice_not_found", "message": "model m: voice x not found"}}).encode()
    router = Router(a=Upstream(http_error(404, body=body)), b=Upstream())
    targets = [TargetSpec("a", "m", priority=0), TargetSpec("b", "m", priority=1)]
    with pytest.raises(CallerError):
        await engine.execute(RoutePolicy("r"), targets, router)
    assert engine.snapshot("a").scoped_cooldowns == [] and router["b"].calls == 0


async def test_a_target_that_cannot_take_the_request_is_skipped_without_a_call(engine):
    router = Router(a=Upstream(raises(UnsupportedRequest("provider kind 'x' does not support n > 1"))), b=Upstream())
    targets = [TargetSpec("a", "m", priority=0), TargetSpec("b", "m", priority=1)]
    result = await engine.execute(RoutePolicy("r", max_attempts=1), targets, router)
    assert result.target.provider == "b"  # max_attempts 1: the skip did not use it up
    first = result.attempts[0]
    assert (first.skipped, first.outcome) == ("unsupported", None) and "n > 1" in first.error
    assert sum(1 for a in result.attempts if a.skipped is None) == 1
    assert result.failovers == 0 and result.retries == 0
    snap = engine.snapshot("a")
    assert (snap.calls, snap.failures) == (0, 0)
    assert engine.bulkhead_for(targets[0]).in_use == 0


async def test_when_no_target_can_take_the_request_the_caller_gets_a_400_saying_why(engine):
    router = Router(
        a=Upstream(default=raises(UnsupportedRequest("a does not support audio input"))),
        b=Upstream(default=raises(UnsupportedRequest("b does not support custom tools"))),
    )
    targets = [TargetSpec("a", "m", priority=0), TargetSpec("b", "m2", priority=1)]
    with pytest.raises(CallerError) as caught:
        await engine.execute(RoutePolicy("r"), targets, router)
    upstream = caught.value.upstream
    assert upstream.status == 400
    body = json.loads(upstream.body)["error"]
    assert body["code"] == "unsupported"
    assert "a/m: a does not support audio input" in body["message"]
    assert "b/m2: b does not support custom tools" in body["message"]
    assert all(a.skipped == "unsupported" for a in caught.value.attempts)


async def test_a_translation_error_before_sending_is_the_callers_400_and_never_opens_the_breaker(engine):
    upstream = Upstream(default=raises(TypeError("'<' not supported between 'str' and 'float'")))
    target = TargetSpec("a", "m")
    for _ in range(10):
        with pytest.raises(CallerError) as caught:
            await engine.execute(RoutePolicy("r"), [target], upstream)
        error = caught.value.upstream
        assert error.status == 400 and error.classification.reason == "invalid_request"
        assert "TypeError" in error.message and "Traceback" not in error.message
        assert caught.value.attempts[0].skipped == "invalid_request"
    snap = engine.snapshot("a")
    assert (snap.state, snap.calls, snap.failures, snap.consecutive_failures) == ("closed", 0, 0, 0)
    assert upstream.calls == 10  # once per request: never retried
    assert (await engine.execute(RoutePolicy("r"), [target], Upstream())).value == "ok"


async def test_the_same_exception_after_a_request_went_out_is_the_providers_failure(engine):
    async def answer_unusable(target, ctx):  # type: ignore[no-untyped-def]
        mark_request_sent()
        raise KeyError("choices")

    with pytest.raises(AllTargetsFailed):
        await engine.execute(RoutePolicy("r"), [TargetSpec("a", "m")], Upstream(default=answer_unusable))
    snap = engine.snapshot("a")
    assert snap.failures == 2  # the attempt and its one retry, as for any failure


async def test_a_rate_limit_on_one_model_does_not_cool_the_providers_other_models(engine):
    router = Router(a=Upstream(http_error(429, headers={"retry-after": "60"})))
    chat = TargetSpec("a", "gpt-4o", credentials=("k1",))
    with pytest.raises(AllTargetsFailed):
        await engine.execute(RoutePolicy("r", max_attempts=1), [chat], router)
    other = TargetSpec("a", "gpt-4o-mini", credentials=("k1",))
    embed = TargetSpec("a", "text-embedding-3-small", credentials=("k1",), capability="embeddings")
    assert (await engine.execute(RoutePolicy("r"), [other], router)).value == "ok"
    assert (await engine.execute(RoutePolicy("e", capability="embeddings"), [embed], router)).value == "ok"
    with pytest.raises(AllTargetsFailed) as skipped:
        await engine.execute(RoutePolicy("r"), [chat], router)
    assert skipped.value.attempts[0].skipped == "cooldown"
    assert [(c, k, sc) for c, k, _, sc in engine.snapshot("a").scoped_cooldowns] == [("k1", "rate_limited", "gpt-4o")]


async def test_every_target_cooling_down_says_when_to_come_back(engine, clock):
    router = Router(
        a=Upstream(http_error(429, headers={"retry-after": "40"})),
        b=Upstream(http_error(429, headers={"retry-after": "90"})),
    )
    targets = [TargetSpec("a", "m", priority=0), TargetSpec("b", "m", priority=1)]
    with pytest.raises(AllTargetsFailed):
        await engine.execute(RoutePolicy("r"), targets, router)
    clock.advance(10)
    with pytest.raises(AllTargetsFailed) as caught:
        await engine.execute(RoutePolicy("r"), targets, router)
    assert caught.value.all_skipped
    assert caught.value.retry_after == pytest.approx(30.0, abs=0.01)


async def test_an_open_breaker_says_when_it_half_opens(engine, clock):
    target = TargetSpec("a", "m", breaker=BreakerPolicy(consecutive_failures=1, jitter=0.0, break_s=30))
    with pytest.raises(AllTargetsFailed):
        await engine.execute(RoutePolicy("r", max_attempts=1), [target], Upstream(http_error(503)))
    with pytest.raises(AllTargetsFailed) as caught:
        await engine.execute(RoutePolicy("r"), [target], Upstream())
    assert caught.value.all_skipped and caught.value.retry_after == pytest.approx(30.0, abs=0.01)


async def test_a_key_waiting_for_an_operator_gives_no_retry_after(engine):
    target = TargetSpec("a", "m", credentials=("k1",))
    with pytest.raises(AllTargetsFailed):
        await engine.execute(RoutePolicy("r"), [target], Upstream(http_error(401)))
    with pytest.raises(AllTargetsFailed) as caught:
        await engine.execute(RoutePolicy("r"), [target], Upstream())
    assert caught.value.all_skipped and caught.value.retry_after is None


async def test_a_stream_cut_by_the_requests_deadline_is_not_the_providers_failure(engine):
    result = await engine.execute(RoutePolicy("r"), [TargetSpec("a", "m")], Upstream(), streaming=True)
    await result.finish(StreamDeadline("the request's deadline ended the stream"))
    snap = engine.snapshot("a")
    assert (snap.calls, snap.failures) == (0, 0)
    assert (result.attempts[0].outcome, result.attempts[0].reason) == (Outcome.CANCELLED, "stream_deadline")
    assert engine.bulkhead_for(TargetSpec("a", "m")).in_use == 0


def test_every_capability_reserves_a_half_open_probe_longer_than_its_attempt():
    for capability, modality in CAPABILITY_DEFAULTS.items():
        target = TargetSpec.for_modality(modality, "p", "m")
        assert target.capability == capability
        assert target.breaker.probe_ttl_s > target.attempt_timeout_s
        assert target.breaker.window_s >= 2 * target.attempt_timeout_s
        target.validate()


def test_a_capability_row_breaking_the_start_up_checks_is_refused():
    with pytest.raises(ValueError, match="deadline_s"):
        Modality("x", attempt_timeout_s=30.0, first_byte_timeout_s=None, slow_call_s=5.0, deadline_s=10.0).validate()
    with pytest.raises(ValueError, match="slow_call_s"):
        Modality("x", attempt_timeout_s=10.0, first_byte_timeout_s=None, slow_call_s=15.0, deadline_s=20.0).validate()
    with pytest.raises(ValueError, match="probe_ttl_s"):
        BreakerPolicy(probe_ttl_s=15.0).validate(30.0)


def test_the_translation_capability_gets_one_timeout_everywhere():
    deepl = TargetSpec.for_modality(CAPABILITY_DEFAULTS["translation"], "deepl", "default")
    assert deepl.attempt_timeout_s == 10.0 and deepl.breaker.probe_ttl_s == 15.0

"""A route's own retries per target (`RoutePolicy.retry_*`) over its providers' `RetryPolicy`:
more attempts on the first target, fewer (fail over at once), the route's backoff, and the
same providers on a route without an override behaving as their own policy says."""

from __future__ import annotations

import itertools

import pytest

from providers.engine import AllTargetsFailed, Outcome, RetryPolicy, RoutePolicy, TargetSpec

from .upstream import Router, Upstream, http_error

PROVIDER_RETRY = RetryPolicy(max_attempts=2, base_delay_s=0.01, max_delay_s=0.05)


def targets(retry: RetryPolicy = PROVIDER_RETRY) -> list[TargetSpec]:
    return [TargetSpec("a", "m", priority=1, retry=retry), TargetSpec("b", "m", priority=2, retry=retry)]


def fails_twice_then_answers() -> Router:
    return Router(a=Upstream(http_error(503), http_error(503)), b=Upstream())


async def test_a_route_with_three_attempts_per_target_is_served_by_the_first_on_its_third(engine):
    router = fails_twice_then_answers()
    route = RoutePolicy("r", max_attempts=5, retry_max_attempts=3)

    result = await engine.execute(route, targets(), router)

    assert result.target.provider == "a" and (router["a"].calls, router["b"].calls) == (3, 0)
    assert [(a.provider, a.outcome) for a in result.attempts] == [
        ("a", Outcome.FAILURE),
        ("a", Outcome.FAILURE),
        ("a", Outcome.SUCCESS),
    ]
    assert (result.failovers, result.retries) == (0, 2)


async def test_the_same_providers_on_a_route_without_retry_fail_over_after_their_own_two(engine):
    router = fails_twice_then_answers()

    result = await engine.execute(RoutePolicy("r", max_attempts=5), targets(), router)

    assert result.target.provider == "b" and (router["a"].calls, router["b"].calls) == (2, 1)


async def test_one_attempt_per_target_fails_over_at_once_over_providers_set_to_three(engine, clock):
    router = Router(a=Upstream(default=http_error(503)), b=Upstream())
    route = RoutePolicy("r", retry_max_attempts=1)
    before = clock.monotonic()

    result = await engine.execute(route, targets(RetryPolicy(max_attempts=3)), router)

    assert result.target.provider == "b" and (router["a"].calls, router["b"].calls) == (1, 1)
    assert (result.failovers, result.retries) == (1, 0)
    assert clock.monotonic() == before  # no backoff was waited


async def test_the_routes_backoff_replaces_the_providers(engine):
    router = Router(a=Upstream(http_error(503), http_error(503), http_error(503)))
    route = RoutePolicy("r", max_attempts=4, retry_max_attempts=4, retry_base_delay_s=2.0, retry_max_delay_s=3.0)

    result = await engine.execute(route, [TargetSpec("a", "m", retry=PROVIDER_RETRY)], router)

    started = router["a"].started_at
    gaps = [later - earlier for earlier, later in itertools.pairwise(started)]
    assert result.target.provider == "a" and len(gaps) == 3
    # Full jitter under the route's bounds, U(0, min(3, 2 x 2^(n-1))): the provider's would
    # have kept every wait under 0.05 s.
    assert all(0.0 <= gap <= bound for gap, bound in zip(gaps, [2.0, 3.0, 3.0], strict=True)), gaps
    assert max(gaps) > PROVIDER_RETRY.max_delay_s, gaps


async def test_the_chain_budget_still_bounds_a_route_with_many_attempts_per_target(engine):
    router = Router(a=Upstream(default=http_error(503)), b=Upstream(default=http_error(503)))
    route = RoutePolicy("r", max_attempts=4, retry_max_attempts=10, retry_base_delay_s=0.0)

    with pytest.raises(AllTargetsFailed) as info:
        await engine.execute(route, targets(), router)

    assert (router["a"].calls, router["b"].calls) == (4, 0)
    assert len(info.value.attempts) == 4


def test_the_route_fields_replace_only_what_they_set():
    provider = RetryPolicy(max_attempts=2, base_delay_s=0.5, max_delay_s=8.0)

    assert RoutePolicy("r").retry_for(provider) is provider
    assert RoutePolicy("r", retry_max_attempts=2).retry_for(provider) is provider
    merged = RoutePolicy("r", retry_max_attempts=6, retry_base_delay_s=0.1).retry_for(provider)
    assert (merged.max_attempts, merged.base_delay_s, merged.max_delay_s) == (6, 0.1, 8.0)
    assert merged.budget_min_retries == 5  # the budget's floor leaves a request its retries
    assert merged.max_retry_after_s == provider.max_retry_after_s  # the rest is the provider's


def test_a_route_base_delay_above_a_providers_max_delay_raises_that_max():
    provider = RetryPolicy(max_attempts=2, base_delay_s=0.5, max_delay_s=8.0)

    merged = RoutePolicy("r", retry_base_delay_s=10.0).retry_for(provider)

    assert (merged.base_delay_s, merged.max_delay_s) == (10.0, 10.0)
    merged.validate()


def test_a_target_built_for_the_route_keeps_its_identity():
    route = RoutePolicy("r", retry_max_attempts=4)
    target = TargetSpec("a", "m", retry=PROVIDER_RETRY)

    adapted = route.target_for(target)

    assert adapted is not target and adapted.retry.max_attempts == 4
    assert route.target_for(adapted) is adapted  # the engine's per-call check changes nothing
    assert RoutePolicy("plain").target_for(target) is target


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"retry_max_attempts": 0}, "route.retry_max_attempts: must be at least 1"),
        ({"retry_base_delay_s": -1.0}, "route.retry_base_delay_s: must not be negative"),
        ({"retry_max_delay_s": 0.0}, "route.retry_max_delay_s: must be positive"),
        (
            {"retry_base_delay_s": 2.0, "retry_max_delay_s": 1.0},
            "route.retry_max_delay_s: must be ≥ retry_base_delay_s",
        ),
    ],
)
def test_validate_names_a_bad_route_retry_field(fields, message):
    with pytest.raises(ValueError, match=message):
        RoutePolicy("r", **fields).validate()

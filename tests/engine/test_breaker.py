"""The breaker's trip rules, window and break growth (resilience.md §3, scenarios 1-5b, 8, 22)."""

from __future__ import annotations

import pytest

from providers.engine import BreakerPolicy, BreakerStateChanged, CircuitOpen, Outcome
from providers.engine.breaker import CircuitBreaker

RATE_ONLY = BreakerPolicy(consecutive_failures=0)  # scenarios 1-5 test the rate rule alone
S, F = Outcome.SUCCESS, Outcome.FAILURE


async def feed(breaker: CircuitBreaker, *outcomes: Outcome, duration: float = 0.1) -> None:
    for outcome in outcomes:
        permit = await breaker.acquire()
        await breaker.record(permit, outcome, duration)


def transitions(events: list[object]) -> list[tuple[str, str, str]]:
    return [(e.old, e.new, e.reason) for e in events if isinstance(e, BreakerStateChanged)]


async def trip(breaker: CircuitBreaker) -> None:
    while breaker.state() == "closed":
        await feed(breaker, F)
    assert breaker.state() == "open"


async def test_nine_failures_are_below_the_minimum_throughput(make_breaker, clock):
    breaker = make_breaker(RATE_ONLY)
    for _ in range(9):
        await feed(breaker, F)
        clock.advance(1.0)
    assert breaker.state() == "closed"
    assert breaker.counts().failures == 9


async def test_the_tenth_failure_in_the_window_opens_it_at_that_outcome(make_breaker, clock, events):
    breaker = make_breaker(RATE_ONLY)
    await feed(breaker, *[F] * 9)
    assert transitions(events) == []
    await feed(breaker, F)
    assert transitions(events) == [("closed", "open", "failure_rate 1.00 >= 0.5 over 10 calls")]
    with pytest.raises(CircuitOpen) as info:
        await breaker.acquire()
    assert 30.0 <= info.value.retry_after <= 36.0


@pytest.mark.parametrize(("failures", "state"), [(5, "open"), (4, "closed")])
async def test_the_failure_rate_boundary_is_inclusive(make_breaker, failures, state):
    breaker = make_breaker(RATE_ONLY)
    await feed(breaker, *[S] * (10 - failures), *[F] * failures)
    assert breaker.state() == state


async def test_calls_older_than_the_window_are_evicted(make_breaker, clock):
    breaker = make_breaker(RATE_ONLY)
    await feed(breaker, *[F] * 6)
    assert breaker.state() == "closed"
    clock.advance(66.0)
    await feed(breaker, *[S] * 6, *[F] * 4)
    assert breaker.state() == "closed"
    assert (breaker.counts().calls, breaker.counts().failures) == (10, 4)


async def test_without_eviction_the_same_calls_would_open_it(make_breaker, clock):
    breaker = make_breaker(RATE_ONLY)
    await feed(breaker, *[F] * 6)
    clock.advance(30.0)  # still inside the 60 s window: the old failures still count
    permits = [await breaker.acquire() for _ in range(10)]
    for permit, outcome in zip(permits, [*[S] * 6, *[F] * 4], strict=True):
        await breaker.record(permit, outcome, 0.1)
    assert breaker.state() == "open"
    assert (breaker.counts().calls, breaker.counts().failures) == (16, 10)


async def test_calls_at_exactly_the_slow_threshold_are_not_slow(make_breaker):
    breaker = make_breaker(RATE_ONLY)
    await feed(breaker, *[S] * 10, duration=10.0)
    assert breaker.state() == "closed"
    assert breaker.counts().slow == 0


async def test_calls_just_above_the_slow_threshold_open_it_for_slowness(make_breaker, events):
    breaker = make_breaker(RATE_ONLY)
    await feed(breaker, *[S] * 10, duration=10.001)
    assert breaker.state() == "open"
    assert transitions(events)[0][2].startswith("slow_call_rate 1.00 >= 0.8")


async def test_caller_errors_count_as_neither_success_nor_failure(make_breaker):
    breaker = make_breaker(RATE_ONLY)
    await feed(breaker, *[Outcome.CALLER_ERROR] * 20)
    assert breaker.counts().calls == 0
    await feed(breaker, *[F] * 10)
    assert breaker.state() == "open"  # 10/10, not 10/30


async def test_five_consecutive_failures_open_it_at_low_volume(make_breaker, events):
    breaker = make_breaker(BreakerPolicy())
    await feed(breaker, *[F] * 5)
    assert breaker.state() == "open"
    assert transitions(events) == [("closed", "open", "consecutive_failures 5")]


async def test_a_success_resets_the_consecutive_run(make_breaker):
    breaker = make_breaker(BreakerPolicy())
    await feed(breaker, *[F] * 4, S, *[F] * 4)
    assert breaker.state() == "closed"
    assert breaker.counts().consecutive_failures == 4


async def test_ignored_outcomes_do_not_reset_the_consecutive_run(make_breaker):
    breaker = make_breaker(BreakerPolicy())
    await feed(breaker, *[F] * 4, *[Outcome.CALLER_ERROR] * 3, F)
    assert breaker.state() == "open"


async def test_a_rate_limit_is_not_a_failure(make_breaker):
    breaker = make_breaker(BreakerPolicy())
    await feed(breaker, *[Outcome.RATE_LIMITED] * 50, *[Outcome.EXHAUSTED] * 5)
    assert breaker.state() == "closed"
    assert breaker.counts().calls == 0


async def probe_round(breaker: CircuitBreaker, clock, *results: Outcome) -> None:
    state = breaker.store.state(breaker.key)
    clock.advance(state.open_until - clock.monotonic())
    permits = [await breaker.acquire() for _ in results]
    for permit, result in zip(permits, results, strict=True):
        await breaker.record(permit, result, 0.1)


async def test_two_good_probes_close_it_and_a_third_late_result_changes_nothing(make_breaker, clock, events):
    breaker = make_breaker()
    await trip(breaker)
    clock.advance(36.0)
    probes = [await breaker.acquire() for _ in range(3)]
    assert breaker.state() == "half_open"
    await breaker.record(probes[0], S, 0.1)
    assert breaker.state() == "half_open"
    await breaker.record(probes[1], S, 0.1)
    assert breaker.state() == "closed"
    before = len(events)
    await breaker.record(probes[2], F, 0.1)
    assert breaker.state() == "closed"
    assert len(events) == before
    assert [t[2] for t in transitions(events)][-1] == "probe_ok"


async def test_failed_probes_reopen_it_with_a_doubling_capped_break(make_breaker, clock):
    breaker = make_breaker()
    await trip(breaker)
    bounds = [(60, 72), (120, 144), (240, 288), (300, 360), (300, 360), (300, 360)]
    for low, high in bounds:
        await probe_round(breaker, clock, F, F)
        state = breaker.store.state(breaker.key)
        assert state.state == "open"
        assert low <= state.open_until - clock.monotonic() <= high
    assert breaker.opened_count() == 7


async def test_k_drops_by_one_per_full_healthy_window(make_breaker, clock):
    breaker = make_breaker()
    await trip(breaker)
    await probe_round(breaker, clock, F, F)
    await probe_round(breaker, clock, S, S)
    assert breaker.state() == "closed"
    assert breaker.opened_count() == 2
    clock.advance(59.0)
    assert breaker.opened_count() == 2
    clock.advance(1.0)
    assert breaker.opened_count() == 1
    await trip(breaker)  # the next opening starts from the decayed k
    assert breaker.opened_count() == 2
    state = breaker.store.state(breaker.key)
    assert 60 <= state.open_until - clock.monotonic() <= 72


async def test_a_wall_clock_jump_does_not_move_the_break(make_breaker, clock):
    breaker = make_breaker()
    await trip(breaker)
    open_until = breaker.store.state(breaker.key).open_until
    clock.jump_wall(-3600.0)
    clock.advance(open_until - clock.monotonic() - 0.001)
    with pytest.raises(CircuitOpen):
        await breaker.acquire()
    clock.advance(0.001)
    permit = await breaker.acquire()
    assert permit.probe is not None
    assert breaker.state() == "half_open"


async def test_results_arriving_while_open_count_but_do_not_extend_the_break(make_breaker, clock, events):
    breaker = make_breaker()
    early = [await breaker.acquire() for _ in range(8)]
    await feed(breaker, *[F] * 5)
    open_until = breaker.store.state(breaker.key).open_until
    for permit in early:
        await breaker.record(permit, F, 0.1)
    assert breaker.store.state(breaker.key).open_until == open_until
    assert breaker.counts().failures == 13
    assert len(transitions(events)) == 1

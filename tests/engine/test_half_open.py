"""Half-open reservations: the probe limit and what cannot wedge it (scenarios 7, 9)."""

from __future__ import annotations

import asyncio

import pytest

from providers.engine import (
    AllTargetsFailed,
    BreakerPolicy,
    BreakerStateChanged,
    CircuitOpen,
    Outcome,
    RoutePolicy,
    TargetSpec,
)

from .upstream import Upstream, http_error, ok

F = Outcome.FAILURE


async def open_breaker(breaker, clock) -> None:  # type: ignore[no-untyped-def]
    for _ in range(5):
        await breaker.record(await breaker.acquire(), F, 0.1)
    assert breaker.state() == "open"
    clock.advance(breaker.store.state(breaker.key).open_until - clock.monotonic())


async def test_after_the_break_fifty_concurrent_acquires_get_exactly_three_permits(make_breaker, clock):
    breaker = make_breaker()
    await open_breaker(breaker, clock)
    results = await asyncio.gather(*(breaker.acquire() for _ in range(50)), return_exceptions=True)
    permits = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, CircuitOpen)]
    assert len(permits) == 3
    assert len(refused) == 47
    assert all(r.retry_after > 0 and r.state == "half_open" for r in refused)


async def test_after_the_break_fifty_concurrent_requests_send_exactly_three_calls(engine, clock):
    target = TargetSpec("a", "m")
    route = RoutePolicy("r", max_attempts=1)
    failing = Upstream(default=http_error(503))
    for _ in range(5):
        with pytest.raises(AllTargetsFailed):
            await engine.execute(route, [target], failing)
    assert engine.snapshot("a").state == "open"
    clock.advance(36.0)
    upstream = Upstream(default=ok(delay=1.0))
    results = await asyncio.gather(
        *(engine.execute(route, [target], upstream) for _ in range(50)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, AllTargetsFailed)]
    assert upstream.calls == 3
    assert len(refused) == 47
    for error in refused:
        assert error.all_skipped
        assert error.attempts[0].skipped == "half_open_full"
        assert isinstance(error.last_error, CircuitOpen) and error.last_error.retry_after > 0
    assert engine.snapshot("a").state == "closed"


async def test_a_cancelled_probe_frees_its_slot_at_once_and_a_hung_one_at_probe_ttl(make_breaker, clock):
    breaker = make_breaker(BreakerPolicy())  # attempt timeout 30 s: probe_ttl 35 s
    await open_breaker(breaker, clock)
    start = clock.monotonic()
    hung = await breaker.acquire()
    clock.advance(10.0)
    cancelled = await breaker.acquire()
    await breaker.release(cancelled)  # what the engine does on CancelledError
    others = [await breaker.acquire(), await breaker.acquire()]
    assert all(p.probe is not None for p in [hung, *others])
    with pytest.raises(CircuitOpen):
        await breaker.acquire()
    clock.advance(start + 35.0 - clock.monotonic() - 0.001)
    with pytest.raises(CircuitOpen):
        await breaker.acquire()
    clock.advance(0.001)  # the hung probe's reservation expires at probe_ttl
    replacement = await breaker.acquire()
    assert replacement.probe is not None
    with pytest.raises(CircuitOpen):
        await breaker.acquire()
    del hung


async def test_half_open_without_a_decision_reopens_at_twice_probe_ttl(make_breaker, clock, events):
    breaker = make_breaker(BreakerPolicy())
    await open_breaker(breaker, clock)
    hung = await breaker.acquire()
    generation = breaker.store.state(breaker.key).generation
    clock.advance(70.0 - 0.001)
    assert breaker.state() == "half_open"
    clock.advance(0.001)
    assert breaker.state() == "open"
    assert await breaker.refresh() == "open"
    state = breaker.store.state(breaker.key)
    assert state.generation == generation + 1
    last = [e for e in events if isinstance(e, BreakerStateChanged)][-1]
    assert (last.old, last.new, last.reason) == ("half_open", "open", "half_open_timeout")
    await breaker.record(hung, Outcome.SUCCESS, 70.0)  # the hung call's late success
    assert breaker.state() == "open"
    assert breaker.store.state(breaker.key).generation == generation + 1


async def test_a_cancelled_call_in_the_engine_releases_its_probe_and_changes_no_counter(engine, clock):
    target = TargetSpec("a", "m")
    route = RoutePolicy("r", max_attempts=1)
    for _ in range(5):
        with pytest.raises(AllTargetsFailed):
            await engine.execute(route, [target], Upstream(default=http_error(503)))
    clock.advance(36.0)
    before = engine.snapshot("a")

    async def cancelled(target, ctx):  # type: ignore[no-untyped-def]
        raise asyncio.CancelledError

    for _ in range(5):  # more than half_open_probes: each slot must come back
        with pytest.raises(asyncio.CancelledError):
            await engine.execute(route, [target], cancelled)
    after = engine.snapshot("a")
    assert (after.calls, after.failures, after.state) == (before.calls, before.failures, "half_open")
    live, _ = engine.store.probes_in_flight("a", after.generation, clock.monotonic())
    assert live == 0


async def test_a_late_success_from_an_earlier_half_open_does_not_close_a_later_one(make_breaker, clock, events):
    breaker = make_breaker(BreakerPolicy(half_open_probes=1))
    await open_breaker(breaker, clock)
    old_probe = await breaker.acquire()
    clock.advance(70.0)  # no decision within 2 x probe_ttl: open again
    await breaker.refresh()
    clock.advance(breaker.store.state(breaker.key).open_until - clock.monotonic())
    new_probe = await breaker.acquire()  # a new half-open generation
    assert breaker.state() == "half_open"
    await breaker.record(old_probe, Outcome.SUCCESS, 0.1)
    assert breaker.state() == "half_open"
    await breaker.record(new_probe, Outcome.SUCCESS, 0.1)
    assert breaker.state() == "closed"
    assert [e.reason for e in events if isinstance(e, BreakerStateChanged)][-1] == "probe_ok"

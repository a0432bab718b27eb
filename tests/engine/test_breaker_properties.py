"""Property tests: the breaker's invariants under random interleavings of calls and outcomes.

The store used here yields to the event loop inside every async operation, as a networked
store would, so concurrent batches really interleave between the read and the write of each
decision. Whatever the order: never more than `half_open_probes` probes in flight, transitions
only along legal edges with exactly one event per generation, no transition from an outcome of
an older generation, and `open_until` never moved by a late result.
"""

from __future__ import annotations

import asyncio
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from providers.engine import (
    BreakerPolicy,
    BreakerStateChanged,
    CircuitOpen,
    FakeClock,
    Outcome,
    Permit,
)
from providers.engine.breaker import LEGAL_EDGES, CircuitBreaker
from providers.engine.events import Emitter
from providers.engine.store import LocalStateStore


class YieldingStore(LocalStateStore):
    """A local store that suspends inside every write, like a round trip to Redis would."""

    async def compare_and_set(self, key, expected, new):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0)
        return await super().compare_and_set(key, expected, new)

    async def add_outcome(self, key, now, **kw):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0)
        return await super().add_outcome(key, now, **kw)

    async def reserve_probe(self, key, generation, limit, ttl, now):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0)
        return await super().reserve_probe(key, generation, limit, ttl, now)

    async def add_probe_result(self, key, generation, success):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0)
        return await super().add_probe_result(key, generation, success)


OUTCOMES = st.sampled_from(
    [Outcome.SUCCESS, Outcome.FAILURE, Outcome.DEADLINE, Outcome.CALLER_ERROR, Outcome.RATE_LIMITED, Outcome.CANCELLED]
)
STEP = st.one_of(
    st.tuples(st.just("acquire")),
    st.tuples(st.just("record"), st.integers(0, 50), OUTCOMES, st.sampled_from([0.1, 10.5])),
    st.tuples(st.just("release"), st.integers(0, 50)),
    st.tuples(st.just("external"), OUTCOMES),
)
OP = st.one_of(
    STEP.map(lambda s: [s]),
    st.lists(STEP, min_size=2, max_size=12),  # a concurrent batch
    st.tuples(st.just("advance"), st.sampled_from([0.5, 5.0, 20.0, 36.0, 71.0])).map(lambda s: [s]),
)


class Run:
    def __init__(self, clock: FakeClock, seed: int, probes: int) -> None:
        self.clock = clock
        self.events: list[BreakerStateChanged] = []
        emitter = Emitter()
        emitter.subscribe(lambda e: self.events.append(e) if isinstance(e, BreakerStateChanged) else None)
        self.store = YieldingStore()
        policy = BreakerPolicy(min_calls=4, half_open_probes=probes).resolve(30.0)
        self.breaker = CircuitBreaker("k", policy, self.store, clock, random.Random(seed), emitter)
        self.permits: list[Permit] = []
        self.probes = probes
        self.alone = True

    async def step(self, step: tuple) -> None:  # type: ignore[type-arg]
        kind = step[0]
        if kind == "acquire":
            try:
                self.permits.append(await self.breaker.acquire())
            except CircuitOpen as exc:
                assert exc.retry_after > 0
        elif kind == "record" and self.permits:
            permit = self.permits.pop(step[1] % len(self.permits))
            await self.checked_record(permit, step[2], step[3])
        elif kind == "release" and self.permits:
            await self.breaker.release(self.permits.pop(step[1] % len(self.permits)))
        elif kind == "external":
            state = self.store.state("k")
            generation = state.generation if state.state == "closed" else -1
            await self.checked_record(Permit("k", generation), step[1], 0.1)
        elif kind == "advance":
            self.clock.advance(step[1])

    async def checked_record(self, permit: Permit, outcome: Outcome, duration: float) -> None:
        stale = permit.generation != self.store.state("k").generation
        before = len(self.events)
        await self.breaker.record(permit, outcome, duration)
        if stale and self.alone:  # in a batch, another task's transition may land meanwhile
            assert self.events[before:] == [], "an outcome of an older generation drove a transition"

    def check(self) -> None:
        state = self.store.state("k")
        live, _ = self.store.probes_in_flight("k", state.generation, self.clock.monotonic())
        assert live <= self.probes
        assert state.generation == len(self.events)  # one event per transition, no more
        for i, event in enumerate(self.events):
            assert (event.old, event.new) in LEGAL_EDGES
            assert event.generation == i + 1
            if i:
                assert event.old == self.events[i - 1].new


@settings(max_examples=300, deadline=None)
@given(ops=st.lists(OP, max_size=60), seed=st.integers(0, 2**16), probes=st.integers(1, 3))
def test_breaker_invariants_hold_under_any_interleaving(ops, seed, probes):
    clock = FakeClock()
    run = Run(clock, seed, probes)

    async def main() -> None:
        for op in ops:
            state = run.store.state("k")
            run.alone = len(op) == 1
            if run.alone:
                await run.step(op[0])
            else:
                await asyncio.gather(*(run.step(s) for s in op))
            after = run.store.state("k")
            if after.generation == state.generation and state.state == "open":
                assert after.open_until == state.open_until, "a late result moved open_until"
            run.check()

    clock.run(main())


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 120), probes=st.integers(1, 5), seed=st.integers(0, 1000))
def test_concurrent_acquires_in_half_open_never_exceed_the_probe_limit(n, probes, seed):
    clock = FakeClock()
    run = Run(clock, seed, probes)

    async def main() -> int:
        while run.breaker.state() == "closed":
            await run.breaker.record(await run.breaker.acquire(), Outcome.FAILURE, 0.1)
        clock.advance(40.0)
        results = await asyncio.gather(*(run.breaker.acquire() for _ in range(n)), return_exceptions=True)
        return sum(1 for r in results if isinstance(r, Permit))

    assert clock.run(main()) == min(n, probes)
    assert [e.new for e in run.events] == ["open", "half_open"]


@settings(max_examples=100, deadline=None)
@given(n=st.integers(10, 150), seed=st.integers(0, 1000))
def test_many_concurrent_failures_open_it_exactly_once(n, seed):
    clock = FakeClock()
    run = Run(clock, seed, 3)

    async def main() -> None:
        permits = [await run.breaker.acquire() for _ in range(n)]
        await asyncio.gather(*(run.breaker.record(p, Outcome.FAILURE, 0.1) for p in permits))

    clock.run(main())
    assert [(e.old, e.new) for e in run.events] == [("closed", "open")]
    assert run.breaker.counts().failures == n

"""Streams: the permit is held until finish(); a broken stream is never retried (scenario 19)."""

from __future__ import annotations

import pytest

from providers.engine import AttemptFinished, Outcome, RoutePolicy, TargetSpec

from .upstream import Router, Upstream, ok

TARGETS = [TargetSpec("a", "m"), TargetSpec("b", "m")]


class Stream:
    """What a gateway's attempt function returns: the first chunk already read."""

    def __init__(self, chunks: list[str], break_after: int | None = None) -> None:
        self.chunks = chunks
        self.break_after = break_after

    def __aiter__(self):  # type: ignore[no-untyped-def]
        return self._iterate()

    async def _iterate(self):  # type: ignore[no-untyped-def]
        for i, chunk in enumerate(self.chunks):
            if self.break_after is not None and i == self.break_after:
                raise ConnectionResetError("upstream closed the stream")
            yield chunk


async def forward(result) -> tuple[list[str], BaseException | None]:  # type: ignore[no-untyped-def]
    sent: list[str] = []
    try:
        async for chunk in result.value:
            sent.append(chunk)
    except Exception as exc:
        return sent, exc
    return sent, None


async def test_a_stream_broken_after_three_chunks_is_not_retried_and_counts_as_a_failure(engine, events):
    router = Router(a=Upstream(default=ok(Stream(["a", "b", "c", "d"], break_after=3))), b=Upstream())
    result = await engine.execute(RoutePolicy("r"), TARGETS, router, streaming=True)
    sent, error = await forward(result)
    assert sent == ["a", "b", "c"] and isinstance(error, ConnectionResetError)
    await result.finish(error)
    assert (router["a"].calls, router["b"].calls) == (1, 0)
    snap = engine.snapshot("a")
    assert (snap.calls, snap.failures) == (1, 1)
    assert result.attempts[-1].outcome is Outcome.STREAM_ABORTED
    finished = [e for e in events if isinstance(e, AttemptFinished)]
    assert [e.outcome for e in finished] == [Outcome.STREAM_ABORTED]


async def test_a_stream_that_ends_well_is_a_success_and_holds_its_slot_until_finish(engine):
    router = Router(a=Upstream(default=ok(Stream(["a", "b"]))), b=Upstream())
    result = await engine.execute(RoutePolicy("r"), TARGETS, router, streaming=True)
    assert engine.bulkhead_for(TARGETS[0]).in_use == 1
    assert engine.snapshot("a").calls == 0  # not decided yet
    sent, error = await forward(result)
    assert sent == ["a", "b"] and error is None
    await result.finish(error)
    await result.finish(error)  # idempotent
    assert engine.bulkhead_for(TARGETS[0]).in_use == 0
    snap = engine.snapshot("a")
    assert (snap.calls, snap.failures, snap.slow) == (1, 0, 0)


async def test_slowness_of_a_stream_is_judged_on_time_to_first_byte(engine):
    router = Router(a=Upstream(default=ok(Stream(["a"]), delay=12.0)))
    result = await engine.execute(RoutePolicy("r"), TARGETS[:1], router, streaming=True)
    assert router["a"].contexts[0].timeout == 20.0  # the LLM first-byte timeout
    assert result.attempts[0].duration_ms == pytest.approx(12_000)
    await result.finish(None)
    assert engine.snapshot("a").slow == 1


async def test_a_half_open_probe_stream_keeps_its_reservation_until_finish(engine, clock):
    for _ in range(5):
        await engine.record("a", Outcome.FAILURE, 0.1)
    clock.advance(40.0)
    router = Router(a=Upstream(default=ok(Stream(["a"]))))
    results = [await engine.execute(RoutePolicy("r"), TARGETS[:1], router, streaming=True) for _ in range(3)]
    generation = engine.store.state("a").generation
    assert engine.store.probes_in_flight("a", generation, clock.monotonic())[0] == 3
    for result in results[:2]:
        await result.finish(None)
    assert engine.snapshot("a").state == "closed"


async def test_a_client_disconnect_mid_stream_changes_no_counter(engine):
    import asyncio

    router = Router(a=Upstream(default=ok(Stream(["a"]))))
    result = await engine.execute(RoutePolicy("r"), TARGETS[:1], router, streaming=True)
    await result.finish(asyncio.CancelledError())
    assert engine.snapshot("a").calls == 0
    assert result.attempts[0].outcome is Outcome.CANCELLED

"""Engine.reset_statistics: an operator's "reset statistics" (POST /api/health/<name>/reset)."""

from __future__ import annotations

from providers.engine import Outcome


async def test_it_forgets_the_window_and_the_consecutive_failures_only(engine):
    for outcome in (Outcome.SUCCESS, Outcome.FAILURE, Outcome.FAILURE):
        await engine.record("a", outcome, 0.1)
    before = engine.snapshot("a")
    assert (before.calls, before.failures, before.consecutive_failures) == (3, 2, 2)
    await engine.reset_statistics("a")
    after = engine.snapshot("a")
    assert (after.calls, after.failures, after.consecutive_failures, after.success_rate) == (0, 0, 0, None)
    assert (after.state, after.generation) == (before.state, before.generation)


async def test_an_open_breaker_stays_open(engine):
    for _ in range(5):
        await engine.record("a", Outcome.FAILURE, 0.1)
    assert engine.snapshot("a").state == "open"
    await engine.reset_statistics("a")
    snap = engine.snapshot("a")
    assert (snap.state, snap.calls) == ("open", 0)

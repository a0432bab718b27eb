"""What the console, the operations API and the monitor call: snapshots, record, configure."""

from __future__ import annotations

import asyncio
import json

import pytest

from providers.engine import (
    AttemptFinished,
    BreakerPolicy,
    BreakerStateChanged,
    Outcome,
    RoutePolicy,
    TargetSpec,
)

from .upstream import Upstream, http_error, ok


async def test_a_snapshot_shows_counts_rates_latency_and_is_json(engine, clock):
    target = TargetSpec("a", "m")
    for delay in (0.1, 0.2, 0.3, 0.4):
        await engine.execute(RoutePolicy("r"), [target], Upstream(ok(delay=delay)))
    await engine.execute(RoutePolicy("r"), [target], Upstream(http_error(503)))
    snap = engine.snapshot("a")
    assert (snap.state, snap.calls, snap.failures, snap.consecutive_failures) == ("closed", 6, 1, 0)
    assert snap.success_rate == pytest.approx(5 / 6)
    assert snap.p50_ms == pytest.approx(200.0) and snap.p95_ms == pytest.approx(400.0)
    data = json.loads(json.dumps(snap.as_dict()))
    assert data["key"] == "a" and data["cooldowns"] == []


async def test_an_unknown_key_has_an_empty_closed_snapshot(engine):
    snap = engine.snapshot("nobody")
    assert (snap.state, snap.calls, snap.success_rate, snap.p50_ms, snap.open_until) == ("closed", 0, None, None, None)


async def test_snapshots_list_every_known_key(engine):
    await engine.execute(RoutePolicy("r"), [TargetSpec("a", "m")], Upstream())
    await engine.record("b", Outcome.SUCCESS, 0.1)
    assert [s.key for s in engine.snapshots()] == ["a", "b"]


async def test_an_open_snapshot_says_until_when_in_wall_time(engine, clock):
    for _ in range(5):
        await engine.record("a", Outcome.FAILURE, 0.1)
    snap = engine.snapshot("a")
    assert snap.state == "open" and snap.opened_count == 1
    assert clock.time() + 30 <= snap.open_until <= clock.time() + 36
    assert snap.reason == "consecutive_failures 5"


async def test_monitor_results_while_open_are_statistics_only(engine, clock, events):
    for _ in range(5):
        await engine.record("a", Outcome.FAILURE, 0.1)
    open_until = engine.snapshot("a").open_until
    for _ in range(20):
        await engine.record("a", Outcome.SUCCESS, 0.1)
    snap = engine.snapshot("a")
    assert (snap.state, snap.open_until, snap.calls) == ("open", open_until, 25)
    assert len([e for e in events if isinstance(e, BreakerStateChanged)]) == 1


async def test_configure_changes_thresholds_at_run_time(engine):
    engine.configure("a", BreakerPolicy(consecutive_failures=2))
    await engine.record("a", Outcome.FAILURE, 0.1)
    assert engine.snapshot("a").state == "closed"
    await engine.record("a", Outcome.FAILURE, 0.1)
    assert engine.snapshot("a").state == "open"


async def test_every_sent_attempt_is_announced(engine, events):
    await engine.execute(RoutePolicy("r"), [TargetSpec("a", "m", credentials=("k",))], Upstream(http_error(503)))
    finished = [e for e in events if isinstance(e, AttemptFinished)]
    assert [(e.outcome, e.status, e.credential) for e in finished] == [
        (Outcome.FAILURE, 503, "k"),
        (Outcome.SUCCESS, 200, "k"),
    ]


async def test_a_server_that_says_do_not_retry_is_not_retried(engine):
    upstream = Upstream(http_error(503, headers={"x-should-retry": "false"}))
    with pytest.raises(Exception, match="every target failed"):
        await engine.execute(RoutePolicy("r"), [TargetSpec("a", "m")], upstream)
    assert upstream.calls == 1


async def test_slow_probes_do_not_close_a_breaker_that_slowness_opened(engine, clock):
    target = TargetSpec("a", "m", breaker=BreakerPolicy(consecutive_failures=0))
    slow = Upstream(default=ok(delay=10.5))
    await asyncio.gather(*(engine.execute(RoutePolicy("r"), [target], slow) for _ in range(10)))
    assert engine.snapshot("a").reason.startswith("slow_call_rate")
    clock.advance(36.0)
    await engine.execute(RoutePolicy("r"), [target], slow)
    await engine.execute(RoutePolicy("r"), [target], slow)
    snap = engine.snapshot("a")
    assert (snap.state, snap.reason, snap.opened_count) == ("open", "probe_failed", 2)

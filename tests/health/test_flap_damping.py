"""Flap damping, driven through the monitor's evaluations: a measured status change is taken
only once it has been seen on HEALTH_FLAP_CHECKS consecutive evaluations spanning
HEALTH_FLAP_SECONDS. Each evaluation here sees the success rate the test sets (the window is
cleared and refilled before it), so the status each one calls for is known."""

from __future__ import annotations

import random

import pytest
from asgiref.sync import sync_to_async

from health import scores
from health.models import HealthEvent, Incident, ProviderHealth
from health.monitor import Monitor
from providers.engine import Engine, Outcome
from providers.runtime import Runtime, install_runtime
from tests.fakes.openai import API_KEY, FakeOpenAI

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def vrt(clock):
    runtime = install_runtime(Runtime(engine=Engine(clock=clock, rng=random.Random(3))))
    runtime.engine.emitter.unsubscribe(runtime.event_sink)
    yield runtime
    await runtime.close()


@pytest.fixture
def fake():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def monitor(configure, vrt, clock, fake):
    # A breaker that never trips and probes an hour apart: only the test's calls count.
    await configure(
        {
            "providers": [
                {
                    "name": "p1",
                    "kind": "openai",
                    "base_url": fake.url + "/v1",
                    "api_key": API_KEY,
                    "models": ["gpt-4o-mini"],
                    "timeout_s": 5,
                    "health_check": {"interval_s": 3600, "timeout_s": 1},
                    "breaker": {"consecutive_failures": 0, "min_calls": 1000, "window_s": 60},
                }
            ]
        }
    )
    return Monitor(vrt, now=clock, rng=random.Random(7), holder="m1")


GOOD, BAD = (10, 0), (6, 4)  # (successes, failures): 100 % is healthy, 60 % unhealthy


async def evaluate(monitor, clock, calls, seconds=1.0):
    """One evaluation that sees exactly `calls` in the window."""
    rt = monitor.rt
    policy = (await rt.current()).providers["p1"].breaker
    await rt.engine.reset_statistics("p1")
    ok, failed = calls
    for outcome, count in ((Outcome.SUCCESS, ok), (Outcome.FAILURE, failed)):
        for _ in range(count):
            await rt.engine.record("p1", outcome, 0.05, policy)
    clock.advance(seconds)
    await monitor.tick()
    await monitor.wait_for_probes()
    await monitor.alerter.wait_for_deliveries()


@sync_to_async
def status():
    return ProviderHealth.objects.get(provider__name="p1").status


@sync_to_async
def status_changes():
    return list(
        HealthEvent.objects.filter(kind=HealthEvent.Kind.STATUS, provider_name="p1")
        .order_by("id")
        .values_list("old", "new")
    )


async def settle(monitor, clock):
    for _ in range(3):
        await evaluate(monitor, clock, GOOD)
    assert await status() == "healthy"
    return len(await status_changes())


async def test_a_provider_alternating_good_and_bad_every_evaluation_does_not_flip(monitor, clock):
    before = await settle(monitor, clock)
    for i in range(20):  # 20 % errors on average, every other evaluation unhealthy
        await evaluate(monitor, clock, BAD if i % 2 == 0 else GOOD)
        assert await status() == "healthy"
    assert len(await status_changes()) == before
    assert await sync_to_async(Incident.objects.count)() == 0


async def test_more_flap_checks_hold_a_change_that_fewer_would_take(monitor, clock, settings):
    settings.HEALTH_FLAP_CHECKS = 3
    before = await settle(monitor, clock)
    for _ in range(5):  # two bad evaluations in a row, then a good one: never three
        for calls in (BAD, BAD, GOOD):
            await evaluate(monitor, clock, calls)
            assert await status() == "healthy"
    assert len(await status_changes()) == before
    for _ in range(3):
        await evaluate(monitor, clock, BAD)
    assert await status() == "unhealthy"
    assert (await status_changes())[-1] == ("healthy", "unhealthy")


async def test_two_bad_evaluations_in_a_row_are_taken_by_default(monitor, clock):
    await settle(monitor, clock)
    await evaluate(monitor, clock, BAD)
    assert await status() == "healthy"
    await evaluate(monitor, clock, BAD)
    assert await status() == "unhealthy"


async def test_flap_seconds_hold_a_change_until_it_has_lasted_that_long(monitor, clock, settings):
    settings.HEALTH_FLAP_SECONDS = 30
    await settle(monitor, clock)
    seen = []
    for _ in range(10):  # 5 s apart: first seen at 0 s, held 30 s at the seventh
        await evaluate(monitor, clock, BAD, seconds=5)
        seen.append(await status())
    assert seen == ["healthy"] * 6 + ["unhealthy"] * 4


async def test_facts_still_take_effect_at_once(monitor, clock, settings, vrt):
    settings.HEALTH_FLAP_CHECKS = 5
    settings.HEALTH_FLAP_SECONDS = 300
    await settle(monitor, clock)
    await vrt.engine.force_open("p1")
    await evaluate(monitor, clock, GOOD)
    assert await status() == "unhealthy"


def test_damping_settings_fall_back_to_sane_defaults():
    assert scores.Damping.of(None, None) == scores.Damping(scores.DEBOUNCE, 0.0)
    assert scores.Damping.of(0, -5) == scores.Damping(1, 0.0)
    assert scores.Damping.of(4, 90) == scores.Damping(4, 90.0)

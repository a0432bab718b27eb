"""Flap damping per provider: a provider's `health_check.flap_checks` / `flap_seconds` take the
place of HEALTH_FLAP_CHECKS / HEALTH_FLAP_SECONDS for it, and one it leaves unset (null) stays
on the global setting. Driven like tests/health/test_flap_damping.py: each evaluation sees the
success rates the test sets for each provider, on the fake clock."""

from __future__ import annotations

import random
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from health import scores
from health.models import HealthEvent, ProviderHealth
from health.monitor import Monitor
from providers.engine import Engine, Outcome
from providers.runtime import Runtime, install_runtime
from tests.fakes.openai import API_KEY, FakeOpenAI

pytestmark = pytest.mark.django_db(transaction=True)

GOOD, BAD = (10, 0), (6, 4)  # (successes, failures): 100 % is healthy, 60 % unhealthy


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


def entry(fake: FakeOpenAI, name: str, **health_check: Any) -> dict[str, Any]:
    # A breaker that never trips and probes an hour apart: only the test's calls count.
    return {
        "name": name,
        "kind": "openai",
        "base_url": fake.url + "/v1",
        "api_key": API_KEY,
        "models": ["gpt-4o-mini"],
        "timeout_s": 5,
        "health_check": {"interval_s": 3600, "timeout_s": 1, **health_check},
        "breaker": {"consecutive_failures": 0, "min_calls": 1000, "window_s": 60},
    }


@pytest.fixture
def monitor_of(configure, vrt, clock, fake):
    async def make(**providers: dict[str, Any]) -> Monitor:
        await configure({"providers": [entry(fake, name, **hc) for name, hc in providers.items()]})
        await vrt.refresh(force=True)
        return Monitor(vrt, now=clock, rng=random.Random(7), holder="m1")

    return make


async def evaluate(monitor: Monitor, clock, calls: dict[str, tuple[int, int]], seconds: float = 1.0) -> None:
    """One evaluation that sees exactly `calls[name]` in each provider's window."""
    rt = monitor.rt
    snapshot = await rt.current()
    for name, (ok, failed) in calls.items():
        policy = snapshot.providers[name].breaker
        await rt.engine.reset_statistics(name)
        for outcome, count in ((Outcome.SUCCESS, ok), (Outcome.FAILURE, failed)):
            for _ in range(count):
                await rt.engine.record(name, outcome, 0.05, policy)
    clock.advance(seconds)
    await monitor.tick()
    await monitor.wait_for_probes()
    await monitor.alerter.wait_for_deliveries()


@sync_to_async
def statuses() -> dict[str, str]:
    return dict(ProviderHealth.objects.values_list("provider__name", "status"))


@sync_to_async
def status_changes(name: str) -> list[tuple[str, str]]:
    return list(
        HealthEvent.objects.filter(kind=HealthEvent.Kind.STATUS, provider_name=name)
        .order_by("id")
        .values_list("old", "new")
    )


async def settle(monitor: Monitor, clock, names: tuple[str, ...]) -> None:
    for _ in range(4):
        await evaluate(monitor, clock, {name: GOOD for name in names})
    assert await statuses() == {name: "healthy" for name in names}


async def test_a_provider_with_flap_checks_1_changes_at_once_while_one_on_the_global_3_waits(
    monitor_of, clock, settings
):
    settings.HEALTH_FLAP_CHECKS = 3
    monitor = await monitor_of(quick={"flap_checks": 1}, steady={})
    assert (await monitor.rt.current()).providers["quick"].flap_checks == 1
    assert (await monitor.rt.current()).providers["steady"].flap_checks is None
    await settle(monitor, clock, ("quick", "steady"))
    seen = []
    for _ in range(3):
        await evaluate(monitor, clock, {"quick": BAD, "steady": BAD})
        seen.append(await statuses())
    assert [s["quick"] for s in seen] == ["unhealthy"] * 3
    assert [s["steady"] for s in seen] == ["healthy", "healthy", "unhealthy"]
    assert (await status_changes("quick"))[-1] == ("healthy", "unhealthy")
    assert (await status_changes("steady"))[-1] == ("healthy", "unhealthy")
    # and back: one good evaluation is enough for the first, the second needs three again
    await evaluate(monitor, clock, {"quick": GOOD, "steady": GOOD})
    assert await statuses() == {"quick": "healthy", "steady": "unhealthy"}


async def test_a_provider_with_more_flap_checks_than_the_global_holds_a_change_the_others_take(
    monitor_of, clock, settings
):
    settings.HEALTH_FLAP_CHECKS = 1
    monitor = await monitor_of(calm={"flap_checks": 4}, jumpy={})
    await settle(monitor, clock, ("calm", "jumpy"))
    seen = []
    for _ in range(4):
        await evaluate(monitor, clock, {"calm": BAD, "jumpy": BAD})
        seen.append(await statuses())
    assert [s["jumpy"] for s in seen] == ["unhealthy"] * 4
    assert [s["calm"] for s in seen] == ["healthy"] * 3 + ["unhealthy"]


async def test_flap_seconds_of_a_provider_hold_its_change_and_its_checks_stay_global(monitor_of, clock, settings):
    settings.HEALTH_FLAP_CHECKS = 2
    settings.HEALTH_FLAP_SECONDS = 0.0
    monitor = await monitor_of(held={"flap_seconds": 30}, plain={})
    await settle(monitor, clock, ("held", "plain"))
    seen = []
    for _ in range(10):  # 5 s apart: first seen at 0 s, held 30 s at the seventh
        await evaluate(monitor, clock, {"held": BAD, "plain": BAD}, seconds=5)
        seen.append(await statuses())
    assert [s["plain"] for s in seen] == ["healthy"] + ["unhealthy"] * 9  # the global 2 checks, no hold
    assert [s["held"] for s in seen] == ["healthy"] * 6 + ["unhealthy"] * 4


async def test_a_provider_whose_override_is_removed_goes_back_to_the_global_setting(
    monitor_of, configure, fake, vrt, clock, settings
):
    settings.HEALTH_FLAP_CHECKS = 3
    monitor = await monitor_of(quick={"flap_checks": 1})
    await configure({"providers": [entry(fake, "quick")]})  # as PUT /api/config: left out is null
    await vrt.refresh(force=True)
    assert (await vrt.current()).providers["quick"].flap_checks is None
    await settle(monitor, clock, ("quick",))
    seen = []
    for _ in range(3):
        await evaluate(monitor, clock, {"quick": BAD})
        seen.append((await statuses())["quick"])
    assert seen == ["healthy", "healthy", "unhealthy"]


def test_a_providers_own_values_take_the_place_of_the_global_ones_where_set():
    flap = scores.Damping(3, 10.0)
    assert flap.over(None, None) is flap  # nothing set: nothing built
    assert flap.over(1, None) == scores.Damping(1, 10.0)
    assert flap.over(None, 0.0) == scores.Damping(3, 0.0)
    assert flap.over(5, 60) == scores.Damping(5, 60.0)

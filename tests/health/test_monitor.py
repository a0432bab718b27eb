from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async

from health.models import HealthEvent, ProbeResult, ProviderHealth
from tests.fakes.openai import API_KEY, FakeOpenAI

from .conftest import full_tick

pytestmark = pytest.mark.django_db(transaction=True)


def provider(name, url, **extra):
    entry = {
        "name": name,
        "kind": "openai",
        "base_url": url + "/v1",
        "api_key": API_KEY,
        "models": ["gpt-4o-mini"],
        "health_check": {"interval_s": 5, "timeout_s": 1},
        "breaker": {"consecutive_failures": 2, "break_s": 30},
    }
    entry.update(extra)
    return entry


@pytest.fixture
def fake():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def fake2():
    with FakeOpenAI() as server:
        yield server


@sync_to_async
def health(name):
    return ProviderHealth.objects.get(provider__name=name)


@sync_to_async
def events(name, kind=None):
    rows = HealthEvent.objects.filter(provider_name=name).order_by("at", "id")
    if kind:
        rows = rows.filter(kind=kind)
    return [(e.kind, e.old, e.new, e.reason) for e in rows]


async def test_a_healthy_provider_is_probed_scored_and_stored(configure, make_monitor, fake):
    await configure({"providers": [provider("p1", fake.url)]})
    monitor = make_monitor()
    await full_tick(monitor)
    row = await health("p1")
    assert row.status == "healthy"
    assert row.last_check_ok is True and row.last_check_at is not None
    assert row.score == 100.0 and row.score_parts["probe"] == 40.0
    assert row.breaker == "closed"
    assert len(fake.requests_to("/v1/models")) == 1
    assert await sync_to_async(ProbeResult.objects.filter(provider__name="p1", ok=True).count)() == 1


async def test_a_provider_going_down_opens_its_breaker_and_logs_why(configure, make_monitor, fake, clock):
    await configure({"providers": [provider("p1", fake.url)]})
    monitor = make_monitor()
    await full_tick(monitor)
    fake.fault(status=503)
    for _ in range(3):
        clock.advance(6)
        await full_tick(monitor)
    row = await health("p1")
    assert row.breaker == "open"
    assert row.status == "unhealthy"
    assert row.last_check_ok is False and "http_503" in row.last_error
    assert row.score == 0.0
    breaker_events = await events("p1", "breaker")
    assert breaker_events == [("breaker", "closed", "open", "consecutive_failures 2")] or (
        len(breaker_events) == 1
        and breaker_events[0][1:3] == ("closed", "open")
        and "consecutive" in breaker_events[0][3]
    )
    status_events = await events("p1", "status")
    assert [e[1:3] for e in status_events] == [("unknown", "healthy"), ("healthy", "unhealthy")]
    assert "success rate" in status_events[-1][3]


async def test_a_hung_provider_times_out_without_delaying_the_others(configure, make_monitor, fake, fake2):
    await configure({"providers": [provider("hung", fake.url), provider("fine", fake2.url)]})
    fake.fault(hang=True)
    monitor = make_monitor()
    more = await monitor.tick()  # it started both probes and returned with them in flight
    hung_probe, fine_probe = monitor.inflight["hung"], monitor.inflight["fine"]
    assert more is fine_probe.done()  # more work right now only if the fine one already finished
    await fine_probe
    assert not hung_probe.done()  # the fine probe finished while the hung one still waited
    await monitor.tick()
    assert (await health("fine")).last_check_ok is True
    await monitor.wait_for_probes()
    await monitor.tick()
    hung = await health("hung")
    assert hung.last_check_ok is False
    assert "no answer within 1 s" in hung.last_error or "timeout" in hung.last_error


async def test_two_monitors_never_probe_the_same_provider_in_one_interval(configure, make_monitor, fake, clock):
    await configure({"providers": [provider("p1", fake.url)]})  # interval 5 s, jittered ±10 %
    first, second = make_monitor("m1"), make_monitor("m2")
    for _ in range(21):  # 20 s, both ticking every second
        await full_tick(first)
        await full_tick(second)
        clock.advance(1)
    assert first.leading and not second.leading
    # One monitor alone probes at t=0 and about every 5 s: 4 or 5 probes in 20 s; two
    # monitors probing independently would send twice that.
    assert 4 <= len(fake.requests_to("/v1/models")) <= 5


async def test_a_new_leader_does_not_probe_again_within_the_interval(configure, make_monitor, fake, clock):
    await configure({"providers": [provider("p1", fake.url, health_check={"interval_s": 60, "timeout_s": 1})]})
    first, second = make_monitor("m1"), make_monitor("m2")
    await full_tick(first)
    clock.advance(12)  # the lease (10 s) expired; the probe was 12 s ago, the interval is 60 s
    await full_tick(second)
    assert second.leading
    assert len(fake.requests_to("/v1/models")) == 1
    clock.advance(60)
    await full_tick(second)
    assert len(fake.requests_to("/v1/models")) == 2


async def test_maintenance_shows_as_the_status_and_routes_around_the_provider(configure, make_monitor, fake, rt):
    from datetime import timedelta

    from django.utils import timezone

    from providers.models import MaintenanceWindow, Provider

    await configure({"providers": [provider("p1", fake.url)]})
    monitor = make_monitor()
    await full_tick(monitor)

    @sync_to_async
    def open_window():
        MaintenanceWindow.objects.create(
            provider=Provider.objects.get(name="p1"), ends_at=timezone.now() + timedelta(hours=1)
        )

    await open_window()
    await rt.refresh()
    await full_tick(monitor)
    assert (await health("p1")).status == "maintenance"
    assert (await rt.current()).providers["p1"].maintenance is True


async def test_the_monitor_command_runs_once(configure, fake, rt):
    from io import StringIO

    from django.core.management import call_command

    await configure({"providers": [provider("p1", fake.url)]})
    await sync_to_async(call_command)("monitor", "--once", stdout=StringIO(), stderr=StringIO())
    row = await health("p1")
    assert row.last_check_ok is True and row.status == "healthy"


async def test_probes_close_a_half_open_breaker_without_any_live_traffic(configure, make_monitor, fake, clock):
    await configure(
        {
            "providers": [
                provider(
                    "p1",
                    fake.url,
                    breaker={"consecutive_failures": 2, "break_s": 0.3, "max_break_s": 0.3},
                    health_check={"interval_s": 1, "timeout_s": 1},
                )
            ]
        }
    )
    monitor = make_monitor()
    fake.fault(status=503)
    for _ in range(2):
        await full_tick(monitor)
        clock.advance(1.2)
    assert (await health("p1")).breaker == "open"
    fake.clear_faults()
    await asyncio.sleep(0.5)  # the break (0.3 s, +20 % jitter at most) elapses
    for _ in range(3):  # half-open: two healthy probes decide
        await full_tick(monitor)
        clock.advance(1.2)
    assert (await health("p1")).breaker == "closed"
    breaker_events = [e[1:3] for e in await events("p1", "breaker")]
    assert breaker_events[-2:] == [("open", "half_open"), ("half_open", "closed")]


async def test_every_probe_shows_within_one_tick_even_when_the_status_does_not_change(
    configure, make_monitor, fake, fake2, clock
):
    await configure({"providers": [provider("p1", fake.url), provider("p2", fake2.url)]})
    monitor = make_monitor()
    await full_tick(monitor)
    first = {name: (await health(name)).last_check_at for name in ("p1", "p2")}
    clock.advance(6)  # past the 5 s interval (jittered by 10 % at most)
    await full_tick(monitor)
    for name in ("p1", "p2"):  # both rows written in the tick that took the results in
        row = await health(name)
        assert row.status == "healthy" and row.last_check_ok is True
        assert row.last_check_at > first[name]
        assert row.last_check_at.timestamp() == pytest.approx(clock(), abs=0.01)  # this round's probe


async def test_a_breaker_forced_open_shows_the_provider_unavailable_at_once(configure, make_monitor, fake, rt):
    from health.api import health_entries

    await configure({"providers": [provider("p1", fake.url)]})
    monitor = make_monitor()
    await full_tick(monitor)
    assert (await health("p1")).status == "healthy"
    await rt.engine.force_open("p1", 600)
    [entry] = await health_entries(["p1"])  # the API and the cards, before the monitor's next tick
    assert entry["status"] == "unhealthy" and entry["breaker"] == "forced_open"
    assert "forced open" in entry["reason"] and "unavailable" in entry["reason"]
    await monitor.tick()  # one evaluation: a fact, not debounced
    row = await health("p1")
    assert row.status == "unhealthy" and row.breaker == "forced_open"
    assert row.reason == "breaker forced open by an operator: unavailable"
    assert [e[1:3] for e in await events("p1", "status")][-1] == ("healthy", "unhealthy")
    await rt.engine.reset("p1")
    await monitor.tick()
    assert (await health("p1")).status == "healthy"  # its end shows at once too


async def test_options_stored_before_they_were_validated_fail_the_probe_in_words_not_a_traceback(
    configure, make_monitor, caplog
):
    from providers.models import Provider

    await configure(
        {
            "providers": [
                {"name": "sim", "kind": "simulated", "models": ["m"], "health_check": {"interval_s": 5, "timeout_s": 1}}
            ]
        }
    )
    # what an older version let through (or an edit in the database): the adapter refuses it
    await sync_to_async(Provider.objects.filter(name="sim").update)(options={"error_rate": 2})
    monitor = make_monitor()
    await monitor.rt.refresh(force=True)
    await full_tick(monitor)
    row = await health("sim")
    assert row.last_check_ok is False
    assert "options are invalid" in row.last_error and "error_rate" in row.last_error
    assert not [r for r in caplog.records if r.exc_info]

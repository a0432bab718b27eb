"""Alerts driven by the monitor, one evaluation at a time, against a fake provider and a
fake webhook receiver on loopback.

The engine runs on the suite's fake clock (`clock`), which is also the monitor's clock, so breaker breaks and the
window move with `clock.advance` and nothing really waits.
"""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from health.models import AlertChannel, AlertState, HealthEvent, ProviderHealth
from health.monitor import Monitor
from providers.engine import CircuitOpen, Engine, Outcome
from providers.models import MaintenanceWindow, Provider
from providers.runtime import Runtime, install_runtime
from tests.fakes.openai import API_KEY, FakeOpenAI
from tests.fakes.webhook import PATIENCE_S, FakeWebhook

pytestmark = pytest.mark.django_db(transaction=True)


def provider(name, url, **extra):
    entry = {
        "name": name,
        "kind": "openai",
        "base_url": url + "/v1",
        "api_key": API_KEY,
        "models": ["gpt-4o-mini"],
        "timeout_s": 5,
        "health_check": {"interval_s": 5, "timeout_s": 1},
        "breaker": {"consecutive_failures": 2, "break_s": 10, "max_break_s": 20, "window_s": 20},
    }
    entry.update(extra)
    return entry


@pytest.fixture(autouse=True)
def _fast_alerts(settings):
    settings.ALERT_RETRY_BASE_S = 0.01
    settings.ALERT_TIMEOUT_S = PATIENCE_S
    settings.CONSOLE_URL = "https://console.example.com"


@pytest.fixture
async def vrt(clock):
    runtime = install_runtime(Runtime(engine=Engine(clock=clock, rng=random.Random(3))))
    # Breaker events are not what these tests look at, and their writer would race ours on the
    # test database (shared-cache SQLite answers "table is locked" instead of waiting).
    runtime.engine.emitter.unsubscribe(runtime.event_sink)
    yield runtime
    await runtime.close()


@pytest.fixture
def make_monitor(vrt, clock):
    def make(holder="m1"):
        return Monitor(vrt, now=clock, rng=random.Random(7), holder=holder)

    return make


@pytest.fixture
def fake():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def receiver():
    with FakeWebhook() as server:
        yield server


@sync_to_async
def make_channel(name, target, *, kind="webhook", providers=(), **fields):
    channel = AlertChannel(name=name, kind=kind, **fields)
    channel.set_target(target)
    channel.save()
    if providers:
        channel.providers.set(Provider.objects.filter(name__in=providers))
    return channel


@sync_to_async
def health(name):
    return ProviderHealth.objects.get(provider__name=name)


@sync_to_async
def alert_events(actor=None):
    rows = HealthEvent.objects.filter(kind=HealthEvent.Kind.ALERT).order_by("id")
    if actor:
        rows = rows.filter(actor=actor)
    return [(e.provider_name, e.old, e.new) for e in rows]


@sync_to_async
def state(channel, name):
    return AlertState.objects.get(channel__name=channel, provider__name=name)


async def evaluate(monitor, clock, seconds=1.0):
    """One second of the monitor's life: a tick (one evaluation), its probes, its deliveries."""
    clock.advance(seconds)
    await monitor.tick()
    await monitor.wait_for_probes()
    await monitor.alerter.wait_for_deliveries()


async def live_traffic(rt, name, calls=2):
    """Successful live calls, as the gateway makes them. In half-open they are the trial calls
    that close the breaker: the monitor's own probes count there as statistics only."""
    breaker = rt.engine.breaker(name)
    for _ in range(calls):
        try:
            permit = await breaker.acquire()
        except CircuitOpen:
            return
        await breaker.record(permit, Outcome.SUCCESS, 0.05)


async def is_bad(name):
    row = await health(name)
    return row.status == "unhealthy" or row.breaker == "open"


async def settle_healthy(monitor, clock):
    for _ in range(4):
        await evaluate(monitor, clock)
    assert (await health("p1")).status == "healthy"


async def test_a_provider_going_down_alerts_once_after_the_threshold_reminds_and_recovers_once(
    configure, make_monitor, clock, fake, receiver, vrt
):
    await configure({"providers": [provider("p1", fake.url)]})
    await make_channel("ops", receiver.url + "/hook", failure_threshold=3, success_threshold=2, reminder_interval_s=60)
    monitor = make_monitor()
    await settle_healthy(monitor, clock)

    fake.fault(status=503)
    bad_in_a_row = 0
    for _ in range(30):
        await evaluate(monitor, clock)
        bad_in_a_row = bad_in_a_row + 1 if await is_bad("p1") else 0
        if bad_in_a_row < 3:
            assert receiver.events() == [], f"alerted after {bad_in_a_row} bad evaluations"
        else:
            break
    assert bad_in_a_row == 3
    assert receiver.events() == ["alert"]
    alert = receiver.payloads()[0]
    assert alert["provider"] == "p1" and alert["status"] in ("unhealthy", "degraded", "healthy")
    assert alert["status"] == "unhealthy" or alert["breaker"] == "open"
    assert alert["console_url"] == "https://console.example.com/providers/p1"
    assert alert["reason"] and alert["at"].endswith("Z")

    for _ in range(11):  # 55 s more, still down: no second alert, no reminder yet
        await evaluate(monitor, clock, 5)
    assert receiver.events() == ["alert"]
    await evaluate(monitor, clock, 5)  # 60 s after the alert
    assert receiver.events() == ["alert", "reminder"]

    fake.clear_faults()
    for _ in range(40):
        await live_traffic(vrt, "p1")
        await evaluate(monitor, clock, 5)
        if "recovery" in receiver.events():
            break
    for _ in range(5):
        await evaluate(monitor, clock, 5)
    assert receiver.events() == ["alert", "reminder", "recovery"]
    recovery = receiver.payloads()[-1]
    assert recovery["status"] in ("healthy", "degraded") and recovery["breaker"] != "open"
    assert recovery["since"] == alert["at"]
    assert await alert_events("channel:ops") == [
        ("p1", "alert", "sent"),
        ("p1", "reminder", "sent"),
        ("p1", "recovery", "sent"),
    ]
    row = await state("ops", "p1")
    assert not row.firing and row.bad_count == 0 and row.reminders == 0


async def test_the_next_incident_alerts_again(configure, make_monitor, clock, fake, receiver, vrt):
    await configure({"providers": [provider("p1", fake.url)]})
    await make_channel("ops", receiver.url + "/hook", failure_threshold=1, success_threshold=1)
    monitor = make_monitor()
    await settle_healthy(monitor, clock)
    for incident in (1, 2):
        fake.fault(status=503)
        for _ in range(30):
            await evaluate(monitor, clock, 5)
            if receiver.events().count("alert") == incident:
                break
        fake.clear_faults()
        for _ in range(40):
            await live_traffic(vrt, "p1")
            await evaluate(monitor, clock, 5)
            if receiver.events().count("recovery") == incident:
                break
    assert receiver.events() == ["alert", "recovery", "alert", "recovery"]


async def test_maintenance_silences_alerts_while_the_provider_fails(
    configure, make_monitor, clock, fake, receiver, vrt
):
    await configure({"providers": [provider("p1", fake.url)]})
    await make_channel("ops", receiver.url + "/hook", failure_threshold=2, reminder_interval_s=60)
    monitor = make_monitor()
    await settle_healthy(monitor, clock)

    @sync_to_async
    def open_window():
        return MaintenanceWindow.objects.create(
            provider=Provider.objects.get(name="p1"), ends_at=timezone.now() + timedelta(hours=1)
        )

    window = await open_window()
    await vrt.refresh()
    fake.fault(status=503)
    for _ in range(30):
        await evaluate(monitor, clock, 2)
    assert (await health("p1")).status == "maintenance"
    assert len(fake.requests_to("/v1/models")) > 10  # probed all along, and failing
    assert receiver.requests == []
    assert await alert_events() == []

    @sync_to_async
    def close_window():
        window.ends_at = timezone.now() - timedelta(seconds=1)
        window.save()

    await close_window()
    await vrt.refresh(force=True)
    assert (await vrt.current()).providers["p1"].maintenance is False
    await evaluate(monitor, clock)
    assert receiver.events() == []  # the counts start afresh: one bad evaluation is not two
    await evaluate(monitor, clock)
    assert receiver.events() == ["alert"]


async def test_a_breaker_forced_open_by_an_operator_does_not_alert(configure, make_monitor, clock, fake, receiver, vrt):
    await configure({"providers": [provider("p1", fake.url)]})
    await make_channel("ops", receiver.url + "/hook", failure_threshold=1)
    monitor = make_monitor()
    await settle_healthy(monitor, clock)
    await vrt.engine.force_open("p1")
    for _ in range(10):
        await evaluate(monitor, clock, 2)
    assert (await health("p1")).breaker == "forced_open"
    assert receiver.requests == []
    assert await alert_events() == []


async def test_a_channel_limited_to_other_providers_does_not_alert(configure, make_monitor, clock, fake, receiver):
    with FakeOpenAI() as other:
        await configure({"providers": [provider("p1", fake.url), provider("p2", other.url)]})
        await make_channel("p2-only", receiver.url + "/p2", failure_threshold=1, providers=["p2"])
        await make_channel("everyone", receiver.url + "/all", failure_threshold=1)
        monitor = make_monitor()
        for _ in range(4):
            await evaluate(monitor, clock)
        fake.fault(status=503)
        for _ in range(15):
            await evaluate(monitor, clock, 2)
        assert await is_bad("p1") and not await is_bad("p2")
    assert receiver.payloads("/p2") == []
    assert [p["provider"] for p in receiver.payloads("/all")] == ["p1"]


async def test_the_alert_state_survives_a_monitor_restart(configure, make_monitor, clock, fake, receiver, vrt):
    await configure({"providers": [provider("p1", fake.url)]})
    await make_channel("ops", receiver.url + "/hook", failure_threshold=2, success_threshold=2)
    first = make_monitor("m1")
    await settle_healthy(first, clock)
    fake.fault(status=503)
    for _ in range(20):
        await evaluate(first, clock)
        if receiver.events():
            break
    assert receiver.events() == ["alert"]
    assert (await state("ops", "p1")).firing

    second = make_monitor("m1")  # the same host restarted: a fresh process, nothing in memory
    for _ in range(10):
        await evaluate(second, clock)
    assert receiver.events() == ["alert"]  # it knows the alert is out
    fake.clear_faults()
    for _ in range(40):
        await live_traffic(vrt, "p1")
        await evaluate(second, clock, 5)
    assert receiver.events() == ["alert", "recovery"]  # and that a recovery is owed


async def test_a_hung_receiver_never_delays_the_tick(configure, make_monitor, clock, fake, receiver, settings):
    settings.ALERT_TIMEOUT_S = 0.3
    settings.ALERT_RETRIES = 0
    await configure({"providers": [provider("p1", fake.url)]})
    await make_channel("ops", receiver.url + "/hook", failure_threshold=1)
    monitor = make_monitor()
    await settle_healthy(monitor, clock)
    receiver.fault(hang=True)
    fake.fault(status=503)
    for _ in range(20):
        clock.advance(1)
        await monitor.tick()
        await monitor.wait_for_probes()
        if monitor.alerter.tasks:
            break
    # The tick that decided to alert has returned while the delivery is still waiting.
    assert len(monitor.alerter.tasks) == 1
    assert len(receiver.requests) <= 1 and await alert_events() == []
    await monitor.alerter.wait_for_deliveries()
    assert await alert_events() == [("p1", "alert", "failed")]
    channel = await sync_to_async(AlertChannel.objects.get)(name="ops")
    assert channel.enabled and channel.delivery_failures == 1
    assert "no answer within 0.3 s" in channel.last_delivery_error


async def reject(rt, name, credential, status=401):
    """What the engine does on a provider's 401/403 for one of our credentials: the credential
    set aside until reset (kind "rejected"), and the CooldownStarted event, written by the
    health hook as a worker's sink would."""
    from health import hooks
    from providers.engine.events import CooldownStarted
    from providers.engine.store import Cooldown

    await rt.engine.store.set_cooldown(name, Cooldown(credential, "rejected", None, f"http_{status}"))
    event = CooldownStarted(rt.engine.clock.time(), name, credential, "rejected", None, f"http_{status}")
    sink = hooks.EventSink()
    sink(event)
    await sink.written()


async def test_a_rejected_credential_alerts_and_the_provider_says_why(
    configure, make_monitor, clock, fake, receiver, vrt
):
    from health.api import health_entries

    await configure({"providers": [provider("p1", fake.url)]})
    await make_channel("ops", receiver.url + "/hook", failure_threshold=1)
    monitor = make_monitor()
    await settle_healthy(monitor, clock)
    [(credential, _)] = (await vrt.current()).providers["p1"].credentials
    await reject(vrt, "p1", credential)
    await evaluate(monitor, clock)
    assert receiver.events() == ["alert"]
    alert = receiver.payloads()[0]
    assert f"credential {credential} rejected by the provider (HTTP 401)" in alert["reason"]
    row = await health("p1")
    assert row.status == "unhealthy"  # its only credential is refused: it takes no traffic
    assert f"credential {credential} rejected by the provider (HTTP 401)" in row.reason
    [entry] = await health_entries(["p1"])
    assert entry["status"] == "unhealthy" and "rejected by the provider (HTTP 401)" in entry["reason"]
    assert [(c["kind"], c["credential"]) for c in entry["cooldowns"]] == [("rejected", credential)]
    assert "rejected by the provider (HTTP 401), until reset" in entry["cooldowns"][0]["reason"]


async def test_a_rejected_credential_alerts_even_while_another_one_serves(
    configure, make_monitor, clock, fake, receiver, vrt
):
    entry = provider("p1", fake.url, api_keys=[API_KEY, "sk-revoked-key-0000000000"])
    del entry["api_key"]
    await configure({"providers": [entry]})
    await make_channel("ops", receiver.url + "/hook", failure_threshold=1)
    monitor = make_monitor()
    await settle_healthy(monitor, clock)
    credentials = [c for c, _ in (await vrt.current()).providers["p1"].credentials]
    assert len(credentials) == 2
    await reject(vrt, "p1", credentials[1], status=403)
    await evaluate(monitor, clock)
    assert receiver.events() == ["alert"]
    alert = receiver.payloads()[0]
    assert alert["status"] == "degraded"  # what it is now, not what it was before the refusal
    assert f"credential {credentials[1]} rejected by the provider (HTTP 403)" in alert["reason"]
    row = await health("p1")
    assert row.status == "degraded" and "(HTTP 403)" in row.reason

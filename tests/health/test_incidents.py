"""Incidents driven through the monitor's evaluations (health/incidents.py): one per outage,
its timeline, one alert when it opens and one resolution, acknowledge and mute through the
API, and the incident.* events in the events API.

Two ways to make a provider fail: the fake upstream answering 503 to the monitor's probes (a
real outage, the breaker opening), and for exact rates the window refilled before each
evaluation (`evaluate_with`), on a breaker that never trips."""

from __future__ import annotations

import random

import pytest
from asgiref.sync import sync_to_async

from health.models import AlertChannel, HealthEvent, Incident, ProviderHealth
from health.monitor import Monitor
from providers.engine import CircuitOpen, Engine, Outcome
from providers.models import Provider
from providers.runtime import Runtime, install_runtime
from tests.conftest import auth
from tests.fakes.openai import API_KEY, FakeOpenAI
from tests.fakes.webhook import PATIENCE_S, FakeWebhook

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.ALERT_RETRY_BASE_S = 0.01
    settings.ALERT_TIMEOUT_S = PATIENCE_S
    settings.CONSOLE_URL = "https://console.example.com"


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
def receiver():
    with FakeWebhook() as server:
        yield server


@pytest.fixture
def monitor(vrt, clock):
    return Monitor(vrt, now=clock, rng=random.Random(7), holder="m1")


def provider(url, **breaker):
    return {
        "name": "p1",
        "kind": "openai",
        "base_url": url + "/v1",
        "api_key": API_KEY,
        "models": ["gpt-4o-mini"],
        "timeout_s": 5,
        "health_check": {"interval_s": 5, "timeout_s": 1},
        "breaker": {"consecutive_failures": 2, "break_s": 10, "max_break_s": 20, "window_s": 20, **breaker},
    }


@sync_to_async
def make_channel(target, **fields):
    channel = AlertChannel(name="ops", kind="webhook", **fields)
    channel.set_target(target)
    channel.save()
    return channel


@sync_to_async
def incidents():
    return list(Incident.objects.order_by("id"))


@sync_to_async
def health():
    return ProviderHealth.objects.get(provider__name="p1")


async def evaluate(monitor, clock, seconds=1.0):
    clock.advance(seconds)
    await monitor.tick()
    await monitor.wait_for_probes()
    await monitor.alerter.wait_for_deliveries()


async def live_traffic(rt, calls=2):
    breaker = rt.engine.breaker("p1")
    for _ in range(calls):
        try:
            permit = await breaker.acquire()
        except CircuitOpen:
            return
        await breaker.record(permit, Outcome.SUCCESS, 0.05)


GOOD, DEGRADED, BAD = (10, 0), (8, 2), (6, 4)  # (successes, failures)


async def evaluate_with(monitor, clock, calls):
    """One evaluation that sees exactly `calls` in the window."""
    rt = monitor.rt
    policy = (await rt.current()).providers["p1"].breaker
    await rt.engine.reset_statistics("p1")
    for outcome, count in zip((Outcome.SUCCESS, Outcome.FAILURE), calls, strict=True):
        for _ in range(count):
            await rt.engine.record("p1", outcome, 0.05, policy)
    await evaluate(monitor, clock)


async def steady(configure, fake, monitor, clock):
    """p1 on a breaker that never trips, probed an hour apart, healthy."""
    entry = provider(fake.url, consecutive_failures=0, min_calls=1000, window_s=60)
    entry["health_check"] = {"interval_s": 3600, "timeout_s": 1}
    await configure({"providers": [entry]})
    for _ in range(3):
        await evaluate_with(monitor, clock, GOOD)
    assert (await health()).status == "healthy"


async def test_an_outage_opens_one_incident_with_one_alert_and_recovery_resolves_it_with_one_message(
    configure, monitor, clock, fake, receiver, vrt, gateway, key
):
    await configure({"providers": [provider(fake.url)]})
    await make_channel(receiver.url + "/hook", failure_threshold=2, success_threshold=2)
    for _ in range(4):
        await evaluate(monitor, clock)
    assert (await health()).status == "healthy" and await incidents() == []

    fake.fault(status=503)
    for _ in range(30):
        await evaluate(monitor, clock)
        if receiver.events():
            break
    for _ in range(10):  # still down: nothing more
        await evaluate(monitor, clock, 2)
    [incident] = await incidents()
    assert incident.state == "open" and incident.provider_name == "p1" and incident.reason
    assert receiver.events() == ["alert"]
    assert receiver.payloads()[0]["incident"] == incident.pk

    fake.clear_faults()
    for _ in range(40):
        await live_traffic(vrt)
        await evaluate(monitor, clock, 5)
        if "recovery" in receiver.events():
            break
    for _ in range(5):
        await evaluate(monitor, clock, 5)
    [incident] = await incidents()
    assert incident.state == "resolved" and incident.resolved_at is not None
    assert incident.resolution.startswith("recovered")
    assert receiver.events() == ["alert", "recovery"]
    assert receiver.payloads()[1]["incident"] == incident.pk

    answer = await gateway.get("/api/incidents?state=resolved&provider=p1", headers=auth(key))
    assert answer.status_code == 200
    [item] = answer.json()["incidents"]
    assert item["id"] == incident.pk and item["state"] == "resolved" and item["resolved_at"].endswith("Z")
    names = [e["event"] for e in item["events"]]
    assert names[0] in ("provider.status", "breaker.opened", "incident.opened")
    assert {"incident.opened", "provider.status", "alert.sent", "incident.resolved"} <= set(names)
    assert names.index("incident.opened") < names.index("incident.resolved")
    assert (await gateway.get("/api/incidents?state=open", headers=auth(key))).json() == {"incidents": []}

    events = (await gateway.get("/api/events?kind=incident.opened,incident.resolved", headers=auth(key))).json()
    assert [(e["event"], e["provider"], e["detail"]) for e in reversed(events["events"])] == [
        ("incident.opened", "p1", {"incident": incident.pk}),
        ("incident.resolved", "p1", {"incident": incident.pk}),
    ]


async def test_a_flapping_provider_opens_one_incident_and_alerts_once(
    configure, monitor, clock, fake, receiver, settings
):
    settings.HEALTH_FLAP_CHECKS = 1  # no damping: the status itself flips at every evaluation
    await steady(configure, fake, monitor, clock)
    await make_channel(receiver.url + "/hook", failure_threshold=1, success_threshold=1)
    for i in range(20):
        await evaluate_with(monitor, clock, BAD if i % 2 == 0 else DEGRADED)
    flips = await sync_to_async(HealthEvent.objects.filter(kind=HealthEvent.Kind.STATUS, new="unhealthy").count)()
    assert flips == 10  # it did go unhealthy ten times
    [incident] = await incidents()
    assert incident.state == "open"
    assert receiver.events() == ["alert"]

    await evaluate_with(monitor, clock, GOOD)
    assert [i.state for i in await incidents()] == ["resolved"]
    assert receiver.events() == ["alert", "recovery"]


async def test_an_incident_is_acknowledged_and_muted_through_the_api_by_admin_keys_only(
    configure, monitor, clock, fake, receiver, gateway, key, make_key
):
    await steady(configure, fake, monitor, clock)
    await make_channel(receiver.url + "/hook", failure_threshold=1)
    for _ in range(3):
        await evaluate_with(monitor, clock, BAD)
    [incident] = await incidents()
    assert receiver.events() == ["alert"]
    reader = await make_key(["read"])
    base = f"/api/incidents/{incident.pk}"

    assert (await gateway.post(f"{base}/acknowledge", headers=auth(reader))).status_code == 403
    assert (await gateway.post(f"{base}/mute", json={"minutes": 5}, headers=auth(reader))).status_code == 403
    assert (await gateway.post("/api/incidents/999999/acknowledge", headers=auth(key))).status_code == 404

    answer = await gateway.post(f"{base}/acknowledge", headers=auth(key))
    assert answer.status_code == 200
    assert answer.json()["acknowledged_by"].startswith("api:") and answer.json()["state"] == "open"
    again = await gateway.post(f"{base}/acknowledge", headers=auth(key))
    assert again.status_code == 409 and "already acknowledged" in again.text
    assert receiver.events() == ["alert", "acknowledged"]
    assert receiver.payloads()[-1]["incident"] == incident.pk

    for body in ({"minutes": -1}, {"minutes": "ten"}, {"minutes": 10081}, {}, {"minutes": True}):
        bad = await gateway.post(f"{base}/mute", json=body, headers=auth(key))
        assert bad.status_code == 400, body
        assert "minutes" in bad.text
    muted = await gateway.post(f"{base}/mute", json={"minutes": 30}, headers=auth(key))
    assert muted.status_code == 200 and muted.json()["muted_until"].endswith("Z")

    listed = (await gateway.get("/api/incidents?state=open", headers=auth(reader))).json()["incidents"]
    assert [(i["id"], i["acknowledged_by"] != "", i["muted_until"] is not None) for i in listed] == [
        (incident.pk, True, True)
    ]
    assert "incident.acknowledged" in [e["event"] for e in listed[0]["events"]]
    bad_state = await gateway.get("/api/incidents?state=closed", headers=auth(reader))
    assert bad_state.status_code == 400
    events = (await gateway.get("/api/events?kind=incident.acknowledged", headers=auth(reader))).json()["events"]
    assert [(e["event"], e["actor"]) for e in events] == [("incident.acknowledged", answer.json()["acknowledged_by"])]


async def test_a_muted_incident_sends_nothing_until_the_mute_ends(
    configure, monitor, clock, fake, receiver, gateway, key
):
    await steady(configure, fake, monitor, clock)
    await make_channel(receiver.url + "/hook", failure_threshold=3, success_threshold=1)
    for _ in range(2):  # the incident opens with the status; the alert waits for the third
        await evaluate_with(monitor, clock, BAD)
    [incident] = await incidents()
    base = f"/api/incidents/{incident.pk}/mute"
    assert (await gateway.post(base, json={"minutes": 60}, headers=auth(key))).status_code == 200
    for _ in range(10):
        await evaluate_with(monitor, clock, BAD)
    assert receiver.events() == []

    assert (await gateway.post(base, json={"minutes": 0}, headers=auth(key))).json()["muted_until"] is None
    for _ in range(3):
        await evaluate_with(monitor, clock, BAD)
    assert receiver.events() == ["alert"]

    # Its resolution too waits for the end of a mute.
    assert (await gateway.post(base, json={"minutes": 60}, headers=auth(key))).status_code == 200
    for _ in range(3):
        await evaluate_with(monitor, clock, GOOD)
    assert [i.state for i in await incidents()] == ["resolved"]
    assert receiver.events() == ["alert"]
    assert (await gateway.post(base, json={"minutes": 0}, headers=auth(key))).status_code == 200
    await evaluate_with(monitor, clock, GOOD)
    assert receiver.events() == ["alert", "recovery"]


async def test_maintenance_resolves_an_open_incident_and_opens_none(configure, monitor, clock, fake, vrt):
    await steady(configure, fake, monitor, clock)
    for _ in range(2):
        await evaluate_with(monitor, clock, BAD)
    assert [i.state for i in await incidents()] == ["open"]
    await sync_to_async(Provider.objects.filter(name="p1").update)(enabled=False)
    await vrt.refresh(force=True)
    for _ in range(3):
        await evaluate_with(monitor, clock, BAD)
    [incident] = await incidents()
    assert incident.state == "resolved" and incident.resolution == "provider disabled"

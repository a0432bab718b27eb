"""Event feeds: a webhook channel that names event types receives those events (and no alerts)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError

from health.alerts import Alerter, Observation, plan_alerts
from health.models import AlertChannel
from tests.conftest import auth
from tests.console.conftest import SIMULATED
from tests.fakes.webhook import PATIENCE_S, FakeWebhook

from .conftest import full_tick

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fast(settings):
    settings.ALERT_RETRY_BASE_S = 0.0  # a transient failure is tried again on the next run
    settings.ALERT_TIMEOUT_S = PATIENCE_S


@pytest.fixture
async def sim(configure, rt):
    await configure(SIMULATED)
    await rt.refresh(force=True)
    return rt


@pytest.fixture
def receiver():
    with FakeWebhook() as server:
        yield server


@sync_to_async
def make_feed(url: str, events: list[str], **fields: object) -> AlertChannel:
    channel = AlertChannel(name="ops-feed", kind="webhook", events=events, **fields)
    channel.set_target(url)
    channel.full_clean()
    channel.save()
    return channel


@sync_to_async
def reload(channel: AlertChannel) -> AlertChannel:
    channel.refresh_from_db()
    return channel


async def test_a_feed_receives_the_events_it_names_in_order(sim, gateway, key, receiver, make_monitor):
    channel = await make_feed(receiver.url + "/hook", ["breaker.opened", "health.reset"])
    await gateway.post("/api/breakers/sim-a/force-open", headers=auth(key))
    await gateway.post("/api/health/sim-a/reset", headers=auth(key))
    monitor = make_monitor()
    await full_tick(monitor)
    await monitor.alerter.wait_for_deliveries()
    sent = receiver.payloads("/hook")
    assert [p["event"] for p in sent] == ["breaker.opened", "health.reset"]
    assert sent[0]["channel"] == "ops-feed" and sent[0]["provider"] == "sim-a" and sent[0]["to"] == "forced_open"
    listed = (await gateway.get("/api/events?kind=breaker.opened,health.reset", headers=auth(key))).json()["events"]
    assert [p["id"] for p in sent] == [e["id"] for e in reversed(listed)]
    channel = await reload(channel)
    newest = (await gateway.get("/api/events?limit=1", headers=auth(key))).json()["events"][0]["id"]
    # Past what it delivered, at most the newest event: on a busy machine the tick may write an
    # event after the feed's run, which the next run looks at (seen once in a full CI run).
    assert sent[-1]["id"] <= channel.events_cursor <= newest and channel.last_delivery_error == ""


async def test_a_new_feed_starts_with_what_comes_next(sim, gateway, key, receiver):
    await gateway.post("/api/health/sim-a/reset", headers=auth(key))
    await make_feed(receiver.url + "/hook", ["health.reset"])
    alerter = Alerter()
    assert await alerter.feeds.run() == 0
    await gateway.post("/api/health/sim-a/reset", headers=auth(key))
    assert await alerter.feeds.run() == 1
    assert len(receiver.payloads("/hook")) == 1


async def test_a_transient_failure_keeps_the_event_for_the_next_run(sim, gateway, key, receiver):
    channel = await make_feed(receiver.url + "/hook", ["health.reset"])
    await gateway.post("/api/health/sim-a/reset", headers=auth(key))
    receiver.fault(status=503, times=1)
    alerter = Alerter()
    assert await alerter.feeds.run() == 0
    failed = await reload(channel)
    assert "HTTP 503" in failed.last_delivery_error and failed.delivery_failures == 1
    assert await alerter.feeds.run() == 1
    delivered = await reload(channel)
    assert delivered.last_delivery_error == "" and delivered.delivery_failures == 0
    tried = receiver.payloads("/hook")  # the refused try and the delivered one: the same event
    assert [p["event"] for p in tried] == ["health.reset", "health.reset"] and tried[0]["id"] == tried[1]["id"]


async def test_a_feed_gets_no_incident_alerts(sim, receiver):
    await make_feed(receiver.url + "/hook", ["provider.status"], failure_threshold=1)
    bad = Observation("sim-a", "unhealthy", "open", True, False, "breaker open", datetime.now(UTC))
    assert await sync_to_async(plan_alerts)([bad]) == []


@pytest.mark.parametrize(
    ("kind", "events", "message"),
    [
        ("webhook", ["breaker.exploded"], "unknown event types: breaker.exploded"),
        ("slack", ["breaker.opened"], "only a webhook channel sends events"),
        ("webhook", "breaker.opened", "must be a list of event types"),
    ],
)
def test_a_feed_names_known_events_on_a_webhook(db, kind, events, message):
    channel = AlertChannel(name="x", kind=kind, events=events)
    channel.set_target("http://127.0.0.1:9/hook")
    with pytest.raises(ValidationError) as caught:
        channel.full_clean()
    assert any(message in m for m in caught.value.message_dict["events"])

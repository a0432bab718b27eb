"""Delivering one alert: retries, what a failure does to the channel, auto-disable, records.

Each test calls one step (`Alerter.send`) against a fake receiver on loopback and then
asserts the channel row, the event log and the requests the receiver saw.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from health.alerts import Alerter, Delivery, Observation, plan_alerts
from health.models import AlertChannel, HealthEvent
from health.transports import Notice
from providers.models import Provider
from tests.fakes.webhook import PATIENCE_S, FakeWebhook

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "T0-B0-very-secret-token"


@pytest.fixture(autouse=True)
def _fast(settings):
    settings.ALERT_RETRY_BASE_S = 0.01
    settings.ALERT_TIMEOUT_S = PATIENCE_S
    settings.ALERT_RETRIES = 2
    settings.ALERT_DISABLE_AFTER = 3


@pytest.fixture
def receiver():
    with FakeWebhook() as server:
        yield server


@sync_to_async
def make_channel(target=None, *, env=None, kind="webhook", name="ops"):
    Provider.objects.get_or_create(name="p1", defaults={"kind": "openai", "base_url": "http://127.0.0.1:9/v1"})
    channel = AlertChannel(name=name, kind=kind, failure_threshold=1)
    if env:
        channel.set_target_env(env)
    else:
        channel.set_target(target)
    channel.save()
    return channel


@sync_to_async
def reload(channel):
    channel.refresh_from_db()
    return channel


@sync_to_async
def alert_events():
    return [(e.old, e.new, e.actor, e.reason) for e in HealthEvent.objects.filter(kind="alert").order_by("id")]


def delivery(channel, event="alert"):
    notice = Notice(
        event=event,
        channel=channel.name,
        provider="p1",
        status="unhealthy",
        breaker="open",
        reason="success rate 0% over 4 calls (< 70%)",
        at=datetime.now(UTC),
    )
    return Delivery(channel.pk, channel.name, channel.kind, channel.target(), notice)


async def test_a_channel_whose_receiver_answers_404_is_disabled_after_alert_disable_after_attempts(receiver):
    channel = await make_channel(receiver.url + "/hook")
    receiver.fault(status=404)
    alerter = Alerter()
    for _ in range(2):
        outcome = await alerter.send(delivery(channel))
        assert not outcome.ok and outcome.permanent and outcome.attempts == 1  # never retried
    channel = await reload(channel)
    assert channel.enabled and channel.delivery_failures == 2
    assert "HTTP 404" in channel.last_delivery_error and "no_service" in channel.last_delivery_error

    await alerter.send(delivery(channel))
    channel = await reload(channel)
    assert not channel.enabled
    assert "3 permanent delivery errors in a row" in channel.disabled_reason
    assert "HTTP 404" in channel.disabled_reason
    assert len(receiver.requests) == 3
    assert [e[1] for e in await alert_events()] == ["failed permanently"] * 3
    # A disabled channel is left out of the next evaluation.
    bad = Observation("p1", "unhealthy", "open", True, False, "down", datetime.now(UTC))
    assert await sync_to_async(plan_alerts)([bad]) == []


async def test_deliveries_in_flight_together_each_arrive_once(receiver):
    """One delivery finishing must not cut another still waiting for its answer: with one
    transport shared by every delivery, the first to finish closed it, the slow one saw its
    connection drop after the receiver had the alert, and sent it again."""
    fast = await make_channel(receiver.url + "/fast", name="fast")
    slow = await make_channel(receiver.url + "/slow", name="slow")
    receiver.fault(path="/slow", delay_s=0.5)
    alerter = Alerter()
    outcomes = await asyncio.gather(*(alerter.send(delivery(c)) for c in (slow, fast, fast, fast)))
    assert [(o.ok, o.attempts) for o in outcomes] == [(True, 1)] * 4
    assert len(receiver.payloads("/slow")) == 1 and len(receiver.payloads("/fast")) == 3


async def test_a_500_is_retried_and_not_counted_as_permanent(receiver):
    channel = await make_channel(receiver.url + "/hook")
    receiver.fault(status=500)
    alerter = Alerter()
    for _ in range(4):  # more than ALERT_DISABLE_AFTER
        outcome = await alerter.send(delivery(channel))
        assert not outcome.ok and not outcome.permanent and outcome.attempts == 3
    assert len(receiver.requests) == 12  # 1 + 2 retries, four times
    channel = await reload(channel)
    assert channel.enabled and not channel.disabled_reason
    assert channel.delivery_failures == 4 and "HTTP 500" in channel.last_delivery_error
    events = await alert_events()
    assert [e[1] for e in events] == ["failed"] * 4
    assert "after 3 attempts" in events[0][3]


async def test_a_500_then_a_success_delivers_and_resets_the_failures(receiver):
    channel = await make_channel(receiver.url + "/hook")
    await sync_to_async(AlertChannel.objects.filter(pk=channel.pk).update)(
        delivery_failures=2, last_delivery_error="HTTP 500"
    )
    receiver.fault(status=500, times=1)
    outcome = await Alerter().send(delivery(channel))
    assert outcome.ok and outcome.attempts == 2
    channel = await reload(channel)
    assert channel.delivery_failures == 0 and channel.last_delivery_error == ""
    assert channel.last_delivery_at is not None
    assert [e[:2] for e in await alert_events()] == [("alert", "sent")]


@pytest.mark.parametrize("status", [408, 429])
async def test_408_and_429_are_retried(receiver, status):
    channel = await make_channel(receiver.url + "/hook")
    receiver.fault(status=status, times=1, retry_after="0")
    outcome = await Alerter().send(delivery(channel))
    assert outcome.ok and outcome.attempts == 2
    assert len(receiver.requests) == 2


async def test_a_transient_failure_breaks_a_run_of_permanent_ones(receiver, settings):
    settings.ALERT_DISABLE_AFTER = 2
    settings.ALERT_RETRIES = 0
    channel = await make_channel(receiver.url + "/hook")
    alerter = Alerter()
    for status in (404, 503, 404):
        receiver.fault(status=status, times=1)
        await alerter.send(delivery(channel))
    assert (await reload(channel)).enabled
    receiver.fault(status=404, times=1)
    await alerter.send(delivery(channel))
    channel = await reload(channel)
    assert not channel.enabled and channel.delivery_failures == 4


async def test_an_address_refused_by_the_url_rules_is_permanent_and_never_contacted(monkeypatch):
    monkeypatch.setenv("OPS_HOOK", "http://169.254.169.254/latest/meta-data")
    channel = await make_channel(env="OPS_HOOK")
    outcome = await Alerter().send(delivery(channel))
    assert not outcome.ok and outcome.permanent
    assert "invalid address" in outcome.detail
    assert "invalid address" in (await reload(channel)).last_delivery_error


async def test_an_unset_target_variable_is_a_permanent_failure(monkeypatch):
    monkeypatch.delenv("NO_SUCH_HOOK", raising=False)
    channel = await make_channel(env="NO_SUCH_HOOK")
    outcome = await Alerter().send(delivery(channel))
    assert not outcome.ok and outcome.permanent and "no target" in outcome.detail


async def test_a_redirect_is_not_followed(receiver):
    channel = await make_channel(receiver.url + "/hook")
    receiver.fault(status=302, body="", headers={"Location": receiver.url + "/elsewhere"})
    outcome = await Alerter().send(delivery(channel))
    assert not outcome.ok and outcome.permanent and "redirects are not followed" in outcome.detail
    assert [r.path for r in receiver.requests] == ["/hook"]


async def test_the_webhook_token_never_reaches_the_event_log_or_the_channel_row(receiver):
    channel = await make_channel(f"{receiver.url}/services/{TOKEN}")
    receiver.fault(status=404, times=1)
    await Alerter().send(delivery(channel))
    await Alerter().send(delivery(channel))
    events = await alert_events()
    assert [e[1] for e in events] == ["failed permanently", "sent"]
    channel = await reload(channel)
    for text in [*(e[3] for e in events), channel.last_delivery_error, channel.target_hint]:
        assert TOKEN not in text


async def test_every_delivery_is_recorded_with_its_channel_and_published(receiver):
    channel = await make_channel(receiver.url + "/hook")
    layer = get_channel_layer()
    inbox = await layer.new_channel()
    await layer.group_add("health", inbox)
    receiver.fault(status=404, times=1)
    await Alerter().send(delivery(channel, "alert"))
    await Alerter().send(delivery(channel, "reminder"))
    assert await layer.receive(inbox) == {"type": "health.update", "provider": "p1"}
    assert await layer.receive(inbox) == {"type": "health.update", "provider": "p1"}
    events = await alert_events()
    assert [(e[0], e[1], e[2]) for e in events] == [
        ("alert", "failed permanently", "channel:ops"),
        ("reminder", "sent", "channel:ops"),
    ]
    assert "webhook channel ops" in events[0][3] and "HTTP 404" in events[0][3]
    assert "sent REMINDER: p1 is still unhealthy" in events[1][3]
    rows = await sync_to_async(list)(HealthEvent.objects.filter(kind="alert").values_list("provider_name", flat=True))
    assert rows == ["p1", "p1"]


async def test_an_alert_to_a_hung_receiver_times_out_as_a_transient_failure(receiver, settings):
    settings.ALERT_TIMEOUT_S = 0.2
    settings.ALERT_RETRIES = 1
    channel = await make_channel(receiver.url + "/hook")
    receiver.fault(hang=True)
    outcome = await Alerter().send(delivery(channel))
    assert not outcome.ok and not outcome.permanent and outcome.attempts == 2
    assert "no answer" in outcome.detail

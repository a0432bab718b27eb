"""Grouping: providers that go bad (or recover) in the same evaluation share one alert per
channel, which lists them all; each provider's incident timeline still gets its own alert.

The monitor tests trip several breakers between two ticks (as a shared upstream failing
would, for every live call at once) on the suite's fake clock, against one fake provider
server and a fake webhook receiver on loopback. The rest feed the `Alerter` one evaluation
at a time, or call the transports' pure payload builders.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import sync_to_async

from health.alerts import Alerter, Delivery, Observation, group_deliveries, plan_alerts
from health.models import AlertChannel, HealthEvent, Incident, ProviderHealth
from health.monitor import Monitor
from health.transports import Notice, email, slack, webhook
from providers.engine import CircuitOpen, Engine, Outcome
from providers.models import Provider
from providers.runtime import Runtime, install_runtime
from tests.fakes.openai import API_KEY, FakeOpenAI
from tests.fakes.webhook import PATIENCE_S, FakeWebhook

AT = datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)


def provider(name, url):
    return {
        "name": name,
        "kind": "openai",
        "base_url": url + "/v1",
        "api_key": API_KEY,
        "models": ["gpt-4o-mini"],
        "timeout_s": 5,
        "health_check": {"interval_s": 5, "timeout_s": 1},
        "breaker": {"consecutive_failures": 2, "break_s": 10, "max_break_s": 20, "window_s": 20},
    }


@pytest.fixture(autouse=True)
def _fast_alerts(settings):
    settings.ALERT_RETRY_BASE_S = 0.01
    settings.ALERT_TIMEOUT_S = PATIENCE_S
    settings.ALERT_RETRIES = 2
    settings.ALERT_DISABLE_AFTER = 3
    settings.CONSOLE_URL = "https://console.example.com"
    settings.DEFAULT_FROM_EMAIL = "gateway@example.com"


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
def alert_events(actor=None):
    rows = HealthEvent.objects.filter(kind=HealthEvent.Kind.ALERT).order_by("id")
    if actor:
        rows = rows.filter(actor=actor)
    return [(e.provider_name, e.old, e.new) for e in rows]


@sync_to_async
def timeline(name):
    """The alert events in the provider's incidents' timelines: (incident's provider, event, outcome)."""
    return [
        (incident.provider_name, e.old, e.new)
        for incident in Incident.objects.filter(provider_name=name).order_by("id")
        for e in incident.events.filter(kind=HealthEvent.Kind.ALERT).order_by("id")
    ]


# -- through the monitor ----------------------------------------------------------------------


@pytest.fixture
async def vrt(clock):
    runtime = install_runtime(Runtime(engine=Engine(clock=clock, rng=random.Random(3))))
    # Breaker events are not what these tests look at, and their writer would race ours on the
    # test database (shared-cache SQLite answers "table is locked" instead of waiting).
    runtime.engine.emitter.unsubscribe(runtime.event_sink)
    yield runtime
    await runtime.close()


@pytest.fixture
def fake():
    with FakeOpenAI() as server:
        yield server


async def evaluate(monitor, clock, seconds=1.0):
    """One second of the monitor's life: a tick (one evaluation), its probes, its deliveries."""
    clock.advance(seconds)
    await monitor.tick()
    await monitor.wait_for_probes()
    await monitor.alerter.wait_for_deliveries()


async def live_calls(rt, name, outcome, calls=2):
    """Live calls as the gateway makes them, each with `outcome`: two failures open the
    breaker (consecutive_failures 2), successes in half-open close it."""
    breaker = rt.engine.breaker(name)
    for _ in range(calls):
        try:
            permit = await breaker.acquire()
        except CircuitOpen:
            return
        await breaker.record(permit, outcome, 0.05)


@sync_to_async
def statuses(names):
    rows = dict(ProviderHealth.objects.filter(provider__name__in=names).values_list("provider__name", "breaker"))
    return [rows.get(name) for name in names]


NAMES = ["p1", "p2", "p3"]


@pytest.mark.django_db(transaction=True)
async def test_three_providers_failing_together_get_one_alert_per_channel_and_one_recovery(
    configure, clock, fake, receiver, vrt
):
    await configure({"providers": [provider(name, fake.url) for name in NAMES]})
    await make_channel("ops", receiver.url + "/ops", failure_threshold=1, success_threshold=1)
    await make_channel("oncall", receiver.url + "/oncall", failure_threshold=1, success_threshold=1)
    monitor = Monitor(vrt, now=clock, rng=random.Random(7), holder="m1")
    for _ in range(4):
        await evaluate(monitor, clock)
    assert receiver.requests == []

    for name in NAMES:  # the shared upstream fails: every provider's live calls fail at once
        await live_calls(vrt, name, Outcome.FAILURE)
    await evaluate(monitor, clock)
    assert await statuses(NAMES) == ["open", "open", "open"]

    for path in ("/ops", "/oncall"):
        [alert] = receiver.payloads(path)
        assert alert["event"] == "alert"
        assert alert["title"] == "ALERT: 3 providers are down: p1, p2, p3"
        assert [p["provider"] for p in alert["providers"]] == NAMES
        assert all(p["breaker"] == "open" and p["incident"] is not None for p in alert["providers"])
        assert len({p["incident"] for p in alert["providers"]}) == 3  # one incident each
        assert alert["provider"] == "p1" and alert["incident"] == alert["providers"][0]["incident"]
    assert sorted(await alert_events("channel:ops")) == [
        ("p1", "alert", "sent"),
        ("p2", "alert", "sent"),
        ("p3", "alert", "sent"),
    ]
    for name in NAMES:  # each provider's incident shows its alert, once per channel
        assert await timeline(name) == [(name, "alert", "sent"), (name, "alert", "sent")]

    for _ in range(5):  # still down: nothing more
        await evaluate(monitor, clock)
    assert len(receiver.payloads()) == 2

    clock.advance(10)  # break_s: the breakers let trial calls through
    for _ in range(10):
        for name in NAMES:
            await live_calls(vrt, name, Outcome.SUCCESS)
        await evaluate(monitor, clock)
        if "recovery" in receiver.events():
            break
    for _ in range(3):
        await evaluate(monitor, clock)
    for path in ("/ops", "/oncall"):
        alert, recovery = receiver.payloads(path)
        assert recovery["event"] == "recovery"
        assert recovery["title"] == "RECOVERED: 3 providers are back: p1, p2, p3"
        assert [p["provider"] for p in recovery["providers"]] == NAMES
        assert [p["since"] for p in recovery["providers"]] == [alert["at"]] * 3
    assert sorted(e for e in await alert_events("channel:ops") if e[1] == "recovery") == [
        ("p1", "recovery", "sent"),
        ("p2", "recovery", "sent"),
        ("p3", "recovery", "sent"),
    ]


@pytest.mark.django_db(transaction=True)
async def test_providers_failing_in_different_evaluations_get_an_alert_each(configure, clock, fake, receiver, vrt):
    await configure({"providers": [provider(name, fake.url) for name in NAMES[:2]]})
    await make_channel("ops", receiver.url + "/ops", failure_threshold=1)
    monitor = Monitor(vrt, now=clock, rng=random.Random(7), holder="m1")
    for _ in range(4):
        await evaluate(monitor, clock)
    await live_calls(vrt, "p1", Outcome.FAILURE)
    await evaluate(monitor, clock)
    await live_calls(vrt, "p2", Outcome.FAILURE)
    await evaluate(monitor, clock)
    first, second = receiver.payloads("/ops")
    assert (first["title"], [p["provider"] for p in first["providers"]]) == ("ALERT: p1 has its breaker open", ["p1"])
    assert (second["title"], [p["provider"] for p in second["providers"]]) == ("ALERT: p2 has its breaker open", ["p2"])


@pytest.mark.django_db(transaction=True)
async def test_with_alert_grouping_off_each_provider_gets_its_own_alert(
    configure, clock, fake, receiver, vrt, settings
):
    settings.ALERT_GROUPING = False
    await configure({"providers": [provider(name, fake.url) for name in NAMES]})
    await make_channel("ops", receiver.url + "/ops", failure_threshold=1)
    monitor = Monitor(vrt, now=clock, rng=random.Random(7), holder="m1")
    for _ in range(4):
        await evaluate(monitor, clock)
    for name in NAMES:
        await live_calls(vrt, name, Outcome.FAILURE)
    await evaluate(monitor, clock)
    alerts = receiver.payloads("/ops")
    assert sorted(a["provider"] for a in alerts) == NAMES
    assert all(len(a["providers"]) == 1 and a["providers"][0]["provider"] == a["provider"] for a in alerts)


# -- one evaluation at a time, through the Alerter ----------------------------------------------


@sync_to_async
def make_providers(names):
    for name in names:
        Provider.objects.get_or_create(name=name, defaults={"kind": "openai", "base_url": "http://127.0.0.1:9/v1"})


def down(name, at=AT, reason="connection refused"):
    return Observation(name, "unhealthy", "open", True, False, reason, at)


def up(name, at):
    return Observation(name, "healthy", "closed", True, False, "", at)


async def observe(alerter, observations):
    deliveries = await alerter.observe(observations)
    await alerter.wait_for_deliveries()
    return deliveries


@sync_to_async
def reload(channel):
    channel.refresh_from_db()
    return channel


@pytest.mark.django_db(transaction=True)
async def test_a_channel_scoped_to_one_provider_gets_that_one_alone(receiver):
    await make_providers(NAMES)
    await make_channel("p2-only", receiver.url + "/p2", failure_threshold=1, providers=["p2"])
    await make_channel("everyone", receiver.url + "/all", failure_threshold=1)
    await observe(Alerter(), [down(name) for name in NAMES])
    [scoped] = receiver.payloads("/p2")
    assert scoped["title"] == "ALERT: p2 is unhealthy"
    assert scoped["provider"] == "p2" and [p["provider"] for p in scoped["providers"]] == ["p2"]
    assert scoped["console_url"] == "https://console.example.com/providers/p2"
    [everyone] = receiver.payloads("/all")
    assert [p["provider"] for p in everyone["providers"]] == NAMES


@pytest.mark.django_db(transaction=True)
async def test_reminders_due_in_the_same_evaluation_are_one_reminder(receiver):
    await make_providers(NAMES)
    await make_channel("ops", receiver.url + "/ops", failure_threshold=1, reminder_interval_s=60)
    alerter = Alerter()
    await observe(alerter, [down(name) for name in NAMES])
    await observe(alerter, [down(name, AT + timedelta(seconds=30)) for name in NAMES])
    await observe(alerter, [down(name, AT + timedelta(seconds=60)) for name in NAMES])
    assert receiver.events() == ["alert", "reminder"]
    reminder = receiver.payloads()[1]
    assert reminder["title"] == "REMINDER: 3 providers are still down (for 1 min): p1, p2, p3"
    assert [p["provider"] for p in reminder["providers"]] == NAMES
    assert [p["since"] for p in reminder["providers"]] == ["2026-03-01T12:00:05Z"] * 3


@pytest.mark.django_db(transaction=True)
async def test_a_failing_group_is_retried_and_counted_once_but_recorded_for_each_provider(receiver):
    await make_providers(NAMES)
    channel = await make_channel("ops", receiver.url + "/ops", failure_threshold=1)
    receiver.fault(status=500)
    await observe(Alerter(), [down(name) for name in NAMES])
    assert len(receiver.requests) == 3  # one delivery: 1 attempt + ALERT_RETRIES, not per provider
    assert all(len(r.json()["providers"]) == 3 for r in receiver.requests)
    channel = await reload(channel)
    assert channel.delivery_failures == 1 and "HTTP 500" in channel.last_delivery_error
    assert sorted(await alert_events("channel:ops")) == [
        ("p1", "alert", "failed"),
        ("p2", "alert", "failed"),
        ("p3", "alert", "failed"),
    ]


@pytest.mark.django_db(transaction=True)
async def test_a_group_that_fails_permanently_counts_once_towards_disabling_the_channel(receiver):
    await make_providers(NAMES)
    channel = await make_channel("ops", receiver.url + "/ops", failure_threshold=1)
    receiver.fault(status=404)
    alerter = Alerter()
    [delivery] = await sync_to_async(plan_alerts)([down(name) for name in NAMES])
    for sent in (1, 2):  # three events each time, one delivery: ALERT_DISABLE_AFTER is 3
        await alerter.send(delivery)
        channel = await reload(channel)
        assert channel.enabled and channel.delivery_failures == sent
    assert [e[2] for e in await alert_events()] == ["failed permanently"] * 6
    await alerter.send(delivery)
    channel = await reload(channel)
    assert not channel.enabled and "3 permanent delivery errors in a row" in channel.disabled_reason
    assert len(receiver.requests) == 3


@pytest.mark.django_db(transaction=True)
async def test_a_grouped_delivery_is_published_for_each_provider(receiver):
    from channels.layers import get_channel_layer

    await make_providers(NAMES)
    await make_channel("ops", receiver.url + "/ops", failure_threshold=1)
    layer = get_channel_layer()
    inbox = await layer.new_channel()
    await layer.group_add("health", inbox)
    await observe(Alerter(), [down(name) for name in NAMES])
    got = [await layer.receive(inbox) for _ in NAMES]
    assert sorted(m["provider"] for m in got) == NAMES
    assert {m["type"] for m in got} == {"health.update"}


# -- the plan, pure ------------------------------------------------------------------------------


def notice(name, event="alert", **fields):
    values = {
        "event": event,
        "channel": "ops",
        "provider": name,
        "status": "unhealthy",
        "breaker": "open",
        "reason": f"{name} refused the connection",
        "at": AT,
        "incident": int(name[1:]) if name[1:].isdigit() else None,
    }
    values.update(fields)
    return Notice(**values)


def delivery(name, event="alert", channel_id=1):
    return Delivery(channel_id, f"c{channel_id}", "webhook", "http://127.0.0.1:9/hook", notice(name, event))


def test_only_one_channel_and_one_event_are_grouped_and_acknowledgements_never():
    deliveries = [
        delivery("p3"),
        delivery("p1", "acknowledged"),
        delivery("p1"),
        delivery("p2", channel_id=2),
        delivery("p2", "acknowledged"),
        delivery("p4", "recovery"),
        delivery("p2"),
        delivery("p5", "recovery"),
    ]
    grouped = group_deliveries(deliveries)
    assert [(d.channel_id, d.notice.event, d.notice.providers) for d in grouped] == [
        (1, "alert", ["p1", "p2", "p3"]),
        (1, "acknowledged", ["p1"]),
        (2, "alert", ["p2"]),
        (1, "acknowledged", ["p2"]),
        (1, "recovery", ["p4", "p5"]),
    ]
    first = grouped[0].notice
    assert first.provider == "p1" and first.incident == 1 and first.grouped
    assert [m.group for m in first.members] == [(), (), ()]
    assert not grouped[1].notice.group and not grouped[2].notice.group


def group(count, event="alert"):
    members = tuple(notice(f"p{i:02d}", event) for i in range(1, count + 1))
    return Notice(**{**members[0].__dict__, "group": members})


def test_a_group_of_twelve_names_ten_in_its_title_and_counts_the_rest():
    big = group(12)
    assert big.title == "ALERT: 12 providers are down: p01, p02, p03, p04, p05, p06, p07, p08, p09, p10 and 2 more"
    body = webhook.payload(big)
    assert body["title"] == big.title
    assert [p["provider"] for p in body["providers"]] == [f"p{i:02d}" for i in range(1, 13)]
    assert body["provider"] == "p01" and body["incident"] == 1
    assert body["console_url"] == "https://console.example.com/providers/p01"


def test_a_group_of_three_names_them_all():
    assert group(3).title == "ALERT: 3 providers are down: p01, p02, p03"
    assert group(3, "recovery").title == "RECOVERED: 3 providers are back: p01, p02, p03"


def test_the_slack_body_of_a_group_lists_every_provider():
    body = slack.payload(group(12))
    header, section, context = body["blocks"]
    assert header["text"]["text"] == body["text"][:150]
    lines = section["text"]["text"].splitlines()
    assert len(lines) == 12
    for i, line in enumerate(lines, start=1):
        assert line == f"\u2022 *p{i:02d}* unhealthy, breaker open, incident #{i}: p{i:02d} refused the connection"
    assert "*Providers*\n12" in [f["text"] for f in section["fields"]]
    assert context["elements"][0]["text"] == "<https://console.example.com/incidents|Open in the console>"


def test_a_huge_group_stays_within_slacks_section_limit_and_says_how_many_it_left_out():
    body = slack.payload(group(400))
    text = body["blocks"][1]["text"]["text"]
    lines = text.splitlines()
    assert len(text) <= 3000
    shown = len(lines) - 1
    assert 10 < shown < 400 and lines[-1] == f"\u2026 and {400 - shown} more"
    assert lines[shown - 1].startswith(f"\u2022 *p{shown:02d}* ")


def test_the_email_of_a_group_has_a_line_for_every_provider():
    mail = email.message(group(3, "recovery"), ["oncall@example.com"])
    assert mail.subject == "[gateway] RECOVERED: 3 providers are back: p01, p02, p03"
    lines = mail.body.splitlines()
    for i in (1, 2, 3):
        assert f"p{i:02d}: unhealthy, breaker open, incident #{i}: p{i:02d} refused the connection" in lines
    assert "Console: https://console.example.com/incidents" in lines


def test_an_ungrouped_notice_keeps_its_rendering():
    one = notice("p1")
    assert one.members == (one,) and not one.grouped
    assert one.title == "ALERT: p1 is unhealthy"
    assert [p["provider"] for p in webhook.payload(one)["providers"]] == ["p1"]
    assert slack.payload(one)["blocks"][1]["fields"][0]["text"] == "*Provider*\np1"

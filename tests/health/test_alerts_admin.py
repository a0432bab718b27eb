"""The test button (admin action and `manage.py send_test_alert`) and the alert state in the admin."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from health.models import AlertChannel, AlertState, HealthEvent
from providers.models import Provider
from tests.fakes.webhook import FakeWebhook

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/health/alertchannel/"


@pytest.fixture
def receiver():
    with FakeWebhook() as server:
        yield server


def make_channel(target, *, kind="webhook", name="ops", **fields):
    channel = AlertChannel(name=name, kind=kind, **fields)
    channel.set_target(target)
    channel.save()
    return channel


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


def test_the_admin_action_sends_a_test_alert_and_records_the_result(admin_client_logged, receiver):
    channel = make_channel(receiver.url + "/hook")
    response = admin_client_logged.post(
        CHANGELIST, {"action": "send_test_action", "_selected_action": [channel.pk]}, follow=True
    )
    assert response.status_code == 200
    assert messages_of(response) == ["ops: test alert sent (TEST: alert channel ops works (HTTP 200))."]
    [payload] = receiver.payloads()
    assert payload["event"] == "test" and payload["channel"] == "ops" and "root" in payload["reason"]
    event = HealthEvent.objects.get(kind="alert")
    assert (event.old, event.new, event.actor) == ("test", "sent", "channel:ops")
    assert "(by root)" in event.reason
    channel.refresh_from_db()
    assert channel.last_delivery_at is not None and channel.last_delivery_error == ""


def test_a_failing_test_alert_shows_the_error_and_stores_it(admin_client_logged, receiver):
    channel = make_channel(receiver.url + "/hook")
    receiver.fault(status=404)
    response = admin_client_logged.post(
        CHANGELIST, {"action": "send_test_action", "_selected_action": [channel.pk]}, follow=True
    )
    [message] = messages_of(response)
    assert message.startswith("ops: test alert failed: HTTP 404")
    channel.refresh_from_db()
    assert channel.last_delivery_error.startswith("HTTP 404") and channel.delivery_failures == 1
    assert HealthEvent.objects.get(kind="alert").new == "failed permanently"
    page = admin_client_logged.get(CHANGELIST).content.decode()
    assert "HTTP 404" in page  # the last delivery error is shown in the list


def test_the_command_sends_a_test_email_through_the_mail_backend(mailoutbox):
    make_channel("oncall@example.com", kind="email", name="mail")
    out = StringIO()
    call_command("send_test_alert", "mail", stdout=out)
    assert "mail: test alert sent" in out.getvalue()
    [mail] = mailoutbox
    assert mail.subject == "[gateway] TEST: alert channel mail works" and mail.to == ["oncall@example.com"]
    event = HealthEvent.objects.get(kind="alert")
    assert (event.old, event.new, event.actor) == ("test", "sent", "channel:mail")


def test_the_command_reports_a_failure_and_records_it(receiver):
    make_channel(receiver.url + "/hook")
    receiver.fault(status=410)
    with pytest.raises(CommandError, match="ops: test alert failed: HTTP 410"):
        call_command("send_test_alert", "ops", stdout=StringIO())
    assert AlertChannel.objects.get(name="ops").last_delivery_error.startswith("HTTP 410")
    assert HealthEvent.objects.get(kind="alert").new == "failed permanently"


def test_the_command_names_the_channels_when_the_name_is_unknown(receiver):
    make_channel(receiver.url + "/hook")
    with pytest.raises(CommandError, match=r"no alert channel named 'nope' \(channels: ops\)"):
        call_command("send_test_alert", "nope")


def test_the_channel_page_shows_where_each_provider_stands(admin_client_logged):
    channel = make_channel("https://hooks.example.com/x")
    provider = Provider.objects.create(name="p1", kind="openai", base_url="https://api.example.com/v1")
    AlertState.objects.create(
        channel=channel,
        provider=provider,
        bad_count=2,
        firing=True,
        since=timezone.now(),
        reason="success rate 0% over 4 calls (< 70%)",
    )
    page = admin_client_logged.get(f"{CHANGELIST}{channel.pk}/change/").content.decode()
    table = page[page.index('id="alert-state"') :]
    table = table[: table.index("</table>")]
    assert "<td>p1</td><td>alerting</td><td>2</td><td>0</td>" in table
    assert "success rate 0% over 4 calls (&lt; 70%)" in table


def test_turning_a_disabled_channel_back_on_clears_its_reason(admin_client_logged):
    channel = make_channel(
        "https://hooks.example.com/x",
        enabled=False,
        delivery_failures=5,
        disabled_reason="disabled after 5 permanent delivery errors in a row; last: HTTP 404",
    )
    response = admin_client_logged.post(
        f"{CHANGELIST}{channel.pk}/change/",
        {
            "name": "ops",
            "kind": "webhook",
            "enabled": "on",
            "target_env": "",
            "target": "",
            "failure_threshold": "2",
            "success_threshold": "2",
            "reminder_interval_s": "",
            "notify_recovery": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    channel.refresh_from_db()
    assert channel.enabled and channel.disabled_reason == "" and channel.delivery_failures == 0
    assert channel.target() == "https://hooks.example.com/x"

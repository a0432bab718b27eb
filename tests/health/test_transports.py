"""The three transports: what each sends, and which errors are permanent."""

from __future__ import annotations

import smtplib
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from django.core.mail.backends.base import BaseEmailBackend

from health.transports import DeliveryError, Notice, email, slack, webhook
from tests.fakes.webhook import FakeWebhook

AT = datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)
ALERT = Notice(
    event="alert",
    channel="ops",
    provider="openai-main",
    status="unhealthy",
    breaker="open",
    reason="breaker open (consecutive_failures 5); success rate 20% over 10 calls (< 70%)",
    at=AT,
)
REMINDER = Notice(
    event="reminder",
    channel="ops",
    provider="openai-main",
    status="unhealthy",
    breaker="open",
    reason="still failing",
    at=AT + timedelta(minutes=90),
    since=AT,
)
RECOVERY = Notice(
    event="recovery",
    channel="ops",
    provider="openai-main",
    status="healthy",
    breaker="closed",
    reason="success rate 100% over 12 calls",
    at=AT + timedelta(hours=2),
    since=AT,
)
TEST = Notice(event="test", channel="ops", provider="", status="", breaker="", reason="A test sent by root.", at=AT)


@pytest.fixture(autouse=True)
def _console(settings):
    settings.CONSOLE_URL = "https://console.example.com/"
    settings.DEFAULT_FROM_EMAIL = "gateway@example.com"


@pytest.fixture
def receiver():
    with FakeWebhook() as server:
        yield server


async def test_the_webhook_posts_the_event_as_json(receiver):
    async with httpx.AsyncClient() as client:
        summary = await webhook.send(ALERT, receiver.url + "/hook", client)
    assert summary == "ALERT: openai-main is unhealthy (HTTP 200)"
    [request] = receiver.requests
    assert request.method == "POST" and request.headers["Content-Type"] == "application/json"
    assert request.json() == {
        "event": "alert",
        "channel": "ops",
        "provider": "openai-main",
        "status": "unhealthy",
        "breaker": "open",
        "reason": ALERT.reason,
        "at": "2026-03-01T12:00:05Z",
        "since": None,
        "incident": None,
        "console_url": "https://console.example.com/providers/openai-main",
        "title": "ALERT: openai-main is unhealthy",
        "providers": [
            {
                "provider": "openai-main",
                "status": "unhealthy",
                "breaker": "open",
                "reason": ALERT.reason,
                "incident": None,
                "since": None,
            }
        ],
    }


def test_webhook_bodies_name_the_event_and_keep_the_incident_start():
    assert webhook.payload(REMINDER)["event"] == "reminder"
    assert webhook.payload(REMINDER)["title"] == "REMINDER: openai-main is still unhealthy (for 1 h 30 min)"
    assert webhook.payload(RECOVERY)["since"] == "2026-03-01T12:00:05Z"
    assert webhook.payload(RECOVERY)["title"] == "RECOVERED: openai-main is healthy again"
    test = webhook.payload(TEST)
    assert (
        test["event"] == "test" and test["provider"] is None and test["console_url"] == "https://console.example.com/"
    )


def test_an_open_breaker_on_a_provider_that_is_not_unhealthy_is_named():
    notice = Notice(event="alert", channel="ops", provider="p1", status="degraded", breaker="open", reason="", at=AT)
    assert notice.title == "ALERT: p1 has its breaker open"


async def test_the_slack_body_is_text_with_blocks_as_incoming_webhooks_expect(receiver):
    async with httpx.AsyncClient() as client:
        await slack.send(ALERT, receiver.url + "/services/T0/B0/x", client)
    body = receiver.payloads()[0]
    assert set(body) == {"text", "blocks"}
    assert body["text"] == "ALERT: openai-main is unhealthy"
    header, section, context = body["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": "ALERT: openai-main is unhealthy"}}
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    assert section["text"]["text"] == ALERT.reason.replace("<", "&lt;")
    assert [f["type"] for f in section["fields"]] == ["mrkdwn"] * 4
    assert section["fields"][0]["text"] == "*Provider*\nopenai-main"
    assert section["fields"][2]["text"] == "*Breaker*\nopen"
    assert context == {
        "type": "context",
        "elements": [
            {"type": "mrkdwn", "text": "<https://console.example.com/providers/openai-main|Open in the console>"}
        ],
    }


def test_slack_text_is_escaped_and_kept_within_block_limits():
    notice = Notice(
        event="alert",
        channel="ops",
        provider="p" * 64,
        status="unhealthy",
        breaker="open",
        reason="<script> & " + "x" * 5000,
        at=AT,
    )
    body = slack.payload(notice)
    header, section, _ = body["blocks"]
    assert len(header["text"]["text"]) <= 150
    assert section["text"]["text"].startswith("&lt;script&gt; &amp; ")
    assert len(section["text"]["text"]) <= 3000
    assert all(len(f["text"]) <= 2000 for f in section["fields"])


def test_a_slack_test_notice_names_the_channel():
    body = slack.payload(TEST)
    assert body["text"] == "TEST: alert channel ops works"
    assert body["blocks"][1]["text"]["text"] == "A test sent by root."
    assert body["blocks"][1]["fields"][0]["text"] == "*Channel*\nops"


async def test_an_email_alert_has_a_plain_text_subject_and_body(mailoutbox):
    summary = await email.send(ALERT, "oncall@example.com, lead@example.com", None)
    assert summary.endswith("(to 2 addresses)")
    [mail] = mailoutbox
    assert mail.subject == "[gateway] ALERT: openai-main is unhealthy"
    assert mail.to == ["oncall@example.com", "lead@example.com"]
    assert mail.from_email == "gateway@example.com"
    assert mail.content_subtype == "plain" and not getattr(mail, "alternatives", [])
    lines = mail.body.splitlines()
    assert lines[0] == "ALERT: openai-main is unhealthy"
    assert "Provider: openai-main" in lines and "Status:   unhealthy" in lines and "Breaker:  open" in lines
    assert f"Reason:   {ALERT.reason}" in lines
    assert "Console: https://console.example.com/providers/openai-main" in lines


async def test_an_email_recovery_says_when_the_alert_went_out(mailoutbox):
    await email.send(RECOVERY, "oncall@example.com", None)
    [mail] = mailoutbox
    assert mail.subject == "[gateway] RECOVERED: openai-main is healthy again"
    assert "Alerted at: 2026-03-01 12:00:05 UTC" in mail.body.splitlines()


async def test_an_invalid_email_address_is_permanent(mailoutbox):
    with pytest.raises(DeliveryError) as caught:
        await email.send(ALERT, "oncall@example.com, not-an-address", None)
    assert caught.value.permanent and "not-an-address" in caught.value.message
    assert mailoutbox == []


class RefusingBackend(BaseEmailBackend):
    error: Exception = smtplib.SMTPRecipientsRefused({"oncall@example.com": (550, b"5.1.1 no such user")})

    def send_messages(self, messages):
        raise type(self).error


@pytest.mark.parametrize(
    ("error", "permanent"),
    [
        (smtplib.SMTPRecipientsRefused({"a@example.com": (550, b"5.1.1 no such user")}), True),
        (smtplib.SMTPRecipientsRefused({"a@example.com": (450, b"4.2.0 mailbox busy")}), False),
        (smtplib.SMTPAuthenticationError(535, b"5.7.8 bad credentials"), True),
        (smtplib.SMTPDataError(451, b"4.3.0 try again later"), False),
        (smtplib.SMTPServerDisconnected("Connection unexpectedly closed"), False),
        (ConnectionRefusedError(111, "Connection refused"), False),
    ],
)
async def test_smtp_5xx_replies_are_permanent_and_the_rest_transient(settings, error, permanent):
    settings.EMAIL_BACKEND = f"{__name__}.RefusingBackend"
    RefusingBackend.error = error
    with pytest.raises(DeliveryError) as caught:
        await email.send(ALERT, "oncall@example.com", None)
    assert caught.value.permanent is permanent

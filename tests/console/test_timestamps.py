"""Timestamps in the console: one format with its zone (`2026-03-05 14:03:07 CET`), the
operator's zone from CONSOLE_TIME_ZONE or else the browser's (the server writes UTC and marks
it for the page's script), relative times that the page ticks, the instant in ISO 8601."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import sync_to_async
from django.template import Context, Template
from django.test import override_settings
from django.utils import timezone

from analytics.models import RequestLog
from health.templatetags.console import instant, stamp, timestamp
from providers.models import ApiKey

WINTER = datetime(2026, 3, 5, 14, 3, 7, tzinfo=UTC)
SUMMER = datetime(2026, 7, 5, 14, 3, 7, tzinfo=UTC)


def render(source: str, **context: object) -> str:
    return Template("{% load console %}" + source).render(Context(context))


def test_without_a_setting_the_server_writes_utc_for_the_browser_to_rewrite():
    assert str(timestamp(WINTER)) == (
        '<time datetime="2026-03-05T14:03:07+00:00" data-stamp="browser">2026-03-05 14:03:07 UTC</time>'
    )


@override_settings(CONSOLE_TIME_ZONE="Europe/Berlin")
def test_the_console_zone_names_itself_and_follows_summer_time():
    assert stamp(WINTER) == "2026-03-05 15:03:07 CET"
    assert stamp(SUMMER) == "2026-07-05 16:03:07 CEST"
    html = str(timestamp(WINTER))
    assert 'datetime="2026-03-05T14:03:07+00:00"' in html  # the instant itself stays in UTC
    assert 'data-stamp="fixed"' in html and ">2026-03-05 15:03:07 CET</time>" in html


@override_settings(CONSOLE_TIME_ZONE="Mars/Olympus_Mons")
def test_a_zone_that_does_not_exist_falls_back_to_the_browsers():
    assert 'data-stamp="browser">2026-03-05 14:03:07 UTC<' in str(timestamp(WINTER))


@override_settings(CONSOLE_TIME_ZONE="America/New_York")
def test_iso_strings_and_naive_datetimes_are_read_as_instants():
    assert stamp("2026-03-05T14:03:07+00:00") == "2026-03-05 09:03:07 EST"
    assert stamp("2026-03-05T14:03:07Z") == "2026-03-05 09:03:07 EST"
    assert stamp(datetime(2026, 3, 5, 14, 3, 7)) == "2026-03-05 09:03:07 EST"  # naive: UTC
    assert instant("yesterday") is None and instant(None) is None and instant(42) is None  # type: ignore[arg-type]


def test_nothing_renders_as_nothing_or_the_words_given():
    assert render("[{% timestamp missing %}]") == "[]"
    assert render('[{% timestamp missing empty="never" %}]') == "[never]"
    assert render("[{{ missing|stamp }}]") == "[]"


def test_a_relative_time_ticks_with_the_timestamp_as_its_title():
    at = timezone.now().replace(microsecond=0) - timedelta(minutes=3)
    html = render("{% timestamp at relative=True %}", at=at)
    assert re.fullmatch(
        r'<time datetime="[^"]+\+00:00" data-ago data-stamp="browser" title="\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC">'
        r"3 min ago</time>",
        html,
    ), html
    assert render("{% ago_time at %}", at=at) == html  # the older tag says the same


def test_an_end_ticks_down_with_its_timestamp_as_its_title():
    at = timezone.now().replace(microsecond=0) + timedelta(minutes=12, seconds=20)
    html = render("{% until_time at %}", at=at)
    assert f'data-until="{at.astimezone(UTC).isoformat()}"' in html and ">in 12 min</time>" in html
    assert f'title="{stamp(at)}"' in html


@pytest.mark.django_db(transaction=True)
async def test_the_request_log_and_a_request_show_timestamps_with_their_zone(simulated, login, users):
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)

    @sync_to_async
    def logged() -> None:
        RequestLog.objects.create(
            at=at, request_id="stamped-1", route="chat", capability="chat", outcome="success", status=200,
            latency_ms=12.0, attempts=[],
        )  # fmt: skip

    await logged()
    client = await login(users["staff"])
    listing = (await client.get("/requests")).content.decode()
    assert f'<time datetime="{at.isoformat()}" data-stamp="browser">{stamp(at)}</time>' in listing
    assert "Time (UTC)" not in listing
    with override_settings(CONSOLE_TIME_ZONE="Asia/Tokyo"):
        one = (await client.get("/requests/stamped-1")).content.decode()
    tokyo = (at + timedelta(hours=9)).strftime("%Y-%m-%d %H:%M:%S")
    assert f'data-stamp="fixed">{tokyo} JST</time>' in one
    assert f'<time datetime="{at.isoformat()}" data-ago data-stamp="fixed" title="{tokyo} JST">2 min ago</time>' in one


@pytest.mark.django_db(transaction=True)
async def test_the_keys_page_shows_when_a_key_was_used_and_expires(simulated, login, users):
    @sync_to_async
    def issued() -> None:
        key = ApiKey.issue("stamped", ["gateway"])[0]
        key.last_used_at = datetime.now(UTC) - timedelta(hours=2)
        key.expires_at = datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC)
        key.save()

    await issued()
    client = await login(users["staff"])
    html = (await client.get("/keys")).content.decode()
    assert '<time datetime="2027-01-02T03:04:05+00:00" data-stamp="browser">2027-01-02 03:04:05 UTC</time>' in html
    assert re.search(r'<time datetime="[^"]+" data-ago data-stamp="browser" title="[^"]+ UTC">2 h ago</time>', html)

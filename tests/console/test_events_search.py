"""Searching the events and a date range: the same `q`, `since` and `until` on `/events` and
on `GET /api/events`, and input either refuses with a message (a JSON 400 from the API, a
visible message beside the form on the page), never a 500."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from health.models import HealthEvent
from tests.conftest import auth

from .conftest import htmx

pytestmark = pytest.mark.django_db(transaction=True)

NOON = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.fixture
def history(db):
    """One event an hour from 00:00 to 23:00 on 2026-12-03, on two providers, with reasons."""
    HealthEvent.objects.bulk_create(
        [
            HealthEvent(
                provider_name="openai-main" if h % 2 else "ollama-box",
                at=NOON - timedelta(hours=12 - h),
                kind="status",
                old="healthy",
                new="degraded",
                reason="HTTP 503 from upstream" if h % 3 == 0 else f"slow answers, hour {h:02d}",
            )
            for h in range(24)
        ]
    )


async def listed(gateway, key, query: str) -> list[dict]:
    response = await gateway.get(f"/api/events?{query}", headers=auth(key))
    assert response.status_code == 200, response.text
    return response.json()["events"]


async def test_the_api_searches_the_provider_and_the_reason(history, gateway, key):
    found = await listed(gateway, key, "q=OPENAI&limit=500")
    assert len(found) == 12 and {e["provider"] for e in found} == {"openai-main"}
    found = await listed(gateway, key, "q=http+503")  # every word, ignoring case
    assert len(found) == 8 and all("HTTP 503" in e["reason"] for e in found)
    found = await listed(gateway, key, "q=ollama+503")
    assert {e["provider"] for e in found} == {"ollama-box"} and len(found) == 4  # hours 0, 6, 12, 18
    assert await listed(gateway, key, "q=nothing-like-this") == []


async def test_the_api_takes_a_date_range_from_inclusive_until_exclusive(history, gateway, key):
    found = await listed(gateway, key, "since=2026-12-03T10:00:00Z&until=2026-12-03T13:00:00Z")
    assert [e["at"] for e in found] == ["2026-12-03T12:00:00Z", "2026-12-03T11:00:00Z", "2026-12-03T10:00:00Z"]
    found = await listed(gateway, key, f"until={int(NOON.timestamp()) - 3600 * 11}")  # epoch seconds
    assert [e["at"] for e in found] == ["2026-12-03T00:00:00Z"]
    found = await listed(gateway, key, "since=2026-12-03T22:00:00%2B01:00&q=hour")  # a zone of its own
    assert [e["at"] for e in found] == ["2026-12-03T23:00:00Z", "2026-12-03T22:00:00Z"]


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("since=yesterday", "since"),
        ("until=2026-13-45", "until"),
        ("since=2026-12-03T13:00:00Z&until=2026-12-03T10:00:00Z", "since"),
        ("q=" + "x" * 101, "q"),
    ],
)
async def test_bad_search_or_range_is_a_json_400_naming_the_parameter(history, gateway, key, query, param):
    response = await gateway.get(f"/api/events?{query}", headers=auth(key))
    assert response.status_code == 400 and response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["param"] == param and error["code"] == "invalid_parameter" and param in error["message"]


def test_the_page_searches_and_takes_a_range(history, client, users):
    client.force_login(users["staff"])
    html = client.get("/events?q=openai+503&since=2026-12-03T00:00:00Z&until=2026-12-03T12:00:00Z").content.decode()
    # openai-main has the odd hours; 503 every third: 03 and 09 before noon
    assert "2 events" in html and "matching “openai 503”" in html
    assert html.count("HTTP 503 from upstream") == 2 and "ollama-box</a>" not in html
    assert 'id="filter-q" name="q" type="search" maxlength="100" value="openai 503"' in html
    assert 'value="2026-12-03T00:00:00Z"' in html and 'value="2026-12-03T12:00:00Z"' in html


def test_the_pages_search_keeps_its_filters_on_the_next_page(history, client, users):
    client.force_login(users["staff"])
    HealthEvent.objects.bulk_create(
        [HealthEvent(provider_name="bulk", at=NOON, kind="status", reason=f"flood {i}") for i in range(60)]
    )
    html = client.get("/events?q=flood").content.decode()
    assert "60 events" in html and "page 1 of 2" in html and 'href="?q=flood&amp;page=2"' in html


def test_a_bad_range_on_the_page_is_a_visible_message_and_a_400(history, client, users):
    client.force_login(users["staff"])
    response = client.get("/events?since=next+tuesday")
    html = response.content.decode()
    assert response.status_code == 400 and "<html" in html
    assert 'id="filter-error" class="flash flash-error" role="alert"' in html and "`since` must be an ISO 8601" in html
    assert 'id="filter-since" name="since"' in html and 'aria-invalid="true"' in html
    assert "HTTP 503 from upstream" not in html  # no events listed under a filter it could not read
    swapped = client.get("/events?since=2026-12-03T13:00:00Z&until=2026-12-03T10:00:00Z", headers=htmx("event-list"))
    fragment = swapped.content.decode()
    assert swapped.status_code == 200 and fragment.lstrip().startswith('<section id="event-list"')
    assert "`since` is after `until`" in fragment

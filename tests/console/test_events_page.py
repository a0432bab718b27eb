from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from health.models import HealthEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def events(db):  # type: ignore[no-untyped-def]
    now = timezone.now()
    rows = [
        HealthEvent(
            provider_name="alpha" if i % 2 else "beta",
            at=now - timedelta(minutes=i),
            kind="breaker" if i % 3 == 0 else "status",
            old="closed",
            new=f"state-{i}",
            reason=f"reason number {i}",
        )
        for i in range(120)
    ]
    HealthEvent.objects.bulk_create(rows)


@pytest.fixture
def staff_client(client, users):  # type: ignore[no-untyped-def]
    client.force_login(users["staff"])
    return client


def test_the_events_page_lists_the_newest_first_with_pages(staff_client, events):
    response = staff_client.get("/events")
    html = response.content.decode()
    assert response.status_code == 200 and "<html" in html
    assert "120 events" in html and "page 1 of 3" in html
    assert html.index("reason number 0<") < html.index("reason number 1<")
    assert "reason number 50<" not in html
    assert 'href="?page=2"' in html
    second = staff_client.get("/events?page=2").content.decode()
    assert "reason number 50<" in second and 'rel="prev" href="?page=1"' in second


def test_events_filter_by_provider_and_kind(staff_client, events):
    html = staff_client.get("/events?provider=alpha&kind=breaker").content.decode()
    assert "20 events of alpha of kind breaker" in html
    assert "reason number 3<" in html and "reason number 6<" not in html  # 6 is beta's
    assert '<option value="alpha" selected>' in html


def test_an_htmx_request_gets_the_event_list_only(staff_client, events):
    response = staff_client.get("/events?kind=status&page=2", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="event-list")
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="event-list"') and "<html" not in html
    assert "80 events of kind status" in html and "page 2 of 2" in html
    assert 'href="?kind=status&amp;page=1"' in html


def test_an_unknown_kind_is_ignored_and_a_bad_page_shows_the_first(staff_client, events):
    html = staff_client.get("/events?kind=nope&page=abc").content.decode()
    assert "120 events" in html and "page 1 of 3" in html


def test_the_events_page_needs_staff(client, users, events):
    assert client.get("/events").status_code == 302
    client.force_login(users["plain"])
    assert client.get("/events").status_code == 403

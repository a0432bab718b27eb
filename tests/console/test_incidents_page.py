"""The console's incidents page: every incident with its timeline; acknowledge and mute
buttons for operators and admins (forms with CSRF), none for staff who only see."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from health.models import HealthEvent, Incident

pytestmark = pytest.mark.django_db


@pytest.fixture
def incident(db):  # type: ignore[no-untyped-def]
    now = timezone.now()
    row = Incident.objects.create(
        provider_name="alpha", opened_at=now - timedelta(minutes=5), reason="breaker open: unavailable"
    )
    HealthEvent.objects.create(
        provider_name="alpha",
        at=now - timedelta(minutes=5),
        kind="status",
        old="healthy",
        new="unhealthy",
        reason="success rate 40% over 10 calls",
        incident=row,
    )
    HealthEvent.objects.create(
        provider_name="alpha",
        at=now - timedelta(minutes=5),
        kind="incident",
        new="open",
        reason="breaker open: unavailable",
        incident=row,
    )
    Incident.objects.create(
        provider_name="beta",
        state="resolved",
        opened_at=now - timedelta(hours=2),
        resolved_at=now - timedelta(hours=1),
        reason="last probe failed",
        resolution="recovered: success rate 100%",
    )
    return row


def signed_in(client, user):  # type: ignore[no-untyped-def]
    client.force_login(user)
    return client


def test_staff_see_every_incident_with_its_timeline_and_no_buttons(client, users, incident):
    response = signed_in(client, users["staff"]).get("/incidents")
    html = response.content.decode()
    assert response.status_code == 200 and "<html" in html
    assert f'id="incident-{incident.pk}"' in html and "success rate 40% over 10 calls" in html
    assert "Timeline (2 events)" in html and "recovered: success rate 100%" in html
    assert "Acknowledge</button>" not in html and "Mute</button>" not in html


def test_operators_get_acknowledge_and_mute_forms_with_csrf(client, users, incident):
    html = signed_in(client, users["operator"]).get("/incidents").content.decode()
    assert f'action="/incidents/{incident.pk}/acknowledge"' in html
    assert f'action="/incidents/{incident.pk}/mute"' in html
    assert html.count("csrfmiddlewaretoken") >= 3  # one per form: acknowledge, two mutes


def test_filters_and_htmx_get_the_list_only(client, users, incident):
    staff = signed_in(client, users["staff"])
    html = staff.get("/incidents?state=resolved").content.decode()
    assert "beta" in html and f'id="incident-{incident.pk}"' not in html
    partial = staff.get("/incidents?provider=alpha", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="incident-list")
    body = partial.content.decode()
    assert body.lstrip().startswith('<section id="incident-list"') and "<html" not in body
    assert f'id="incident-{incident.pk}"' in body


def test_an_operator_acknowledges_and_mutes(client, users, incident):
    operator = signed_in(client, users["operator"])
    response = operator.post(f"/incidents/{incident.pk}/acknowledge")
    assert response.status_code == 303 and response["Location"] == "/incidents"
    incident.refresh_from_db()
    assert incident.acknowledged_by == "oper" and incident.acknowledged_at is not None
    assert HealthEvent.objects.filter(incident=incident, kind="incident", new="acknowledged", actor="oper").exists()

    muted = operator.post(
        f"/incidents/{incident.pk}/mute", {"minutes": "60"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="incident-list"
    )
    assert muted.status_code == 200 and f"Incident #{incident.pk} of alpha muted for 60 min." in muted.content.decode()
    incident.refresh_from_db()
    assert incident.muted_until is not None and incident.muted_until > timezone.now() + timedelta(minutes=59)

    refused = operator.post(
        f"/incidents/{incident.pk}/mute", {"minutes": "lots"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="incident-list"
    )
    assert refused.status_code == 400 and "Minutes must be from 0 to 10080." in refused.content.decode()
    twice = operator.post(
        f"/incidents/{incident.pk}/acknowledge", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="incident-list"
    )
    assert twice.status_code == 409 and "already acknowledged by oper" in twice.content.decode()


def test_after_any_action_the_list_comes_back_filtered_as_it_was(client, users, incident):
    operator = signed_in(client, users["operator"])
    page = operator.get("/incidents?state=open&provider=alpha").content.decode()
    assert page.count('<input type="hidden" name="state" value="open">') == 2  # acknowledge, mute
    assert page.count('<input type="hidden" name="provider" value="alpha">') == 2
    filters = {"state": "open", "provider": "alpha"}
    htmx = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "incident-list"}
    answers = [
        operator.post(f"/incidents/{incident.pk}/mute", {"minutes": "15", **filters}, **htmx),
        operator.post(f"/incidents/{incident.pk}/mute", {"minutes": "lots", **filters}, **htmx),  # refused
        operator.post(f"/incidents/{incident.pk}/acknowledge", filters, **htmx),
        operator.post(f"/incidents/{incident.pk}/acknowledge", filters, **htmx),  # already: 409
    ]
    assert [a.status_code for a in answers] == [200, 400, 200, 409]
    for answer in answers:  # the resolved incident of "beta" stays filtered out
        body = answer.content.decode()
        assert f'id="incident-{incident.pk}"' in body and "recovered: success rate 100%" not in body
        assert "?state=open&amp;provider=alpha" in body  # and the list keeps polling with them
    plain = operator.post(f"/incidents/{incident.pk}/mute", {"minutes": "0", **filters})
    assert plain.status_code == 303 and plain["Location"] == "/incidents?state=open&provider=alpha"


def test_staff_who_only_see_cannot_act_and_strangers_are_sent_to_sign_in(client, users, incident):
    assert signed_in(client, users["staff"]).post(f"/incidents/{incident.pk}/acknowledge").status_code == 403
    anonymous = Client()
    response = anonymous.get("/incidents")
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert signed_in(Client(), users["plain"]).get("/incidents").status_code == 403
    incident.refresh_from_db()
    assert incident.acknowledged_by == ""


def test_a_post_without_the_csrf_token_is_refused(users, incident):
    strict = signed_in(Client(enforce_csrf_checks=True), users["operator"])
    assert strict.post(f"/incidents/{incident.pk}/acknowledge").status_code == 403
    incident.refresh_from_db()
    assert incident.acknowledged_by == ""

"""Who may see and do what: anonymous → login, non-staff → 403, staff view, operators act,
superusers configure."""

from __future__ import annotations

import pytest

from .conftest import htmx

pytestmark = pytest.mark.django_db(transaction=True)

PAGES = ["/", "/providers/sim-a", "/events", "/analytics"]
ACTIONS = ["check", "reset", "force-open"]
CONFIG = ["enable", "disable", "maintenance/start", "maintenance/end"]


@pytest.mark.parametrize("path", PAGES)
async def test_anonymous_visitors_are_sent_to_the_login_page(simulated, async_client, path):
    response = await async_client.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={path}"


async def test_an_anonymous_htmx_request_is_told_to_go_to_the_login_page(simulated, async_client):
    response = await async_client.get("/", headers=htmx("board"))
    assert response.status_code == 200 and response["HX-Redirect"] == "/login/?next=/"


@pytest.mark.parametrize("path", PAGES)
async def test_a_signed_in_user_who_is_not_staff_gets_403(simulated, login, users, path):
    client = await login(users["plain"])
    response = await client.get(path)
    assert response.status_code == 403
    assert "Not allowed" in response.content.decode()


@pytest.mark.parametrize("path", PAGES)
async def test_staff_see_every_page(simulated, login, users, path):
    client = await login(users["staff"])
    assert (await client.get(path)).status_code == 200


async def test_staff_see_no_action_forms_and_their_posts_are_refused(simulated, login, users):
    client = await login(users["staff"])
    html = (await client.get("/providers/sim-a")).content.decode()
    assert "Members of the <strong>operators</strong> group act on it" in html
    assert 'action="/providers/sim-a/reset"' not in html
    for action in ACTIONS + CONFIG:
        response = await client.post(f"/providers/sim-a/{action}", {"minutes": "5"})
        assert response.status_code == 403, action


async def test_operators_act_but_do_not_change_the_configuration(simulated, login, users):
    client = await login(users["operator"])
    html = (await client.get("/providers/sim-a")).content.decode()
    assert 'action="/providers/sim-a/reset"' in html and 'action="/providers/sim-a/disable"' not in html
    for action in ACTIONS:
        response = await client.post(f"/providers/sim-a/{action}", {"minutes": "5"})
        assert response.status_code == 303, action
    for action in CONFIG:
        response = await client.post(f"/providers/sim-a/{action}", {"minutes": "5"})
        assert response.status_code == 403, action
    assert (await client.post("/demo/remove")).status_code == 403
    assert (await client.get("/discover")).status_code == 403


async def test_superusers_change_the_configuration(simulated, login, users):
    client = await login(users["admin"])
    html = (await client.get("/providers/sim-a")).content.decode()
    assert 'action="/providers/sim-a/disable"' in html and 'action="/providers/sim-a/maintenance/start"' in html
    for action in CONFIG:
        response = await client.post(f"/providers/sim-a/{action}", {"minutes": "5"})
        assert response.status_code == 303, action


async def test_actions_take_post_only(simulated, login, users):
    client = await login(users["admin"])
    assert (await client.get("/providers/sim-a/reset")).status_code == 405


async def test_an_unknown_provider_is_404_for_pages_and_actions(simulated, login, users):
    client = await login(users["admin"])
    assert (await client.get("/providers/nope")).status_code == 404
    assert (await client.post("/providers/nope/reset")).status_code == 404


async def test_the_layout_signs_out_with_a_post_and_the_console_is_closed_again(simulated, login, users):
    client = await login(users["staff"])
    html = (await client.get("/")).content.decode()
    assert '<form method="post" action="/logout/"' in html
    assert 'viewer <span class="tag">viewer</span>' in html  # who is signed in, and at what level
    assert (await client.post("/logout/")).status_code == 302
    assert (await client.get("/"))["Location"] == "/login/?next=/"

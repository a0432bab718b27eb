"""What the socket pushes is as true and as usable as the page: controls in a pushed fragment
post with the page's CSRF token, a forced-open breaker reads unavailable, times carry their
instant for the page to keep them ticking, a failed pull says so."""

from __future__ import annotations

import re

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient
from django.utils import timezone

from health import pages, pulls
from health.access import Role
from health.models import ProviderHealth
from providers.models import Provider

pytestmark = pytest.mark.django_db(transaction=True)

ADMIN = Role(True, True, True)
HEADER = re.compile(r"""<body hx-headers='\{"X-CSRFToken": "([A-Za-z0-9]+)"\}'>""")


async def test_a_pushed_fragments_controls_post_with_the_pages_csrf_header(simulated, users):
    client = AsyncClient(enforce_csrf_checks=True)
    await client.aforce_login(users["admin"])
    page = (await client.get("/providers/sim-a")).content.decode()
    found = HEADER.search(page)
    assert found, "the page's <body> gives htmx its CSRF token"
    fragment = await pages.render_provider_push("sim-a", ADMIN)  # as the socket sends it: no request
    assert 'hx-post="/providers/sim-a/disable"' in fragment
    assert "csrfmiddlewaretoken" not in fragment  # no token of its own, so none stale or empty
    # What htmx posts for the pushed form: its fields, and the header from <body>.
    headers = {"HX-Request": "true", "X-CSRFToken": found.group(1)}
    disabled = await client.post("/providers/sim-a/disable", {}, headers=headers)
    assert disabled.status_code == 200 and "sim-a is disabled." in disabled.content.decode()
    fragment = await pages.render_provider_push("sim-a", ADMIN)
    assert 'hx-post="/providers/sim-a/enable"' in fragment
    enabled = await client.post("/providers/sim-a/enable", {}, headers=headers)
    assert enabled.status_code == 200 and "sim-a is enabled." in enabled.content.decode()
    maintenance = await client.post("/providers/sim-a/maintenance/start", {"minutes": "5"}, headers=headers)
    assert maintenance.status_code == 200 and "sim-a is in maintenance until" in maintenance.content.decode()


async def test_a_forced_open_breaker_reads_unavailable_on_the_card(simulated):
    await simulated.engine.force_open("sim-a", 600)
    html, _ = await pages.render_dashboard_push(["sim-a"], ADMIN, shown=["sim-a", "sim-b"])
    card = html[html.index('<article id="card-sim-a"') : html.index("</article>")]
    assert re.search(r'data-field="status"><span class="dot" aria-hidden="true"></span>unhealthy<', card)
    assert "breaker forced open by an operator: unavailable" in card
    assert ">forced open<" in card


async def test_times_carry_their_instant_with_its_timezone_for_the_page_to_tick(simulated, login, users):
    at = timezone.now().replace(microsecond=0)

    @sync_to_async
    def checked() -> None:
        ProviderHealth.objects.update_or_create(
            provider=Provider.objects.get(name="sim-a"),
            defaults={"status": "healthy", "last_check_at": at, "last_check_ok": True},
        )

    await checked()
    client = await login(users["staff"])
    html = (await client.get("/")).content.decode()
    assert f'<time datetime="{at.isoformat()}" data-ago' in html and at.isoformat().endswith("+00:00")
    assert '<meta name="server-time" content="' in html
    fragment, _ = await pages.render_dashboard_push(["sim-a"], Role(True), shown=["sim-a", "sim-b"])
    assert f'<time datetime="{at.isoformat()}" data-ago' in fragment


def test_a_failed_pull_is_pushed_as_failed_with_the_message_replaced():
    state = {
        "model": "no-such-model",
        "status": "pulling manifest",
        "percent": 0.0,
        "completed": 0,
        "total": 0,
        "done": True,
        "error": "pull model manifest: file does not exist",
        "version": 7,
    }
    html = pages.render_pull("local", state)
    assert html.lstrip().startswith('<div id="pull-local"') and 'data-version="7"' in html
    assert '<span class="bad-text">failed</span>' in html and "pulling manifest" not in html
    flash = html[html.index('<div id="flash"') :]
    assert 'data-version="7"' in flash and 'hx-swap-oob="true"' in flash
    assert "The pull of no-such-model failed: pull model manifest: file does not exist" in flash
    assert "Pulling" not in html
    assert pulls.outcome({**state, "done": False}) is None


async def test_a_missing_model_and_a_rejected_credential_are_shown_on_the_card_with_why(simulated):
    from health import hooks
    from providers.engine.events import CooldownStarted
    from providers.engine.store import Cooldown

    engine = simulated.engine
    await engine.store.set_cooldown("sim-a", Cooldown(None, "model_missing", None, "http_404", scope="sim-large"))
    await engine.store.set_cooldown("sim-b", Cooldown("key-b", "rejected", None, "http_403"))
    sink = hooks.EventSink()  # what a worker's sink writes when the engine emits them
    sink(
        CooldownStarted(
            engine.clock.time(),
            "sim-a",
            None,
            "model_missing",
            None,
            "http_404",
            scope="sim-large",
            provider="sim-a",
            model="sim-large",
        )
    )
    sink(CooldownStarted(engine.clock.time(), "sim-b", "key-b", "rejected", None, "http_403"))
    await sink.written()
    html, _ = await pages.render_dashboard_push(["sim-a", "sim-b"], ADMIN, shown=["sim-a", "sim-b"])
    card_a = html[html.index('<article id="card-sim-a"') :]
    card_a = card_a[: card_a.index("</article>")]
    assert "Model sim-large missing on the provider (HTTP 404)" in card_a
    card_b = html[html.index('<article id="card-sim-b"') :]
    card_b = card_b[: card_b.index("</article>")]
    assert "Credential key-b rejected by the provider (HTTP 403), until reset" in card_b

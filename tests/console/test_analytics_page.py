from __future__ import annotations

import re
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from analytics.recorder import flush_all
from health.models import HealthEvent
from providers.models import AuditLog, Provider
from tests.conftest import auth
from tests.fakes.openai import API_KEY, FakeOpenAI

from .conftest import htmx

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def traffic(configure, rt, gateway, key):
    """Three requests through the gateway: two served, one failed over to the second provider."""
    with FakeOpenAI() as first, FakeOpenAI() as second:
        await configure(
            {
                "providers": [
                    {
                        "name": "first",
                        "kind": "openai",
                        "base_url": first.url + "/v1",
                        "api_key": API_KEY,
                        "models": ["gpt-4o-mini"],
                        "retry": {"max_attempts": 1},
                    },
                    {
                        "name": "second",
                        "kind": "openai",
                        "base_url": second.url + "/v1",
                        "api_key": API_KEY,
                        "models": ["gpt-4o-mini"],
                        "priority": 2,
                    },
                ],
                "routes": [
                    {
                        "name": "chat",
                        "capability": "chat",
                        "targets": [
                            {"provider": "first", "model": "gpt-4o-mini"},
                            {"provider": "second", "model": "gpt-4o-mini"},
                        ],
                    }
                ],
            }
        )
        body = {"model": "chat", "messages": [{"role": "user", "content": "hello"}]}
        for _ in range(2):
            assert (await gateway.post("/v1/chat/completions", json=body, headers=auth(key))).status_code == 200
        first.fault(status=500, times=1)
        response = await gateway.post("/v1/chat/completions", json=body, headers=auth(key))
        assert response.headers["x-gateway-provider"] == "second"
        await flush_all()


async def test_the_analytics_page_shows_totals_charts_and_providers_side_by_side(traffic, login, users):
    client = await login(users["staff"])
    response = await client.get("/analytics?window=24h")
    html = response.content.decode()
    assert response.status_code == 200 and "<html" in html and 'id="analytics-body"' in html
    assert '<span class="big" data-field="requests">3</span><span class="sub">in the last 24 hours</span>' in html
    assert '<span class="big">1</span><span class="sub">33.3% of requests</span>' in html  # the failover
    assert re.search(
        r'aria-label="Requests per hour over the last 24 hours\. succeeded 3 in all, at most 3 in a step; failed 0',
        html,
    )
    assert re.search(r'aria-label="first attempts per [^:]+: \d+ steps, latest 3,', html)  # its sparkline
    comparison = html[html.index('id="provider-comparison"') : html.index('id="routes-title"')]
    assert (
        '<a href="/providers/first">first</a>' in comparison and '<a href="/providers/second">second</a>' in comparison
    )
    # among the top errors: the plain name, the raw key beside it
    assert 'Provider internal error (<code class="error-key">http_500</code>)' in html
    assert 'href="/api/analytics/export.csv?window=24h&amp;by=provider"' in html


async def test_the_window_tabs_get_the_body_partial(traffic, login, users):
    client = await login(users["staff"])
    response = await client.get("/analytics?window=1h", headers=htmx("analytics-body"))
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="analytics-body"') and "<html" not in html
    assert (
        'href="?window=1h" hx-get="?window=1h" hx-target="#analytics-body" hx-swap="outerHTML" '
        'hx-push-url="true" aria-current="true"' in html
    )
    assert "Requests per minute over the last 1 hour" in html


async def test_an_empty_window_and_an_unknown_one(configure, rt, login, users):
    client = await login(users["staff"])
    html = (await client.get("/analytics?window=1y")).content.decode()
    # no data at all: the page opens on an hour, a window that fills while one watches
    assert "over the last 1 hour" in html and "No requests in this window." in html
    assert 'href="?window=1h" hx-get="?window=1h"' in html and "Not monitored" not in html


async def test_the_csv_export_works_with_the_console_session(traffic, login, users):
    client = await login(users["staff"])
    response = await client.get("/api/analytics/export.csv?window=24h&by=provider")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "first" in response.content.decode()


async def test_without_a_window_the_page_opens_on_the_smallest_that_holds_all_the_data(traffic, login, users):
    client = await login(users["staff"])
    html = (await client.get("/analytics")).content.decode()
    # three requests made a moment ago: five minutes of bars, not a dot at the edge of a day
    assert '<span class="sub">in the last 5 minutes</span>' in html
    assert re.search(r'href="\?window=5m"[^>]*aria-current="true"', html)
    assert '<rect class="bar series-ok"' in html and '<rect class="bar series-bad"' not in html
    assert (
        'hx-get="?window=5m" hx-trigger="every 15s, console:visible from:body" data-poll' in html
    )  # the refresh keeps the window
    assert 'id="chart-data"' in html and "No requests in this window." not in html


async def test_the_live_refresh_gets_only_its_fragment(traffic, login, users):
    client = await login(users["staff"])
    response = await client.get("/analytics?window=1h", headers=htmx("analytics-live"))
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="analytics-live"') and 'class="tabs"' not in html
    assert 'hx-trigger="every 15s, console:visible from:body" data-poll hx-target="this" hx-swap="outerHTML"' in html
    assert '<span class="big" data-field="requests">3</span><span class="sub">in the last 1 hour</span>' in html


async def test_costs_carry_the_configured_currency(traffic, login, users, settings):
    settings.PRICE_CURRENCY = "EUR"
    client = await login(users["staff"])
    html = (await client.get("/analytics?window=1h")).content.decode()
    assert '<span class="unit">EUR</span>' in html and "Costs in EUR." in html
    comparison = html[html.index('id="provider-comparison"') : html.index('id="routes-title"')]
    assert re.search(r'<td class="num">[\d.,<> ]+ EUR</td>', comparison) and " USD<" not in html


def audit_two_actions() -> None:
    AuditLog.objects.create(
        actor="alice", action="disable", object_type="provider", object_name="second", changes={"enabled": [1, 0]}
    )
    AuditLog.objects.create(actor="alice", action="check_now", object_type="provider", object_name="second")


async def test_configuration_changes_are_marked_on_the_charts_and_listed(traffic, login, users):
    await sync_to_async(audit_two_actions)()
    client = await login(users["staff"])
    html = (await client.get("/analytics?window=1h")).content.decode()
    # a marker on each of the four charts (beside those of the configuration the fixture imported)
    assert html.count("alice disabled provider second</title><line") == 4
    assert re.search(r"\d+ changes marked: [^\"]*alice disabled provider second", html)
    listed = html[html.index('id="config-changes"') : html.index("</ol>")]
    assert "<li><time" in listed and "alice disabled provider second" in listed
    assert "check" not in listed  # a manual check changes nothing


def flap_first() -> None:
    """first: healthy 40 to 30 minutes ago, unhealthy for 10 minutes, healthy since."""
    now = timezone.now()
    first = Provider.objects.get(name="first")
    HealthEvent.objects.all().delete()
    for minutes_ago, old, new in (
        (40, "unknown", "healthy"),
        (30, "healthy", "unhealthy"),
        (20, "unhealthy", "healthy"),
    ):
        HealthEvent.objects.create(
            provider=first,
            provider_name="first",
            at=now - timedelta(minutes=minutes_ago),
            kind=HealthEvent.Kind.STATUS,
            old=old,
            new=new,
        )


async def test_each_provider_shows_its_uptime_in_the_window(traffic, login, users):
    await sync_to_async(flap_first)()
    client = await login(users["staff"])
    html = (await client.get("/analytics?window=1h")).content.decode()
    row = html[html.index('<a href="/providers/first">') :]
    uptime = re.search(r'data-field="uptime"[^>]*>([^<]+)</td>', row).group(1)
    assert 74.0 <= float(uptime.rstrip("%")) <= 76.0  # down 10 of the 40 monitored minutes

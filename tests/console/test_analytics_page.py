from __future__ import annotations

import re

import pytest

from analytics.recorder import flush_all
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
    response = await client.get("/analytics")
    html = response.content.decode()
    assert response.status_code == 200 and "<html" in html and 'id="analytics-body"' in html
    assert '<span class="big">3</span><span class="sub">in the last 24 hours</span>' in html
    assert '<span class="big">1</span><span class="sub">33.3% of requests</span>' in html  # the failover
    assert re.search(r'aria-label="Requests per (hour|\d+ minutes) over the last 24 hours\. requests from 0 to 3', html)
    assert re.search(r'aria-label="first attempts per [^:]+: \d+ steps, latest 3,', html)  # its sparkline
    comparison = html[html.index('id="provider-comparison"') : html.index('id="routes-title"')]
    assert (
        '<a href="/providers/first">first</a>' in comparison and '<a href="/providers/second">second</a>' in comparison
    )
    assert "http_500" in html  # among the top errors
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
    assert "over the last 24 hours" in html and "No requests in this window." in html


async def test_the_csv_export_works_with_the_console_session(traffic, login, users):
    client = await login(users["staff"])
    response = await client.get("/api/analytics/export.csv?window=24h&by=provider")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "first" in response.content.decode()

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from health.models import HealthEvent, ProbeResult
from providers.models import Provider

from .conftest import htmx

pytestmark = pytest.mark.django_db(transaction=True)


@sync_to_async
def seed_probes(name: str, hours: float, every_s: int = 600) -> None:
    provider = Provider.objects.get(name=name)
    now = timezone.now()
    count = int(hours * 3600 / every_s)
    ProbeResult.objects.bulk_create(
        [
            ProbeResult(
                provider=provider,
                at=now - timedelta(seconds=every_s * i),
                ok=i % 5 != 0,
                latency_ms=100.0 + (i % 7) * 10,
            )
            for i in range(count)
        ]
    )


async def test_the_provider_page_shows_state_charts_events_and_actions(simulated, login, users):
    await seed_probes("sim-a", 24)
    await sync_to_async(HealthEvent.objects.create)(
        provider_name="sim-a",
        at=timezone.now(),
        kind="status",
        old="healthy",
        new="degraded",
        reason="success rate 80% over 10 calls (70-90%)",
    )
    client = await login(users["operator"])
    response = await client.get("/providers/sim-a")
    html = response.content.decode()
    assert response.status_code == 200 and "<html" in html
    assert 'id="summary-sim-a"' in html and 'id="charts"' in html and 'id="events-sim-a"' in html
    assert 'ws-connect="/ws/health/?provider=sim-a"' in html
    assert "Latency of sim-a over the last 24 hours" in html  # the chart's aria-label
    assert "144 checks in the last 24 hours" in html
    assert "healthy → degraded" in html and "success rate 80% over 10 calls" in html
    assert 'href="?window=7d"' in html and 'href="?window=1h"' in html
    assert "Check now" in html and "Force open" in html


@pytest.mark.parametrize(
    ("window", "label", "checks"), [("1h", "1 hour", 6), ("24h", "24 hours", 144), ("7d", "7 days", 144)]
)
async def test_the_charts_partial_follows_the_window(simulated, login, users, window, label, checks):
    await seed_probes("sim-a", 24)
    client = await login(users["staff"])
    response = await client.get(f"/providers/sim-a?window={window}", headers=htmx("charts"))
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="charts"') and "<html" not in html
    assert f"over the last {label}" in html and f"{checks} checks in the last {label}" in html
    assert (
        f'href="?window={window}" hx-get="?window={window}" hx-target="#charts" hx-swap="outerHTML" '
        f'hx-push-url="true" aria-current="true"' in html
    )


async def test_an_htmx_request_without_a_known_target_gets_the_summary(simulated, login, users):
    client = await login(users["staff"])
    html = (await client.get("/providers/sim-a", headers=htmx())).content.decode()
    assert html.lstrip().startswith('<section id="summary-sim-a"')


async def test_the_resync_partial_carries_every_live_part(simulated, login, users):
    client = await login(users["staff"])
    html = (await client.get("/providers/sim-a", headers=htmx("resync"))).content.decode()
    for part in ('id="summary-sim-a"', 'id="config-sim-a"', 'id="events-sim-a"', 'id="server-sim-a"'):
        assert part in html
    assert html.count('hx-swap-oob="true"') == 4


async def test_the_events_partial_of_the_provider(simulated, login, users):
    await sync_to_async(HealthEvent.objects.create)(
        provider_name="sim-a",
        at=timezone.now(),
        kind="breaker",
        old="closed",
        new="open",
        reason="5 consecutive failures",
    )
    client = await login(users["staff"])
    html = (await client.get("/providers/sim-a", headers=htmx("events-sim-a"))).content.decode()
    assert html.lstrip().startswith('<div id="events-sim-a"') and "5 consecutive failures" in html


async def test_an_unknown_window_falls_back_to_24_hours(simulated, login, users):
    client = await login(users["staff"])
    html = (await client.get("/providers/sim-a?window=1y")).content.decode()
    assert "over the last 24 hours" in html


async def test_the_charts_add_the_gateways_calls_from_the_analytics(configure, rt, gateway, key, login, users):
    from analytics.recorder import flush_all
    from tests.conftest import auth
    from tests.fakes.openai import API_KEY, FakeOpenAI

    with FakeOpenAI() as fake:
        await configure(
            {
                "providers": [
                    {
                        "name": "up",
                        "kind": "openai",
                        "base_url": fake.url + "/v1",
                        "api_key": API_KEY,
                        "models": ["gpt-4o-mini"],
                    }
                ]
            }
        )
        body = {"model": "up/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(2):
            assert (await gateway.post("/v1/chat/completions", json=body, headers=auth(key))).status_code == 200
        await flush_all()
    client = await login(users["staff"])
    html = (await client.get("/providers/up?window=1h", headers=htmx("charts"))).content.decode()
    assert "; 2 gateway calls." in html
    assert 'class="line series-c"' in html  # the calls' line (or dot) on both charts
    assert "calls p95 from" in html and "calls from 100% to 100%" in html

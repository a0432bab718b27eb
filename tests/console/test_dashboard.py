from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from health.models import HealthEvent, ProbeResult, ProviderHealth
from providers.models import Provider

from .conftest import htmx

pytestmark = pytest.mark.django_db(transaction=True)


@sync_to_async
def seed_health(name: str, status: str, score: float, *, failed_last: bool = False) -> None:
    provider = Provider.objects.get(name=name)
    now = timezone.now()
    ProviderHealth.objects.update_or_create(
        provider=provider,
        defaults={
            "status": status,
            "score": score,
            "score_parts": {"probe": 40, "latency": 30, "reliability": 20, "state_factor": 1.0},
            "last_check_at": now,
            "last_check_ok": not failed_last,
            "last_check_ms": 84.0,
            "last_error": "http_500: upstream exploded" if failed_last else "",
        },
    )
    ProbeResult.objects.bulk_create(
        [
            ProbeResult(
                provider=provider,
                at=now - timedelta(seconds=30 * i),
                ok=not (failed_last and i == 0),
                latency_ms=80.0 + i,
                error="http_500" if failed_last and i == 0 else "",
            )
            for i in range(5)
        ]
    )


async def test_the_dashboard_shows_a_card_per_provider_with_its_state(simulated, login, users):
    await seed_health("sim-a", "healthy", 90.0)
    await seed_health("sim-b", "unhealthy", 20.0, failed_last=True)
    client = await login(users["staff"])
    response = await client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<html lang="en"' in html and 'ws-connect="/ws/health/"' in html
    assert 'id="card-sim-a"' in html and 'id="card-sim-b"' in html
    assert "http_500: upstream exploded" in html
    assert "Probe</dt><dd>40" in html  # the score's parts, behind the expander
    assert "last 5 checks, 5 ok, 0 slow, 0 failed" in html  # the heartbeat's label
    assert "last 5 checks, 4 ok, 0 slow, 1 failed" in html
    assert 'class="sparkline"' in html
    assert "2 providers" in html


async def test_an_htmx_request_gets_the_board_partial_only(simulated, login, users):
    await seed_health("sim-a", "healthy", 90.0)
    client = await login(users["staff"])
    response = await client.get("/?status=healthy", headers=htmx("board"))
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="board"')
    assert "<html" not in html
    assert 'id="card-sim-a"' in html and 'id="card-sim-b"' not in html


async def test_the_resync_partial_swaps_every_live_part_out_of_band(simulated, login, users):
    client = await login(users["staff"])
    html = (await client.get("/", headers=htmx("resync"))).content.decode()
    for part in ('id="board"', 'id="counts"', 'id="recent-events"', 'id="demo-banner"'):
        assert part in html
    assert html.count('hx-swap-oob="true"') == 4 and "<html" not in html


async def test_filters_and_worst_first_sort_are_get_parameters_with_real_links(simulated, login, users):
    await seed_health("sim-a", "healthy", 90.0)
    await seed_health("sim-b", "unhealthy", 20.0, failed_last=True)
    client = await login(users["staff"])
    by_priority = (await client.get("/")).content.decode()
    assert by_priority.index('id="card-sim-a"') < by_priority.index('id="card-sim-b"')
    worst = (await client.get("/?sort=worst")).content.decode()
    assert worst.index('id="card-sim-b"') < worst.index('id="card-sim-a"')
    assert 'href="?status=unhealthy&amp;sort=worst"' in worst
    embeddings = (await client.get("/?capability=embeddings")).content.decode()
    assert 'id="card-sim-b"' in embeddings and 'id="card-sim-a"' not in embeddings
    unknown = (await client.get("/?capability=nonsense&status=bogus&sort=x")).content.decode()
    assert 'id="card-sim-a"' in unknown and 'id="card-sim-b"' in unknown


async def test_the_demo_banner_offers_removal_to_superusers_only(configure, rt, login, users):
    from providers.demo import DEMO_CONFIG, load_demo

    assert DEMO_CONFIG
    await sync_to_async(load_demo)()
    client = await login(users["staff"])
    html = (await client.get("/")).content.decode()
    assert "Demo providers are loaded" in html and "Remove demo" not in html
    client = await login(users["admin"])
    html = (await client.get("/")).content.decode()
    assert "Remove demo" in html


async def test_recent_changes_list_the_latest_events(simulated, login, users):
    await sync_to_async(HealthEvent.objects.create)(
        provider_name="sim-a",
        at=timezone.now(),
        kind="breaker",
        old="closed",
        new="open",
        reason="5 consecutive failures",
    )
    client = await login(users["staff"])
    html = (await client.get("/")).content.decode()
    assert "closed → open" in html and "5 consecutive failures" in html

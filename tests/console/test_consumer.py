"""The websocket: who may connect, and the fragments each group message produces."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from health.events import record_action
from health.models import ProviderHealth
from project.asgi import application
from providers.models import Provider

from .conftest import settle

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://testserver")


async def session_cookie(async_client, user) -> tuple[bytes, bytes]:  # type: ignore[no-untyped-def]
    await async_client.aforce_login(user)
    return (b"cookie", f"sessionid={async_client.cookies['sessionid'].value}".encode())


async def connect(path: str = "/ws/health/", *headers: tuple[bytes, bytes]) -> tuple[WebsocketCommunicator, bool]:
    communicator = WebsocketCommunicator(application, path, headers=list(headers))
    connected, _ = await communicator.connect(timeout=5)
    return communicator, connected


async def test_an_anonymous_socket_is_refused(simulated):
    communicator, connected = await connect("/ws/health/", ORIGIN)
    assert connected is False
    await communicator.disconnect()


async def test_a_non_staff_socket_is_refused(simulated, async_client, users):
    communicator, connected = await connect("/ws/health/", ORIGIN, await session_cookie(async_client, users["plain"]))
    assert connected is False
    await communicator.disconnect()


async def test_a_socket_from_a_foreign_origin_is_refused_even_with_a_staff_session(simulated, async_client, users):
    cookie = await session_cookie(async_client, users["staff"])
    communicator, connected = await connect("/ws/health/", (b"origin", b"https://evil.example"), cookie)
    assert connected is False
    await communicator.disconnect()
    communicator, connected = await connect("/ws/health/", cookie)  # no Origin at all
    assert connected is False
    await communicator.disconnect()


async def test_a_health_update_pushes_the_card_with_its_id(simulated, async_client, users):
    communicator, connected = await connect("/ws/health/", ORIGIN, await session_cookie(async_client, users["staff"]))
    assert connected
    await sync_to_async(ProviderHealth.objects.create)(
        provider=await sync_to_async(Provider.objects.get)(name="sim-a"), status="unhealthy", score=12.0,
        last_check_at=timezone.now(), last_check_ok=False, last_error="http_503: overloaded")
    await simulated.engine.force_open("sim-a", 60)
    await settle(simulated)
    await get_channel_layer().group_send("health", {"type": "health.update", "provider": "sim-a"})
    html = await communicator.receive_from(timeout=5)
    assert '<article id="card-sim-a"' in html and 'hx-swap-oob="true"' in html
    assert "unhealthy" in html and "forced open" in html and "http_503: overloaded" in html
    assert 'id="card-sim-b"' not in html  # only what changed
    assert 'id="counts"' in html and 'id="recent-events"' in html
    await communicator.disconnect()


async def test_updates_arriving_together_are_sent_as_one_message(simulated, async_client, users):
    communicator, connected = await connect("/ws/health/", ORIGIN, await session_cookie(async_client, users["staff"]))
    assert connected
    layer = get_channel_layer()
    for name in ("sim-a", "sim-b", "sim-a"):
        await layer.group_send("health", {"type": "health.update", "provider": name})
    html = await communicator.receive_from(timeout=5)
    assert html.count('<article id="card-sim-a"') == 1 and html.count('<article id="card-sim-b"') == 1
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


async def test_a_provider_that_is_gone_is_deleted_from_the_dashboard(simulated, async_client, users):
    communicator, connected = await connect("/ws/health/", ORIGIN, await session_cookie(async_client, users["staff"]))
    assert connected
    await get_channel_layer().group_send("health", {"type": "health.update", "provider": "removed"})
    html = await communicator.receive_from(timeout=5)
    assert '<div id="card-removed" hx-swap-oob="delete"></div>' in html
    await communicator.disconnect()


async def test_the_provider_page_socket_gets_its_summary_and_events(simulated, async_client, users):
    cookie = await session_cookie(async_client, users["staff"])
    communicator, connected = await connect("/ws/health/?provider=sim-a", ORIGIN, cookie)
    assert connected
    layer = get_channel_layer()
    await layer.group_send("health", {"type": "health.update", "provider": "sim-b"})  # another provider
    assert await communicator.receive_nothing(timeout=0.3)
    await sync_to_async(record_action)("sim-a", "reset_breaker", "oper", "by hand")
    html = await communicator.receive_from(timeout=5)
    assert 'id="summary-sim-a"' in html and 'id="config-sim-a"' in html and 'id="events-sim-a"' in html
    assert "reset_breaker" in html and "by hand" in html
    assert "card-sim-a" not in html
    await communicator.disconnect()


async def test_pull_progress_reaches_only_that_providers_page(simulated, async_client, users):
    cookie = await session_cookie(async_client, users["staff"])
    page, connected = await connect("/ws/health/?provider=sim-a", ORIGIN, cookie)
    assert connected
    dashboard, connected = await connect("/ws/health/", ORIGIN, cookie)
    assert connected
    await get_channel_layer().group_send("provider.sim-a", {
        "type": "pull.progress", "provider": "sim-a", "model": "llama3.2", "status": "pulling 6a0746a1ec1a",
        "percent": 42.5, "completed": 425, "total": 1000, "done": False, "error": ""})
    html = await page.receive_from(timeout=5)
    assert html.lstrip().startswith('<div id="pull-sim-a"') and 'value="42.5"' in html and "43%" in html
    assert "pulling 6a0746a1ec1a" in html
    assert await dashboard.receive_nothing(timeout=0.3)
    await page.disconnect()
    await dashboard.disconnect()


async def test_what_a_client_sends_is_ignored(simulated, async_client, users):
    communicator, connected = await connect("/ws/health/", ORIGIN, await session_cookie(async_client, users["staff"]))
    assert connected
    await communicator.send_to(text_data='{"HEADERS": {}}')
    assert await communicator.receive_nothing(timeout=0.2)
    await communicator.disconnect()
    await asyncio.sleep(0)

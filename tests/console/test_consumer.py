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
    """A handshake with these headers, and the Host a browser always sends (unless given)."""
    sent = list(headers)
    if not any(name == b"host" for name, _ in sent):
        sent.append((b"host", b"testserver"))
    communicator = WebsocketCommunicator(application, path, headers=sent)
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
        provider=await sync_to_async(Provider.objects.get)(name="sim-a"),
        status="unhealthy",
        score=12.0,
        last_check_at=timezone.now(),
        last_check_ok=False,
        last_error="http_503: overloaded",
    )
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
    await get_channel_layer().group_send(
        "provider.sim-a",
        {
            "type": "pull.progress",
            "provider": "sim-a",
            "model": "llama3.2",
            "status": "pulling 6a0746a1ec1a",
            "percent": 42.5,
            "completed": 425,
            "total": 1000,
            "done": False,
            "error": "",
        },
    )
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


async def closed_with(communicator: WebsocketCommunicator) -> int | None:
    """The close code the server sent next (None if it sent a fragment instead)."""
    message = await communicator.receive_output(timeout=5)
    return message.get("code") if message["type"] == "websocket.close" else None


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        (b"http://testserver:8001", b"testserver"),  # another port of the same host
        (b"http://testserver", b"testserver:8000"),
        (b"http://testserver:8000", b"testserver:8001"),
        (b"https://testserver", b"testserver"),  # another scheme (the socket is ws, not wss)
        (b"http://testserver.evil.example", b"testserver"),
    ],
)
async def test_a_socket_from_another_origin_of_the_same_host_is_refused(simulated, async_client, users, origin, host):
    cookie = await session_cookie(async_client, users["staff"])
    communicator, connected = await connect("/ws/health/", (b"origin", origin), (b"host", host), cookie)
    assert connected is False
    await communicator.disconnect()


async def test_a_socket_from_the_same_scheme_host_and_port_is_accepted(simulated, async_client, users):
    cookie = await session_cookie(async_client, users["staff"])
    communicator, connected = await connect(
        "/ws/health/", (b"origin", b"http://testserver:8000"), (b"host", b"testserver:8000"), cookie
    )
    assert connected
    await communicator.disconnect()


async def test_signing_out_closes_the_socket(simulated, async_client, users):
    communicator, connected = await connect("/ws/health/", ORIGIN, await session_cookie(async_client, users["staff"]))
    assert connected
    response = await async_client.post("/logout/")
    assert response.status_code in (200, 302)
    assert await closed_with(communicator) == 4401
    await get_channel_layer().group_send("health", {"type": "health.update", "provider": "sim-a"})
    assert await communicator.receive_nothing(timeout=0.3)  # unsubscribed: nothing more comes
    await communicator.disconnect()


async def test_a_user_who_loses_staff_is_disconnected(simulated, async_client, users):
    user = users["operator"]
    communicator, connected = await connect("/ws/health/", ORIGIN, await session_cookie(async_client, user))
    assert connected

    @sync_to_async
    def demote():
        user.is_staff = False
        user.save()

    await demote()
    assert await closed_with(communicator) == 4401
    await communicator.disconnect()


async def test_a_session_that_ended_without_a_signal_gets_no_further_push(simulated, async_client, users):
    from django.contrib.sessions.models import Session

    communicator, connected = await connect("/ws/health/", ORIGIN, await session_cookie(async_client, users["staff"]))
    assert connected
    await sync_to_async(lambda: Session.objects.all().delete())()  # expired and cleared, say
    await get_channel_layer().group_send("health", {"type": "health.update", "provider": "sim-a"})
    assert await closed_with(communicator) == 4401  # checked before the push: no fragment
    await communicator.disconnect()


@sync_to_async
def set_status(name: str, status: str) -> None:
    ProviderHealth.objects.update_or_create(provider=Provider.objects.get(name=name), defaults={"status": status})


async def test_a_filtered_dashboard_drops_a_card_that_stops_matching_and_takes_one_that_starts(
    simulated, async_client, users
):
    await set_status("sim-a", "healthy")
    await set_status("sim-b", "healthy")
    cookie = await session_cookie(async_client, users["staff"])
    communicator, connected = await connect("/ws/health/?status=healthy", ORIGIN, cookie)
    assert connected
    await set_status("sim-a", "unhealthy")
    await get_channel_layer().group_send("health", {"type": "health.update", "provider": "sim-a"})
    html = await communicator.receive_from(timeout=5)
    assert '<section id="board"' in html and 'hx-swap-oob="true"' in html  # the whole list, again
    assert 'id="card-sim-b"' in html and 'id="card-sim-a"' not in html
    # The page switched to the unhealthy ones (its URL changed): the socket follows.
    await communicator.send_to(text_data='{"view": "?status=unhealthy"}')
    await set_status("sim-b", "unhealthy")
    await get_channel_layer().group_send("health", {"type": "health.update", "provider": "sim-b"})
    html = await communicator.receive_from(timeout=5)
    assert 'id="card-sim-a"' in html and 'id="card-sim-b"' in html and '<section id="board"' in html
    await set_status("sim-b", "healthy")
    await get_channel_layer().group_send("health", {"type": "health.update", "provider": "sim-b"})
    html = await communicator.receive_from(timeout=5)
    assert 'id="card-sim-a"' in html and 'id="card-sim-b"' not in html
    await communicator.disconnect()

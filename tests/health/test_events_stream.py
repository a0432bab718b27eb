"""GET /api/events/stream: server-sent events, read as a client reads them (httpx, streaming)
from the in-process ASGI application."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connections
from django.utils import timezone

from health.events import GROUP, publish_sync, record_event
from health.failures import failure_log
from project.asgi import application
from project.channel_layers import redis_channel_layer
from tests.conftest import auth
from tests.console.conftest import SIMULATED
from tests.fakes.openai import API_KEY, FakeOpenAI

from .sse import Event, EventReader, StreamingASGITransport

pytestmark = pytest.mark.django_db(transaction=True)

# These two look at the in-process layer (its `groups`) or close a stream while the test's
# own event loop (a new one per test) holds the layer; channels_redis binds a layer's receive
# to one loop, which a server process has. The Redis layer: the tests at the end of this file.
in_memory_layer = pytest.mark.skipif(
    type(get_channel_layer()).__name__ != "InMemoryChannelLayer", reason="inspects the in-process channel layer"
)

REDIS_DB9 = "redis://127.0.0.1:6379/9"


@pytest.fixture
async def sim(configure, rt):
    await configure(SIMULATED)
    await rt.refresh(force=True)
    return rt


@pytest.fixture
async def streams() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=StreamingASGITransport(application), base_url="http://testserver", timeout=30
    ) as client:
        yield client


@contextlib.asynccontextmanager
async def open_stream(
    streams: httpx.AsyncClient, key: str, path: str = "/api/events/stream", **headers: str
) -> AsyncIterator[EventReader]:
    async with streams.stream("GET", path, headers={**auth(key), **headers}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        reader = EventReader(response)
        assert await reader.comment() == "events"  # subscribed: what happens from now on arrives
        yield reader


async def until(reader: EventReader, name: str) -> Event:
    while (event := await reader.next()).event != name:
        pass
    return event


async def test_a_new_event_arrives_with_its_contract_name_and_fields(sim, gateway, streams, key):
    async with open_stream(streams, key) as reader:
        assert (await gateway.post("/api/breakers/sim-a/force-open", headers=auth(key))).status_code == 200
        got = {e.event: e for e in [await reader.next(), await reader.next()]}
    assert set(got) == {"breaker.opened", "provider.action"}
    opened = got["breaker.opened"]
    assert opened.data["provider"] == "sim-a" and opened.data["from"] == "closed"
    assert opened.data["to"] == "forced_open" and opened.data["at"].endswith("Z")
    assert {"provider", "from", "to", "reason", "at"} <= set(opened.data)
    assert got["provider.action"].data["to"] == "force_open"
    listed = (await gateway.get("/api/events?limit=2", headers=auth(key))).json()["events"]
    assert {e["id"] for e in listed} == {opened.id, got["provider.action"].id}  # the list and the stream agree


async def test_a_resumed_stream_sends_what_was_missed_once_and_in_order_then_live_ones(sim, gateway, streams, key):
    async def reset() -> None:
        assert (await gateway.post("/api/health/sim-a/reset", headers=auth(key))).status_code == 200

    async with open_stream(streams, key) as reader:
        await reset()
        first = await reader.next()
    assert first.event == "health.reset"
    await reset()
    await reset()  # both while no stream is open
    async with open_stream(streams, key, **{"Last-Event-ID": str(first.id)}) as reader:
        missed = [await reader.next(), await reader.next()]
        await reset()
        live = await reader.next()
    ids = [e.id for e in [first, *missed, live]]
    assert ids == sorted(ids) and len(set(ids)) == 4
    listed = (await gateway.get("/api/events?kind=health.reset", headers=auth(key))).json()["events"]
    assert [e["id"] for e in listed] == ids[::-1]
    async with open_stream(streams, key, f"/api/events/stream?last_event_id={missed[0].id}") as reader:
        assert (await reader.next()).id == missed[1].id


async def test_an_id_past_the_newest_resumes_from_now(sim, gateway, streams, key):
    async with open_stream(streams, key, **{"Last-Event-ID": "999999999"}) as reader:
        await gateway.post("/api/health/sim-a/reset", headers=auth(key))
        assert (await reader.next()).event == "health.reset"


async def test_an_event_written_by_another_thread_reaches_the_stream(sim, streams, key):
    def elsewhere() -> int:
        event = record_event("sim-a", "status", "healthy", "degraded", "p95 4100 ms over target 3000 ms")
        publish_sync({"type": "health.update", "provider": "sim-a"})
        return event.pk

    async with open_stream(streams, key) as reader:
        written = await sync_to_async(elsewhere, thread_sensitive=False)()
        event = await reader.next()
    assert (event.id, event.event) == (written, "provider.status")
    assert event.data["from"] == "healthy" and event.data["to"] == "degraded"
    assert event.data["reason"] == "p95 4100 ms over target 3000 ms"


async def test_an_event_committed_after_a_later_one_is_still_sent_once(sim, streams, key):
    """PostgreSQL may make id 11 visible before id 10 (two transactions committing in the other
    order): the stream reads 11, and sends 10 when it appears."""
    from health.models import HealthEvent

    def write(offset: int) -> int:
        last = HealthEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
        event = HealthEvent.objects.create(
            id=last + offset, provider_name="sim-a", kind="action", new="check_now", at=timezone.now()
        )
        publish_sync({"type": "health.event", "provider": "sim-a", "event_id": event.pk})
        return event.pk

    async with open_stream(streams, key) as reader:
        later = await sync_to_async(write, thread_sensitive=False)(2)
        assert (await reader.next()).id == later
        earlier = await sync_to_async(write, thread_sensitive=False)(-1)
        assert (await reader.next()).id == earlier == later - 1
        newest = await sync_to_async(write, thread_sensitive=False)(1)
        assert (await reader.next()).id == newest


async def test_filters_pick_the_events_of_one_kind(sim, gateway, streams, key):
    async with open_stream(streams, key, "/api/events/stream?kind=health.reset&provider=sim-a") as reader:
        await gateway.post("/api/breakers/sim-a/force-open", headers=auth(key))
        await gateway.post("/api/health/sim-a/reset", headers=auth(key))
        event = await reader.next()
    assert event.event == "health.reset"


@in_memory_layer
async def test_a_quiet_stream_sends_keep_alive_comments(sim, streams, key, settings):
    settings.EVENTS_KEEPALIVE_S = 0.05
    async with open_stream(streams, key) as reader:
        assert await reader.comment() == "keep-alive"


@in_memory_layer
async def test_the_stream_ends_and_leaves_the_group_when_the_client_goes(sim, streams, key):
    layer = get_channel_layer()
    before = len(layer.groups.get(GROUP, {}))
    async with open_stream(streams, key):
        assert len(layer.groups.get(GROUP, {})) == before + 1
    # leaving the block closed the response: the application ended (the transport waits for it)
    assert len(layer.groups.get(GROUP, {})) == before


async def test_a_request_every_target_failed_is_a_request_failed_event(configure, rt, gateway, streams, key):
    with FakeOpenAI() as fake:
        await configure(
            {
                "providers": [
                    {
                        "name": "p1",
                        "kind": "openai",
                        "base_url": fake.url + "/v1",
                        "api_key": API_KEY,
                        "retry": {"max_attempts": 1},
                    }
                ],
                "routes": [
                    {"name": "chat", "capability": "chat", "targets": [{"provider": "p1", "model": "gpt-4o-mini"}]}
                ],
            }
        )
        await rt.refresh(force=True)
        fake.fault(status=500)
        async with open_stream(streams, key) as reader:
            answer = await gateway.post(
                "/v1/chat/completions",
                headers=auth(key),
                json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert answer.status_code == 502
            event = await until(reader, "request.failed")
        await failure_log.drain()
    detail = event.data["detail"]
    assert detail["route"] == "chat" and detail["request_id"] == answer.headers["X-Request-Id"]
    assert detail["providers"] == ["p1"] and "500" in detail["error"] and detail["count"] == 1
    assert event.data["provider"] == "p1" and event.data["to"] == "failure"


@pytest.mark.parametrize(
    ("headers", "query", "param"),
    [
        ({"Last-Event-ID": "-1"}, "", "Last-Event-ID"),
        ({}, "?last_event_id=abc", "last_event_id"),
        ({}, "?kind=breaker.exploded", "kind"),
    ],
)
async def test_bad_parameters_are_a_400_naming_them(sim, gateway, key, headers, query, param):
    response = await gateway.get(f"/api/events/stream{query}", headers={**auth(key), **headers})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


async def test_the_stream_needs_a_key_with_the_read_scope(sim, gateway, make_key):
    assert (await gateway.get("/api/events/stream")).status_code == 401
    gateway_only = await make_key(["gateway"])
    response = await gateway.get("/api/events/stream", headers=auth(gateway_only))
    assert response.status_code == 403 and response.json()["error"]["code"] == "insufficient_scope"


# -- across processes: the Redis channel layer ------------------------------------------------


@pytest.fixture
def redis_layer(settings):
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_DB9)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    client.flushdb()
    settings.CHANNEL_LAYERS = {"default": redis_channel_layer(REDIS_DB9)}
    yield
    client.flushdb()
    client.close()


def test_the_redis_layer_waits_for_an_idle_receive_longer_than_redis_takes_to_answer_it() -> None:
    """An idle receive (a console or a stream waiting for its next push) is a blocking pop that
    Redis answers after `brpop_timeout`; the client's read timeout must be longer, or every idle
    wait ends in a TimeoutError that closes the websocket or the stream."""
    from channels_redis.core import RedisChannelLayer
    from channels_redis.utils import create_pool

    layer = RedisChannelLayer(**redis_channel_layer(REDIS_DB9)["CONFIG"])
    connection = create_pool(layer.hosts[0]).make_connection()
    assert connection.socket_timeout is not None  # a Redis that is gone is still noticed
    assert connection.socket_timeout >= 2 * layer.brpop_timeout


async def test_with_redis_an_event_published_by_another_process_reaches_the_stream(sim, streams, key, redis_layer):
    def another_process() -> int:
        """What a monitor in another process does: its own event loop, its own connection to the
        layer and the database."""
        from channels_redis.core import RedisChannelLayer

        try:
            event = record_event("sim-a", "breaker", "closed", "open", "failure_rate 0.60 >= 0.5 over 10 calls")
        finally:
            connections.close_all()
        layer = RedisChannelLayer(**redis_channel_layer(REDIS_DB9)["CONFIG"])
        asyncio.run(layer.group_send(GROUP, {"type": "health.update", "provider": "sim-a"}))
        return event.pk

    async with open_stream(streams, key) as reader:
        written = await asyncio.to_thread(another_process)
        event = await reader.next()
    assert (event.id, event.event, event.data["to"]) == (written, "breaker.opened", "open")

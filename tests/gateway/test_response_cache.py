"""The response cache through the gateway (providers/gateway/serving.py): a hit calls nobody,
expires with its TTL, is bypassed on request, is kept per API key and per endpoint, is read
only after the key's admission, and never keeps an error, a broken stream or an answer too
large; kept streams are replayed whole. Shared through Redis (db 12) when REDIS_URL is set.

The fake provider counts what it is sent (`requests_to`): that is how "no upstream call" is
proven.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from decimal import Decimal

import pytest
import redis
from asgiref.sync import sync_to_async

from analytics.models import RequestLog
from analytics.recorder import flush_all
from providers.engine import Engine
from providers.gateway.cache import Cached, LocalCache
from providers.models import ApiKey, ConfigState, Provider, Route
from providers.runtime import Runtime, install_runtime, runtime

from .conftest import auth, provider

pytestmark = pytest.mark.django_db(transaction=True)

COMPLETIONS = "/v1/chat/completions"
# $0.10 a token in and out: "hello there" (2 words) echoed as "Echo: hello there" (3) costs $0.50.
PRICED = {"gpt-4o-mini": {"input_per_mtok": 100_000, "output_per_mtok": 100_000}}
COST = Decimal("0.5")
CHAT = {"model": "cached", "messages": [{"role": "user", "content": "hello there"}]}
STREAM = {**CHAT, "stream": True}
MESSAGE = {"model": "cached", "max_tokens": 50, "messages": [{"role": "user", "content": "hello there"}]}
RESPONSE = {"model": "cached", "input": "hello there"}
REDIS_DB12 = os.environ.get("RESPONSE_CACHE_REDIS_URL", "redis://127.0.0.1:6379/12")


@sync_to_async
def set_ttl(*, route: str | None = None, provider_name: str | None = None, ttl: float | None) -> None:
    if route is not None:
        Route.objects.filter(name=route).update(cache_ttl_s=ttl)
    if provider_name is not None:
        Provider.objects.filter(name=provider_name).update(cache_ttl_s=ttl)
    ConfigState.bump()


@pytest.fixture
async def cached(configure, upstream_a):
    """Route `cached` kept 60 s; route `plain` (the same target) not cached."""
    target = [{"provider": "up-a", "model": "gpt-4o-mini"}]
    await configure(
        {
            "providers": [
                provider(
                    "up-a",
                    upstream_a.url + "/v1",
                    prices=PRICED,
                    breaker={"consecutive_failures": 100, "min_calls": 1000},
                    retry={"max_attempts": 1},
                )
            ],
            "routes": [
                {"name": "cached", "capability": "chat", "targets": target},
                {"name": "plain", "capability": "chat", "targets": target},
            ],
        }
    )
    await set_ttl(route="cached", ttl=60)


def calls(upstream, path: str = COMPLETIONS) -> int:
    return len(upstream.requests_to(path))


async def log_row(request_id: str) -> RequestLog:
    await flush_all()
    return await sync_to_async(RequestLog.objects.get)(request_id=request_id)


# -- hits ----------------------------------------------------------------------------------------


async def test_a_repeated_request_is_answered_from_the_cache_without_an_upstream_call(gateway, cached, key, upstream_a):
    first = await gateway.post(COMPLETIONS, json=CHAT, headers=auth(key))
    second = await gateway.post(COMPLETIONS, json=CHAT, headers=auth(key))

    assert calls(upstream_a) == 1
    assert first.status_code == second.status_code == 200
    assert (first.headers["x-gateway-cache"], second.headers["x-gateway-cache"]) == ("miss", "hit")
    assert second.content == first.content
    assert second.headers["x-gateway-provider"] == "up-a" and second.headers["x-gateway-attempts"] == "0"
    assert second.headers["x-request-id"] != first.headers["x-request-id"]
    miss, hit = await log_row(first.headers["x-request-id"]), await log_row(second.headers["x-request-id"])
    assert (miss.cache, miss.provider, miss.cost, miss.calls) == ("miss", "up-a", COST, 1)
    assert (hit.cache, hit.provider, hit.cost, hit.saved, hit.calls) == ("hit", "", Decimal(0), COST, 0)
    assert (hit.tokens_in, hit.tokens_out, hit.attempts, hit.outcome, hit.status) == (0, 0, [], "success", 200)


async def test_the_same_body_with_its_keys_in_another_order_is_a_hit(gateway, cached, key, upstream_a):
    await gateway.post(
        COMPLETIONS, json={"model": "cached", "temperature": 0.5, "messages": CHAT["messages"]}, headers=auth(key)
    )
    again = await gateway.post(
        COMPLETIONS, json={"messages": CHAT["messages"], "temperature": 0.5, "model": "cached"}, headers=auth(key)
    )
    other = await gateway.post(COMPLETIONS, json={**CHAT, "temperature": 0.6}, headers=auth(key))

    assert again.headers["x-gateway-cache"] == "hit" and other.headers["x-gateway-cache"] == "miss"
    assert calls(upstream_a) == 2


async def test_a_route_without_a_cache_says_nothing_and_calls_every_time(gateway, cached, key, upstream_a):
    answers = [await gateway.post(COMPLETIONS, json={**CHAT, "model": "plain"}, headers=auth(key)) for _ in range(2)]

    assert calls(upstream_a) == 2
    assert all("x-gateway-cache" not in answer.headers for answer in answers)
    row = await log_row(answers[0].headers["x-request-id"])
    assert row.cache == ""


async def test_a_providers_ttl_serves_routes_without_their_own_and_a_route_may_turn_it_off(
    gateway, cached, key, upstream_a
):
    await set_ttl(provider_name="up-a", ttl=60)
    await set_ttl(route="cached", ttl=0)
    answers = {}
    for route in ("plain", "cached", "up-a/gpt-4o-mini"):
        for _ in range(2):
            answers[route] = await gateway.post(COMPLETIONS, json={**CHAT, "model": route}, headers=auth(key))

    assert answers["plain"].headers["x-gateway-cache"] == "hit"
    assert answers["up-a/gpt-4o-mini"].headers["x-gateway-cache"] == "hit"  # provider/model: the provider's
    assert "x-gateway-cache" not in answers["cached"].headers  # 0 on the route: off
    assert calls(upstream_a) == 4


async def test_a_kept_answer_expires_with_its_ttl(gateway, cached, key, upstream_a, clock):
    rt = install_runtime(Runtime(response_cache=LocalCache(now=clock.monotonic)))
    try:
        await gateway.post(COMPLETIONS, json=CHAT, headers=auth(key))
        clock.advance(59)
        within = await gateway.post(COMPLETIONS, json=CHAT, headers=auth(key))
        clock.advance(2)
        after = await gateway.post(COMPLETIONS, json=CHAT, headers=auth(key))
    finally:
        await rt.close()

    assert within.headers["x-gateway-cache"] == "hit"
    assert after.headers["x-gateway-cache"] == "miss"
    assert calls(upstream_a) == 2


def test_without_redis_the_runtime_keeps_answers_in_process_on_its_engines_clock(settings, clock):
    settings.REDIS_URL = ""
    rt = Runtime(engine=Engine(clock=clock))
    cache = rt.response_cache

    assert isinstance(cache, LocalCache)
    asyncio.run(cache.put("k", Cached(b"{}", "application/json", "p", "m"), 10))
    clock.advance(11)
    assert asyncio.run(cache.get("k")) is None


async def test_no_cache_bypasses_the_lookup_and_keeps_the_fresh_answer(gateway, cached, key, upstream_a):
    await gateway.post(COMPLETIONS, json=CHAT, headers=auth(key))
    fresh = await gateway.post(COMPLETIONS, json=CHAT, headers={**auth(key), "X-Gateway-Cache": "no-cache"})
    later = await gateway.post(COMPLETIONS, json=CHAT, headers=auth(key))

    assert fresh.headers["x-gateway-cache"] == "bypass" and later.headers["x-gateway-cache"] == "hit"
    assert calls(upstream_a) == 2
    assert later.content == fresh.content  # the fresh answer replaced the old one
    assert (await log_row(fresh.headers["x-request-id"])).cache == "bypass"


# -- whose answers -------------------------------------------------------------------------------


async def test_two_keys_never_share_an_answer(gateway, cached, make_key, upstream_a):
    one, two = await make_key(["gateway"]), await make_key(["gateway"])

    first = await gateway.post(COMPLETIONS, json=CHAT, headers=auth(one))
    other = await gateway.post(COMPLETIONS, json=CHAT, headers=auth(two))
    again = await gateway.post(COMPLETIONS, json=CHAT, headers=auth(one))

    assert (first.headers["x-gateway-cache"], other.headers["x-gateway-cache"], again.headers["x-gateway-cache"]) == (
        "miss",
        "miss",
        "hit",
    )
    assert calls(upstream_a) == 2


async def test_a_key_refused_the_route_never_gets_its_kept_answer(gateway, cached, make_key, upstream_a):
    key = await make_key(["gateway"], routes=["cached"])
    kept = await gateway.post(COMPLETIONS, json=CHAT, headers=auth(key))
    assert kept.headers["x-gateway-cache"] == "miss"
    await sync_to_async(ApiKey.objects.filter(prefix=key[:11]).update)(routes=["plain"])
    await sync_to_async(ConfigState.bump)()
    await runtime().refresh()

    refused = await gateway.post(COMPLETIONS, json=CHAT, headers=auth(key))

    assert refused.status_code == 403 and refused.json()["error"]["type"] == "route_not_allowed"
    assert "x-gateway-cache" not in refused.headers
    assert calls(upstream_a) == 1


async def test_a_hit_counts_against_the_keys_request_rate(gateway, cached, make_key, upstream_a):
    key = await make_key(["gateway"], rate_limit_per_minute=2)
    answers = [await gateway.post(COMPLETIONS, json=CHAT, headers=auth(key)) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[1].headers["x-gateway-cache"] == "hit"
    assert calls(upstream_a) == 1


# -- what is never kept --------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "expected"), [(500, 502), (400, 400)])
async def test_an_error_is_never_kept(gateway, cached, key, upstream_a, status, expected):
    upstream_a.fault(status=status, times=1)

    failed = await gateway.post(COMPLETIONS, json=CHAT, headers=auth(key))
    served = await gateway.post(COMPLETIONS, json=CHAT, headers=auth(key))
    kept = await gateway.post(COMPLETIONS, json=CHAT, headers=auth(key))

    assert failed.status_code == expected and failed.headers["x-gateway-cache"] == "miss"
    assert served.status_code == 200 and served.headers["x-gateway-cache"] == "miss"
    assert kept.headers["x-gateway-cache"] == "hit" and kept.content == served.content
    assert calls(upstream_a) == 2


async def test_an_answer_over_the_size_limit_is_not_kept(gateway, cached, key, upstream_a, settings):
    settings.RESPONSE_CACHE_MAX_BYTES = 64
    answers = [await gateway.post(COMPLETIONS, json=CHAT, headers=auth(key)) for _ in range(2)]

    assert [a.headers["x-gateway-cache"] for a in answers] == ["miss", "miss"]
    assert calls(upstream_a) == 2


async def test_a_stream_that_broke_is_never_kept(gateway, cached, key, upstream_a):
    upstream_a.fault(error_code="server_error", times=1)  # an error chunk after the first piece of text

    broken = await gateway.post(COMPLETIONS, json=STREAM, headers=auth(key))
    whole = await gateway.post(COMPLETIONS, json=STREAM, headers=auth(key))

    assert "stream_aborted" in broken.text
    assert whole.headers["x-gateway-cache"] == "miss" and "stream_aborted" not in whole.text
    assert calls(upstream_a) == 2


async def test_a_stream_over_the_size_limit_is_relayed_whole_and_not_kept(gateway, cached, key, upstream_a, settings):
    settings.RESPONSE_CACHE_MAX_BYTES = 200
    answers = [await gateway.post(COMPLETIONS, json=STREAM, headers=auth(key)) for _ in range(2)]

    assert all(a.text.endswith("data: [DONE]\n\n") for a in answers)
    assert [a.headers["x-gateway-cache"] for a in answers] == ["miss", "miss"]
    assert calls(upstream_a) == 2


# -- streams and dialects ------------------------------------------------------------------------


async def test_a_complete_stream_is_kept_and_replayed_as_one_event_stream(gateway, cached, key, upstream_a):
    first = await gateway.post(COMPLETIONS, json=STREAM, headers=auth(key))
    second = await gateway.post(COMPLETIONS, json=STREAM, headers=auth(key))

    assert calls(upstream_a) == 1
    assert second.headers["x-gateway-cache"] == "hit"
    assert second.headers["content-type"].startswith("text/event-stream")
    assert second.text == first.text and second.text.endswith("data: [DONE]\n\n")
    row = await log_row(second.headers["x-request-id"])
    assert (row.cache, row.stream, row.saved) == ("hit", True, COST)


async def test_each_client_api_keeps_its_own_answers_in_its_own_shape(gateway, cached, key, upstream_a):
    asked = [
        (COMPLETIONS, CHAT),
        ("/v1/messages", MESSAGE),
        ("/v1/responses", RESPONSE),
        ("/v1/messages", {**MESSAGE, "stream": True}),
        ("/v1/responses", {**RESPONSE, "stream": True}),
    ]
    answers = {}
    for path, body in asked:
        first = await gateway.post(path, json=body, headers=auth(key))
        second = await gateway.post(path, json=body, headers=auth(key))
        assert (first.headers["x-gateway-cache"], second.headers["x-gateway-cache"]) == ("miss", "hit"), path
        assert second.content == first.content
        answers[path, bool(body.get("stream"))] = second

    assert calls(upstream_a) == len(asked)
    assert answers[COMPLETIONS, False].json()["object"] == "chat.completion"
    assert answers["/v1/messages", False].json()["type"] == "message"
    assert answers["/v1/responses", False].json()["object"] == "response"
    assert "event: message_stop" in answers["/v1/messages", True].text
    assert "event: response.completed" in answers["/v1/responses", True].text


async def test_transcriptions_of_different_audio_are_different_requests(gateway, configure, upstream_a, key):
    await configure(
        {
            "providers": [provider("up-a", upstream_a.url + "/v1", capabilities=["stt"], models=["whisper-1"])],
            "routes": [
                {"name": "listen", "capability": "stt", "targets": [{"provider": "up-a", "model": "whisper-1"}]}
            ],
        }
    )
    await set_ttl(route="listen", ttl=60)

    said = {}
    for text in ("first words", "other words", "first words"):
        response = await gateway.post(
            "/v1/audio/transcriptions",
            headers=auth(key),
            data={"model": "listen"},
            files={"file": ("a.txt", text.encode(), "text/plain")},
        )
        said.setdefault(text, []).append((response.headers["x-gateway-cache"], response.json()["text"]))

    assert said == {
        "first words": [("miss", "first words"), ("hit", "first words")],
        "other words": [("miss", "other words")],
    }


# -- Redis ---------------------------------------------------------------------------------------


@pytest.fixture
def redis_db12() -> Iterator[str]:
    client = redis.Redis.from_url(REDIS_DB12, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        pytest.skip(f"Redis at {REDIS_DB12} is unreachable ({exc})")
    client.flushdb()
    yield REDIS_DB12
    client.flushdb()
    client.close()


async def test_with_redis_two_runtimes_share_the_kept_answers(gateway, cached, key, upstream_a, redis_db12, settings):
    settings.REDIS_URL = redis_db12
    settings.SHARED_STATE = False  # breakers and limits stay in-process: only the cache is shared
    settings.REDIS_OP_TIMEOUT_S = 1.0
    answers = []
    for _ in range(2):  # two workers, as far as the cache can tell
        rt = install_runtime(Runtime())
        try:
            answers.append(await gateway.post(COMPLETIONS, json=CHAT, headers=auth(key)))
        finally:
            await rt.close()

    assert [a.headers["x-gateway-cache"] for a in answers] == ["miss", "hit"]
    assert answers[1].content == answers[0].content
    assert calls(upstream_a) == 1
    assert redis.Redis.from_url(redis_db12).dbsize() == 1

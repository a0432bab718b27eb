"""The response cache shared through Redis: one worker keeps an answer, another reads it."""

from __future__ import annotations

import redis.asyncio

from providers.gateway.cache import Cached, RedisCache, cache_key

from .conftest import OP_TIMEOUT_S


async def test_an_answer_kept_by_one_worker_is_read_by_another_until_it_expires(redis_url, prefix):
    one = RedisCache(redis.asyncio.Redis.from_url(redis_url), prefix=prefix, op_timeout_s=OP_TIMEOUT_S)
    two = RedisCache(redis.asyncio.Redis.from_url(redis_url), prefix=prefix, op_timeout_s=OP_TIMEOUT_S)
    key = cache_key(route="r", endpoint="chat", scope="1", body={"a": 1})
    value = Cached(b'{"id": "x"}\n\x00binary', "application/json", "up-a", "m", 12, 3)
    await one.put(key, value, ttl_s=60)
    assert await two.get(key) == value
    ttl_ms = await two.client.pttl(prefix + key)
    assert 0 < ttl_ms <= 60_000  # Redis expires it: no worker has to
    assert await two.get(cache_key(route="r", endpoint="chat", scope="2", body={"a": 1})) is None
    await one.client.aclose()
    await two.client.aclose()


async def test_a_redis_that_is_away_is_a_miss_not_an_error():
    cache = RedisCache(
        redis.asyncio.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2), op_timeout_s=OP_TIMEOUT_S
    )
    key = cache_key(route="r", endpoint="chat", scope="1", body={})
    await cache.put(key, Cached(b"x", "text/plain", "p", "m"), ttl_s=60)  # no exception
    assert await cache.get(key) is None

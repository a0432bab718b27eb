"""Request limits shared by every worker through Redis, and counted locally when it is away."""

from __future__ import annotations

import os
import secrets

import pytest

from providers.engine.limits import RedisLimits

from .conftest import OP_TIMEOUT_S

pytestmark = pytest.mark.scaleout

URL = os.environ.get("SCALEOUT_REDIS_URL", "redis://127.0.0.1:6379/14")


@pytest.fixture
async def pair():
    import redis.asyncio as redis

    probe = redis.Redis.from_url(URL)
    try:
        await probe.ping()
    except Exception as exc:
        if os.environ.get("REQUIRE_SCALEOUT"):
            pytest.fail(f"Redis at {URL}: {exc}")
        pytest.skip(f"Redis at {URL}: {exc}")
    finally:
        await probe.aclose()
    prefix = f"gw:test-limit:{secrets.token_hex(4)}:"
    a = RedisLimits.from_url(URL, prefix=prefix, op_timeout_s=OP_TIMEOUT_S)
    b = RedisLimits.from_url(URL, prefix=prefix, op_timeout_s=OP_TIMEOUT_S)
    yield a, b
    await a.aclose()
    await b.aclose()


async def test_two_workers_share_one_request_limit(pair):
    a, b = pair
    taken = [await (a if i % 2 else b).take("provider", 10, None) for i in range(16)]
    assert taken.count(True) == 10 and taken[:10] == [True] * 10


async def test_tokens_counted_by_one_worker_stop_the_other(pair):
    a, b = pair
    assert await a.take("provider", None, 1000)
    await a.add_tokens("provider", 1200)
    assert await b.take("provider", None, 1000) is False


async def test_an_unreachable_redis_counts_locally_instead_of_failing():
    limits = RedisLimits.from_url("redis://127.0.0.1:1/0")  # nothing listens on port 1
    try:
        taken = [await limits.take("provider", 3, None) for _ in range(5)]
    finally:
        await limits.aclose()
    assert taken == [True, True, True, False, False]

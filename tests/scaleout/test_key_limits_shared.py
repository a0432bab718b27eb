"""API keys' limits shared by every worker through a real Redis (database 11), and what happens
while Redis is away (KEY_LIMITS_WHEN_REDIS_DOWN) and when it comes back.

Each "worker" is its own engine with its own `RedisLimits` (its own connection pool), under a
key prefix of this test's own, as two processes of the gateway would be.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import redis
from asgiref.sync import sync_to_async

from providers.engine import Engine
from providers.engine.limits import RedisLimits
from providers.gateway.records import RequestRecord
from providers.keys import KeyLimits, KeyRefused
from providers.models import ApiKey, KeySpend
from providers.signals import key_budget_crossed
from providers.snapshot import KeyEntry, Snapshot

from .conftest import OP_TIMEOUT_S, PrivateRedis

pytestmark = [pytest.mark.scaleout, pytest.mark.django_db(transaction=True)]

URL = os.environ.get("KEY_LIMITS_REDIS_URL", "redis://127.0.0.1:6379/11")
NOWHERE = "redis://127.0.0.1:1/11"  # nothing listens on port 1


@pytest.fixture(scope="module")
def redis_db() -> str:
    try:
        redis.Redis.from_url(URL, socket_timeout=1, socket_connect_timeout=1).ping()
    except Exception as exc:
        if os.environ.get("REQUIRE_SCALEOUT"):
            pytest.fail(f"Redis at {URL}: {exc}")
        pytest.skip(f"Redis at {URL} is unreachable: {exc}")
    return URL


@pytest.fixture
def prefix(redis_db: str) -> Iterator[str]:
    value = f"gwtest-keys:{secrets.token_hex(5)}:"
    yield value
    client = redis.Redis.from_url(redis_db)
    stale = list(client.scan_iter(match=value + "*", count=1000))
    if stale:
        client.delete(*stale)
    client.close()


def entry(row: ApiKey) -> KeyEntry:
    return KeyEntry(
        id=row.pk,
        name=row.name,
        prefix=row.prefix,
        scopes=frozenset(row.scopes),
        rate_limit_per_minute=row.rate_limit_per_minute,
        expires_at=row.expires_at,
        routes=frozenset(row.routes),
        tokens_per_minute=row.tokens_per_minute,
        budget=row.budget,
        budget_period=row.budget_period,
    )


@pytest.fixture
def make() -> Callable[..., Any]:
    @sync_to_async
    def create(**fields: Any) -> KeyEntry:
        row, _ = ApiKey.issue(f"app-{secrets.token_hex(3)}", ["gateway"], **fields)
        return entry(row)

    return create


@pytest.fixture
async def workers() -> AsyncIterator[Callable[..., KeyLimits]]:
    """`workers(url, prefix, *entries, retry_after_s=5.0)`: a new worker; closed after the test."""
    made: list[RedisLimits] = []

    def new(url: str, prefix: str, *entries: KeyEntry, retry_after_s: float = 5.0) -> KeyLimits:
        store = RedisLimits.from_url(url, prefix=prefix, op_timeout_s=OP_TIMEOUT_S, retry_after_s=retry_after_s)
        made.append(store)
        snapshot = Snapshot(version=1, providers={}, routes={}, keys={str(e.id): e for e in entries})
        return KeyLimits(Engine(limits=store), snapshot=lambda: snapshot)

    yield new
    for store in made:
        await store.aclose()


def record(key: KeyEntry, *, cost: str = "0", tokens: int = 0) -> RequestRecord:
    return RequestRecord(
        at=datetime.now(UTC),
        request_id=secrets.token_hex(4),
        route="chat",
        capability="chat",
        outcome="success",
        status=200,
        latency_ms=5.0,
        provider="p",
        model="m",
        api_key_id=key.id,
        tokens_in=tokens,
        cost=Decimal(cost),
    )


async def outcome(limits: KeyLimits, key: KeyEntry) -> str:
    """ "ok", or the refusal's type."""
    try:
        await limits.admit(key, "chat")
    except KeyRefused as exc:
        return exc.type
    return "ok"


@pytest.fixture
def alerts() -> Iterator[list[dict[str, Any]]]:
    told: list[dict[str, Any]] = []

    def hear(sender: Any, **kwargs: Any) -> None:
        told.append(kwargs)

    key_budget_crossed.connect(hear, dispatch_uid="test-key-limits-shared")
    yield told
    key_budget_crossed.disconnect(dispatch_uid="test-key-limits-shared")


# -- shared by every worker ---------------------------------------------------------------------


async def test_two_workers_admit_exactly_the_keys_request_limit(redis_db, prefix, make, workers):
    key = await make(rate_limit_per_minute=10)
    a, b = workers(redis_db, prefix, key), workers(redis_db, prefix, key)
    seen = [await outcome(a if i % 2 else b, key) for i in range(16)]
    assert seen == ["ok"] * 10 + ["rate_limited"] * 6


async def test_concurrent_requests_on_two_workers_never_pass_the_limit(redis_db, prefix, make, workers):
    key = await make(rate_limit_per_minute=25)
    a, b = workers(redis_db, prefix, key), workers(redis_db, prefix, key)
    seen = await asyncio.gather(*(outcome(a if i % 2 else b, key) for i in range(60)))
    assert seen.count("ok") == 25 and seen.count("rate_limited") == 35


async def test_spend_counted_by_two_workers_adds_up(redis_db, prefix, make, workers):
    key = await make(budget=Decimal(100), budget_period="day")
    a, b = workers(redis_db, prefix, key), workers(redis_db, prefix, key)
    for _ in range(3):
        a.settle(record(key, cost="0.25"))
        b.settle(record(key, cost="0.5"))
    await asyncio.gather(a.flush(), b.flush())
    assert await a.spend(key.id, "day") == await b.spend(key.id, "day") == Decimal("2.25")
    written = await sync_to_async(lambda: KeySpend.objects.get(key_id=key.id))()
    assert (written.spend, written.requests) == (Decimal("2.25"), 6)


async def test_a_budget_spent_through_one_worker_refuses_the_other(redis_db, prefix, make, workers):
    key = await make(budget=Decimal(1), budget_period="month")
    a, b = workers(redis_db, prefix, key), workers(redis_db, prefix, key)
    assert await outcome(b, key) == "ok"
    a.settle(record(key, cost="1.2"))
    await a.count()
    assert await outcome(b, key) == "budget_exceeded"


async def test_tokens_counted_by_one_worker_limit_the_other(redis_db, prefix, make, workers):
    key = await make(tokens_per_minute=500)
    a, b = workers(redis_db, prefix, key), workers(redis_db, prefix, key)
    assert await outcome(b, key) == "ok"
    a.settle(record(key, tokens=500))
    await a.count()
    assert await outcome(b, key) == "rate_limited"


async def test_each_budget_threshold_is_told_once_whichever_worker_passes_it(redis_db, prefix, make, workers, alerts):
    key = await make(budget=Decimal(1), budget_period="day")
    a, b = workers(redis_db, prefix, key), workers(redis_db, prefix, key)
    for i in range(20):  # 2.0 in all, settled on both workers at once
        (a if i % 2 else b).settle(record(key, cost="0.1"))
    await asyncio.gather(a.flush(), b.flush())
    assert sorted(x["threshold"] for x in alerts) == [80, 100]
    assert await a.spend(key.id, "day") == 2


async def test_a_restarted_worker_and_an_empty_redis_start_from_the_database(redis_db, prefix, make, workers):
    key = await make(budget=Decimal(3), budget_period="week")
    before = workers(redis_db, prefix, key)
    before.settle(record(key, cost="3"))
    await before.flush()
    redis.Redis.from_url(redis_db).delete(*redis.Redis.from_url(redis_db).keys(prefix + "*"))
    after = workers(redis_db, prefix, key)
    assert await outcome(after, key) == "budget_exceeded"


# -- Redis away -----------------------------------------------------------------------------------


async def test_redis_away_and_open_each_worker_checks_the_limits_on_its_own_counts(make, workers, settings):
    settings.KEY_LIMITS_WHEN_REDIS_DOWN = "open"
    limited = await make(rate_limit_per_minute=3)
    spent = await make(budget=Decimal(1))
    await sync_to_async(KeySpend.objects.create)(key_id=spent.id, day=datetime.now(UTC).date(), spend=Decimal(2))
    alone = workers(NOWHERE, "gwtest-keys:nowhere:", limited, spent)
    assert [await outcome(alone, limited) for _ in range(5)] == ["ok"] * 3 + ["rate_limited"] * 2
    assert await outcome(alone, spent) == "budget_exceeded"  # the spend known from the database


async def test_redis_away_and_closed_refuses_keys_with_limits_only(make, workers, settings):
    settings.KEY_LIMITS_WHEN_REDIS_DOWN = "closed"
    limited = await make(rate_limit_per_minute=1000)
    free = await make()
    alone = workers(NOWHERE, "gwtest-keys:nowhere:", limited, free)
    with pytest.raises(KeyRefused) as caught:
        await alone.admit(limited, "chat")
    assert (caught.value.status, caught.value.type) == (503, "limits_unavailable")
    assert caught.value.retry_after is not None and caught.value.retry_after >= 1
    assert caught.value.request_error().headers == {"Retry-After": str(int(caught.value.retry_after + 0.999))}
    await alone.admit(free, "chat")  # no limits: nothing to ask Redis


@pytest.fixture
def private(tmp_path) -> Iterator[PrivateRedis]:
    import shutil

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(tmp_path)
    server.url = server.url.rsplit("/", 1)[0] + "/11"
    server.start()
    yield server
    server.stop()


async def test_spend_counted_while_redis_was_down_is_added_when_it_is_back(private, make, workers):
    key = await make(budget=Decimal(1), budget_period="day")
    a = workers(private.url, "gwtest-keys:", key, retry_after_s=0.0)
    a.settle(record(key, cost="0.4"))
    await a.count()
    redis.Redis.from_url(private.url).save()  # the restarted server loads it: Redis keeps its data
    private.shutdown()
    a.settle(record(key, cost="0.3"))
    await a.count()  # refused: counted here only
    assert await a.spend(key.id, "day") == Decimal("0.7")
    assert await a.resend() is True  # still away
    private.start()
    b = workers(private.url, "gwtest-keys:", key)
    assert await b.spend(key.id, "day") == Decimal("0.4")
    assert await a.resend() is False  # what the worker's background task does while some is unsent
    assert await b.spend(key.id, "day") == Decimal("0.7")
    a.settle(record(key, cost="0.1"))
    await a.count()
    assert await b.spend(key.id, "day") == Decimal("0.8")


async def test_a_call_that_timed_out_but_was_applied_is_not_counted_twice(private, make, workers):
    key = await make(budget=Decimal(1), budget_period="day")
    a = workers(private.url, "gwtest-keys:", key, retry_after_s=0.0)
    a.settle(record(key, cost="0.4"))
    await a.count()
    private.freeze()  # Redis takes the call, and answers after the worker gave up waiting
    try:
        a.settle(record(key, cost="0.3"))
        await a.count()
        assert await a.spend(key.id, "day") == Decimal("0.7")
    finally:
        private.thaw()
    a.settle(record(key, cost="0.1"))
    await a.count()
    b = workers(private.url, "gwtest-keys:", key)
    assert await b.spend(key.id, "day") == Decimal("0.8")


async def test_when_redis_comes_back_empty_the_spend_is_rebuilt_from_the_database(private, make, workers):
    key = await make(budget=Decimal(1), budget_period="day")
    a = workers(private.url, "gwtest-keys:", key, retry_after_s=0.0)
    a.settle(record(key, cost="0.4"))
    await a.flush()
    private.shutdown()
    a.settle(record(key, cost="0.3"))
    await a.count()  # refused by Redis; in this worker's unwritten batch
    private.start()  # empty
    a.settle(record(key, cost="0.1"))
    await a.count()
    b = workers(private.url, "gwtest-keys:", key)
    assert await b.spend(key.id, "day") == Decimal("0.8")  # 0.4 written, 0.3 unwritten, 0.1 now
    await a.flush()
    assert await sync_to_async(lambda: KeySpend.objects.get(key_id=key.id).spend)() == Decimal("0.8")

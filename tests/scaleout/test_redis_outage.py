"""Redis trouble never reaches a caller: while Redis hangs the store's own breaker opens and
local state decides; the shared state returns with Redis. What a hung Redis costs a call (at
most one 50 ms operation timeout, then nothing) and how soon the store's breaker opens are
figures of bench/engine/redis_run.py, not bounds asserted here."""

from __future__ import annotations

import time

import pytest

from providers.engine import BreakerPolicy, Engine, Outcome
from providers.engine.redis_store import RedisStateStore

from .conftest import Fleet, PrivateRedis, free_port

pytestmark = pytest.mark.scaleout

POLICY = {"break_s": 1.0, "max_break_s": 5.0, "jitter": 0.0}


def test_a_hung_redis_reaches_no_caller_opens_the_stores_breaker_and_is_used_again_when_it_answers(
    fleet: Fleet, prefix: str, private_redis: PrivateRedis
):
    a = fleet["A"]
    # the store's default 50 ms per operation: what this test is about
    fleet.configure(private_redis.url, prefix, names=("A",), store={"op_timeout_s": 0.05}, **POLICY)
    a("execute", n=20)  # warm: connections open, the key known
    a.send("run", seconds=3.5, concurrency=4)
    time.sleep(0.8)
    private_redis.freeze()
    time.sleep(2.0)  # several times the store's patience (250 ms) before its breaker opens
    private_redis.thaw()
    samples = a.reply()["samples"]

    assert {ending for _, _, ending, _ in samples} == {"ok"}  # nothing reached a caller
    # calls went on while Redis hung, decided on local state: the store's breaker had opened
    assert samples[0][3] is True and not all(available for *_, available in samples)
    # the shared state is in use again once Redis answers
    assert a("wait", field="available", value=True)["at"] is not None
    assert a("state")["shared"] == "closed"


def test_a_redis_that_forgets_everything_never_moves_a_breaker_generation_back(
    fleet: Fleet, prefix: str, private_redis: PrivateRedis
):
    fleet.configure(private_redis.url, prefix, names=("A", "B"), **POLICY)
    fleet["A"]("record", outcome="failure", n=3)
    fleet["B"]("record", outcome="failure", n=2)
    before = fleet["A"]("generation")
    assert before >= 1
    private_redis.shutdown()
    private_redis.start()  # empty: the shared state is back to closed, generation 0
    assert fleet["A"]("wait", field="available", value=True)["at"] is not None
    assert fleet["A"]("wait", field="shared", value="closed")["at"] is not None
    assert fleet["A"]("generation") > before


async def test_an_unreachable_redis_leaves_every_decision_to_the_local_breaker():
    store = RedisStateStore.from_url(f"redis://127.0.0.1:{free_port()}/0", reporter_id="lonely")
    engine = Engine(store=store)
    policy = BreakerPolicy(**POLICY)
    try:
        assert await store.connect(timeout_s=0.3) is False
        assert not store.shared_available
        for _ in range(5):  # no exception: what a refused connection costs is the bench's figure
            await engine.record("p", Outcome.FAILURE, 0.1, policy)
        assert engine.breaker("p").state() == "open"
        assert store.layers("p") == (None, store.local.state("p"))
    finally:
        await store.aclose()

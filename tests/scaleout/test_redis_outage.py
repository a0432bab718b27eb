"""Redis trouble never reaches a caller: a hung Redis costs a call at most one operation
timeout until the store's own breaker opens, then nothing; the shared state returns with Redis.
Figures are printed (run with -s); the bounds asserted are the brief's."""

from __future__ import annotations

import statistics
import time

import pytest

from providers.engine import BreakerPolicy, Engine, Outcome
from providers.engine.redis_store import RedisStateStore

from .conftest import Fleet, PrivateRedis, free_port

pytestmark = pytest.mark.scaleout

POLICY = {"break_s": 1.0, "max_break_s": 5.0, "jitter": 0.0}


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def test_a_hung_redis_costs_a_call_at_most_one_timeout_then_nothing_and_is_used_again_when_it_answers(
    fleet: Fleet, prefix: str, private_redis: PrivateRedis
):
    a = fleet["A"]
    fleet.configure(private_redis.url, prefix, names=("A",), **POLICY)
    a("execute", n=20)  # warm: connections open, the key known
    a.send("run", seconds=2.5, concurrency=4)
    time.sleep(0.8)
    frozen_at = time.time()
    private_redis.freeze()
    time.sleep(1.0)
    thawed_at = time.time()
    private_redis.thaw()
    samples = a.reply()["samples"]

    assert {ending for _, _, ending in samples} == {"ok"}  # nothing reached a caller
    up = [lat for start, lat, _ in samples if start < frozen_at]
    during = [(start, lat) for start, lat, _ in samples if frozen_at <= start < thawed_at]
    # When Redis is thawed it first works off what queued up while it hung, and a call that
    # started during the hang may reach it then (its outcome recorded once the store is back):
    # it is bounded below like every other, but says nothing of when the store's breaker opened.
    within = [(start, lat) for start, lat in during if start + lat < thawed_at]
    # a call that paid the 50 ms operation timeout (a stall of the event loop of a few ms, as
    # when the store tries to reconnect, is no timeout; the median below bounds those)
    slow = [(start, lat) for start, lat in within if lat >= 0.045]
    opened_at = max(start + lat for start, lat in slow)
    after_open = [lat for start, lat in within if start > opened_at]
    print(f"\nRedis up: {len(up)} calls, median {ms(statistics.median(up))}, max {ms(max(up))}")
    print(f"hung, until the store's breaker opened ({ms(opened_at - frozen_at)} after the freeze): "
          f"{len(slow)} calls paid a timeout, the slowest {ms(max(lat for _, lat in slow))}")
    print(f"hung, breaker open: {len(after_open)} calls, median {ms(statistics.median(after_open))}, "
          f"max {ms(max(after_open))}")
    assert max(lat for _, lat in during) <= 0.060
    assert opened_at - frozen_at < 0.6  # one timeout, then a patient ping
    assert statistics.median(after_open) < 0.002
    assert a("wait", field="available", value=True, timeout=3.0)["at"] is not None
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
    assert fleet["A"]("wait", field="available", value=True, timeout=3.0)["at"] is not None
    assert fleet["A"]("wait", field="shared", value="closed", timeout=3.0)["at"] is not None
    assert fleet["A"]("generation") > before


async def test_an_unreachable_redis_leaves_every_decision_to_the_local_breaker():
    store = RedisStateStore.from_url(f"redis://127.0.0.1:{free_port()}/0", reporter_id="lonely")
    engine = Engine(store=store)
    policy = BreakerPolicy(**POLICY)
    try:
        assert await store.connect(timeout_s=0.3) is False
        assert not store.shared_available
        start = time.perf_counter()
        for _ in range(5):
            await engine.record("p", Outcome.FAILURE, 0.1, policy)
        assert time.perf_counter() - start < 0.05  # no call waits for a Redis that is not there
        assert engine.breaker("p").state() == "open"
        assert store.layers("p") == (None, store.local.state("p"))
    finally:
        await store.aclose()

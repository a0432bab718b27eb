"""The Redis state store in one process with several stores (one per simulated worker):
clocks, half-open reservations, probe decisions, the quorum rule, operator actions, caching.
Real Redis, real time.

Real time is only bracketed, never bounded: a deadline is checked against the moments before
and after the action that set it, widened by `EDGE_S`, and waits have bounds that only stop a
hang. How soon a worker sees a change is a figure of bench/engine/redis_run.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis

from providers.engine import BreakerPolicy, BreakerStateChanged, CircuitOpen, Engine, Outcome
from providers.engine.redis_store import RedisStateStore
from providers.engine.store import Cooldown, StateStore

from .conftest import OP_TIMEOUT_S, shared_hash

pytestmark = pytest.mark.scaleout

F, OK = Outcome.FAILURE, Outcome.SUCCESS
POLICY = BreakerPolicy(break_s=1.0, max_break_s=5.0, jitter=0.0).resolve(30.0)
# A deadline crosses each edge (local monotonic <-> Redis TIME) with an offset taken at the
# midpoint of a round trip, which the store allows at most OP_TIMEOUT_S: it is off by half that.
EDGE_S = OP_TIMEOUT_S / 2
HANG_S = 30.0  # a bound on waiting, not a timing goal
MakeEngine = Callable[..., Awaitable[Engine]]


class ShiftedClock:
    """A host's clocks: a monotonic clock with its own origin, a wall clock one can jump."""

    def __init__(self, monotonic_offset: float = 0.0, wall_offset: float = 0.0) -> None:
        self.monotonic_offset = monotonic_offset
        self.wall_offset = wall_offset

    def monotonic(self) -> float:
        return time.monotonic() + self.monotonic_offset

    def time(self) -> float:
        return time.time() + self.wall_offset

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@pytest.fixture
async def make_engine(redis_url: str, prefix: str) -> AsyncIterator[MakeEngine]:
    """Engines on stores of their own, as if each were a worker. These tests are about what
    is shared, not about timeouts, so they allow Redis OP_TIMEOUT_S (250 ms), not 50: on a
    busy test machine an answer can take longer than 50 ms, and the store would then rightly
    decide on local state, which is not what these tests look at."""
    stores: list[RedisStateStore] = []

    async def make(name: str, clock: Any = None, **options: Any) -> Engine:
        options.setdefault("op_timeout_s", OP_TIMEOUT_S)
        store = RedisStateStore.from_url(redis_url, prefix=prefix, reporter_id=name, clock=clock, **options)
        stores.append(store)
        assert await store.connect()
        engine = Engine(store=store, clock=clock)
        engine.breaker("p", POLICY)
        return engine

    yield make
    for store in stores:
        await store.aclose()


def shared(engine: Engine) -> Any:
    assert isinstance(engine.store, RedisStateStore)
    return engine.store.layers("p")[0]


async def until(condition: Callable[[], bool], timeout: float = HANG_S) -> float:
    """Poll every millisecond; the monotonic time when `condition` first held. `timeout` only
    stops a hang."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.001)
    return time.monotonic()


async def trip(first: Engine, second: Engine, policy: BreakerPolicy = POLICY) -> float:
    """Five failures in a row from two workers: the shared breaker opens. Returns when."""
    for _ in range(3):
        await first.record("p", F, 0.1, policy)
    for _ in range(2):
        await second.record("p", F, 0.1, policy)
    return time.monotonic()


async def test_the_redis_store_is_a_state_store(make_engine: MakeEngine):
    engine = await make_engine("A")
    assert isinstance(engine.store, StateStore)


async def test_shared_deadlines_are_set_and_judged_on_redis_time_whatever_the_hosts_clocks_say(
    make_engine: MakeEngine, redis_url: str, prefix: str
):
    a_clock, b_clock = ShiftedClock(), ShiftedClock(monotonic_offset=5000.0, wall_offset=-3600.0)
    a = await make_engine("A", clock=a_clock)
    b = await make_engine("B", clock=b_clock)  # another host: its monotonic origin differs
    client = redis.Redis.from_url(redis_url, decode_responses=True)

    def redis_ms() -> float:
        seconds, micros = client.time()
        return seconds * 1000 + micros / 1000

    before_ms, before = redis_ms(), time.monotonic()
    tripped = await trip(a, b)
    after_ms = redis_ms()
    client.close()
    state = shared_hash(redis_url, prefix)
    assert state["state"] == "open"
    # the break was set on Redis TIME: 1 s from the trip, which lies between the two readings
    assert before_ms + 1000 <= float(state["open_until"]) <= after_ms + 1000
    await until(lambda: shared(a) is not None and shared(a).state == "open")
    await until(lambda: shared(b) is not None and shared(b).state == "open")
    # converted at each edge, into each host's own monotonic clock
    for host_clock, engine in ((a_clock, a), (b_clock, b)):
        origin = host_clock.monotonic_offset
        assert before + origin + 1.0 - EDGE_S <= shared(engine).open_until <= tripped + origin + 1.0 + EDGE_S
    a_clock.wall_offset -= 3600.0  # the wall clock jumps back an hour while open
    flips: dict[str, float] = {}

    def both_half_open() -> bool:
        for name, engine in (("A", a), ("B", b)):
            if name not in flips and engine.breaker("p").state() == "half_open":
                flips[name] = time.monotonic()
        return len(flips) == 2

    await until(both_half_open)  # not an hour later: the jump moved nothing
    assert min(flips.values()) >= before + 1.0 - EDGE_S  # nor earlier than the break


async def test_without_pubsub_a_worker_sees_a_shared_transition_once_its_cache_expires(make_engine: MakeEngine):
    a, b = await make_engine("A"), await make_engine("B")
    c = await make_engine("C", subscribe=False)
    c.breaker("p").check()
    await until(lambda: shared(c) is not None)
    await trip(a, b)
    await until(lambda: c.breaker("p").check() == "open")  # how soon: bench/engine/redis_run.py


async def test_a_cancelled_shared_probe_frees_its_slot_at_once_and_a_hung_one_at_probe_ttl(
    make_engine: MakeEngine,
):
    # probe_ttl 2 s: the checks below, made before it passes, have time to spare on a busy machine
    policy = BreakerPolicy(break_s=0.3, max_break_s=1.0, jitter=0.0, probe_ttl_s=2.0, max_half_open_s=30.0).resolve(
        30.0
    )
    x, y, z = [await make_engine(name) for name in "XYZ"]
    bx, by, bz = (e.breaker("p", policy) for e in (x, y, z))
    await trip(x, y, policy)
    await asyncio.sleep(0.35)
    hung = await bx.acquire()
    hung_at = time.monotonic()
    await asyncio.sleep(0.4)
    cancelled = await by.acquire()
    await by.release(cancelled)  # what the engine does on CancelledError
    taken = [hung, await by.acquire(), await bz.acquire()]
    assert all(p.probe is not None for p in taken)
    for breaker in (bx, by, bz):
        with pytest.raises(CircuitOpen) as refused:
            await breaker.acquire()
        assert refused.value.state == "half_open" and refused.value.retry_after > 0
    await asyncio.sleep(hung_at + 2.0 - time.monotonic() + 0.05)
    replacement = await bz.acquire()  # the hung probe's reservation expired at probe_ttl
    assert replacement.probe is not None
    with pytest.raises(CircuitOpen):
        await bx.acquire()


async def test_probe_results_from_different_workers_decide_one_shared_half_open(make_engine: MakeEngine):
    engines = [await make_engine(name) for name in "XYZ"]
    events: list[BreakerStateChanged] = []
    for engine in engines:
        engine.subscribe(lambda e: events.append(e) if isinstance(e, BreakerStateChanged) else None)
    await trip(engines[0], engines[1])
    await asyncio.sleep(1.05)
    breakers = [e.breaker("p") for e in engines]
    permits = [await b.acquire() for b in breakers]
    await breakers[0].record(permits[0], OK, 0.1)
    assert shared(engines[0]).state == "half_open"
    await breakers[1].record(permits[1], OK, 0.1)  # the second success, on another worker
    assert shared(engines[1]).state == "closed"
    await breakers[2].record(permits[2], F, 0.1)  # a late result of the same round
    await until(lambda: all(e.breaker("p").state() == "closed" for e in engines))
    assert [(e.old, e.new) for e in events] == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


async def test_two_failed_probes_on_two_workers_reopen_the_shared_breaker_for_twice_as_long(
    make_engine: MakeEngine, redis_url: str, prefix: str
):
    x, y = await make_engine("X"), await make_engine("Y")
    await trip(x, y)
    await asyncio.sleep(1.05)
    px, py = await x.breaker("p").acquire(), await y.breaker("p").acquire()
    before = time.monotonic()
    await x.breaker("p").record(px, F, 0.1)
    await y.breaker("p").record(py, F, 0.1)
    after = time.monotonic()
    state = shared_hash(redis_url, prefix)
    assert (state["state"], state["k"], state["reason"]) == ("open", "2", "probe_failed")
    # base x 2^(k-1) = 2 s from the reopening, which lies between `before` and `after`
    assert before + 2.0 - EDGE_S <= shared(y).open_until <= after + 2.0 + EDGE_S


async def test_one_reporter_counts_for_the_shared_breaker_only_past_ten_times_min_calls(make_engine: MakeEngine):
    policy = BreakerPolicy(min_calls=2, consecutive_failures=0, break_s=1.0, jitter=0.0).resolve(30.0)
    a, b = await make_engine("A"), await make_engine("B")
    for _ in range(10):
        await b.store.add_outcome("p", 0.0, failure=False, slow=False, window_s=60.0, buckets=12, policy=policy)
    for n in range(1, 21):  # 20 failures from A alone: its own counts decide
        counts = await a.store.add_outcome("p", 0.0, failure=True, slow=False, window_s=60.0, buckets=12, policy=policy)
        assert (counts.calls, counts.failures) == (n, n)
    counts = await a.store.add_outcome("p", 0.0, failure=True, slow=False, window_s=60.0, buckets=12, policy=policy)
    assert (counts.calls, counts.failures) == (31, 21)  # more than 10 x 2: the pooled counts


async def test_an_operator_reset_on_one_worker_closes_the_breaker_everywhere_local_layers_too(
    make_engine: MakeEngine,
):
    a, b, c, d = [await make_engine(name) for name in "ABCD"]
    for _ in range(5):
        await a.record("p", F, 0.1, POLICY)  # A alone: only A's local breaker opens
    await trip(b, c)
    assert a.store.layers("p")[1].state == "open"
    await d.reset("p")
    await until(lambda: all(e.breaker("p").state() == "closed" for e in (a, b, c, d)))
    assert a.store.layers("p")[1].state == "closed"


async def test_forcing_a_breaker_open_on_one_worker_refuses_calls_on_every_worker(make_engine: MakeEngine):
    a, b = await make_engine("A"), await make_engine("B")
    b.breaker("p").check()
    before = time.monotonic()
    await a.force_open("p", 60.0)
    await until(lambda: b.breaker("p").check() == "forced_open")
    with pytest.raises(CircuitOpen) as refused:
        await b.breaker("p").acquire()
    # 60 s from the action, less the time since: bracketed, each edge adding its error
    assert 60.0 - (time.monotonic() - before) - 2 * EDGE_S <= refused.value.retry_after <= 60.0 + 2 * EDGE_S


async def test_a_shorter_cooldown_from_another_worker_does_not_cut_a_longer_one(make_engine: MakeEngine):
    a, b = await make_engine("A"), await make_engine("B")
    now = time.monotonic()
    assert await a.store.set_cooldown("p", Cooldown("key-1", "rate_limited", now + 30.0, "http_429"))
    assert not await b.store.set_cooldown("p", Cooldown("key-1", "rate_limited", now + 5.0, "http_429"))
    until_b = b.store.cooldowns("p")[("key-1", "")].until
    assert until_b is not None and abs(until_b - (now + 30.0)) <= 2 * EDGE_S  # converted at each edge
    assert await b.store.set_cooldown("p", Cooldown("key-1", "exhausted", None, "insufficient_quota"))
    await until(lambda: a.store.cooldowns("p")[("key-1", "")].kind == "exhausted")
    await b.reset("p")
    await until(lambda: not a.store.cooldowns("p"))


async def test_a_redis_answering_with_errors_reaches_no_caller(make_engine: MakeEngine, redis_url: str, prefix: str):
    a = await make_engine("A")
    client = redis.Redis.from_url(redis_url)
    client.set(f"{prefix}{{p}}:s", "not a hash")  # every script on this key now fails
    client.close()
    for _ in range(5):
        await a.record("p", F, 0.1, POLICY)
    assert a.breaker("p").state() == "open"  # the local breaker decided
    assert a.store.layers("p")[1].state == "open"

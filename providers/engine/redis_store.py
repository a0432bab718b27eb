"""Breaker state, counts, probe reservations and cooldowns shared through Redis (resilience.md §8).

Opt-in scale-out: each process builds one `RedisStateStore` per event loop on the same Redis,
each with its own reporter id. It is a `StateStore` (store.py has the contract); nothing here
ever raises a Redis error to the engine.

Two layers per breaker key:
- the *shared* layer lives in Redis: a state hash changed only by a compare-and-set script,
  pooled counters in 5 s buckets, probe reservations and cooldowns (key layout in
  lua/common.lua, one hash slot per breaker key);
- the *local* layer is a `LocalStateStore` inside this store, fed with this process's own
  outcomes. It is what the quorum rule falls back to, and what is left when Redis is not.
`state()` answers the more restrictive of the two (a break running in either refuses calls).

Counting and the quorum rule: every outcome goes to both layers; the Redis side is one script
that returns the pooled window and who reported its failures (or slow calls). Outcomes of one
key that arrive while its script is in flight ride together in the next call, each applied in
order, so a burst of calls is a few round trips rather than a queue. The pooled counts
decide, and a trip writes the shared state, only if failures came from >= 2 reporters or one
reporter alone has more than 10 x min_calls, and they trip the breaker's policy; otherwise the
local counts decide and a trip opens only the local breaker. `add_outcome` tells the
`compare_and_set` that follows it which layer a trip belongs to through a context variable
(both run in the caller's task). Transitions other than trips stay in the layer the breaker
saw; operator actions (reset, force open, modes) go to both and are mirrored into every other
process's local layer, so they also hold while Redis is away.

Clocks: every shared deadline (open_until, since, probe and cooldown expiry) is set and judged
on Redis TIME inside the scripts, never on a host's wall clock. At the edge it is converted to
the engine's monotonic clock with an offset sampled on every reply (midpoint of the round
trip, tightest round trip preferred): `local = shared - offset`.

Generations: the breaker sees one generation per key, the sum of the two layers' (plus a base
that keeps it from going back if Redis forgets a key), so a transition in either layer moves
it on by one and makes permits taken before it stale. Probe tokens handed to the breaker are
this store's own; each remembers the layer and generation it was reserved in.

Cache: sync reads (`state`, `cooldowns`, `counts`, `probes_in_flight`) answer from a
per-process cache. Scripts that change shared state publish the new state on
`<prefix>events`; a subscriber applies it at once, and a refresher re-reads every known key
every 0.9 x `cache_ttl_s` (one script, one round trip), so the cache is never older than
`cache_ttl_s` even if a message is lost. On (re)connecting, every shared key is read first.
The hot path pays one round trip per outcome (shared by concurrent outcomes) and none per
admission; concurrent tasks asking for the same transition share one compare-and-set, and no
more probe reservations are asked for than there can be free slots.

Failures: each Redis operation runs under `op_timeout_s` (50 ms) and behind a small breaker of
its own. A refused or broken connection, or an error, opens it at once; a timeout is checked
first by a patient ping in the background (a busy process can read a prompt answer late), and
the ping's failure opens it. A call that waited out one timeout does not wait for Redis again
(for `cache_ttl_s`), so no call pays more than one timeout. While the breaker is open no
caller touches Redis: the local layer decides alone, except that a shared break still running
is honoured until its deadline; a half-open probe slot that Redis did not confirm is not taken.
A background task reconnects (once per `cache_ttl_s`), re-reads every key and closes the
breaker, and the shared layer is used again. Errors are logged once per outage, never raised.
`connect()` waits for all that at start-up; without it the first calls use local state until
the connection is made.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import math
import os
import secrets
import socket
from collections.abc import Awaitable
from contextvars import ContextVar
from dataclasses import replace
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from .breaker import trip_reason
from .clock import Clock, SystemClock
from .policy import BreakerPolicy
from .store import (
    CLOSED,
    FORCED_OPEN,
    HALF_OPEN,
    NORMAL,
    OPEN,
    BreakerState,
    Cooldown,
    LocalStateStore,
    Slot,
)
from .window import WindowCounts

log = logging.getLogger(__name__)

SHARED, LOCAL, FREE = "shared", "local", "free"  # FREE: a probe token that holds no slot
_OPERATOR_REASONS = ("manual_reset", "forced_open")
_LUA = Path(__file__).with_name("lua")
_SCRIPTS = ("count", "cas", "clear", "reserve", "release", "probe_result", "cooldown", "uncool",
            "drop", "snapshot")
_SCOPE_SEP = "\x1f"  # between credential and scope in a cooldown's hash field (in no id or model name)

# Which layer the last add_outcome of this task chose for `key`: (key, SHARED | LOCAL).
_trip_layer: ContextVar[tuple[str, str] | None] = ContextVar("redis_store_trip_layer", default=None)
# Until when this task leaves Redis alone, having waited out one timeout (local clock).
_skip_until: ContextVar[float] = ContextVar("redis_store_skip_until", default=0.0)


def _load_scripts() -> dict[str, str]:
    common = (_LUA / "common.lua").read_text()
    return {name: common + "\n" + (_LUA / f"{name}.lua").read_text() for name in _SCRIPTS}


class _ClockLink:
    """Redis TIME against this process's monotonic clock: shared = local + offset."""

    __slots__ = ("at", "offset", "rtt")

    def __init__(self) -> None:
        self.offset: float | None = None
        self.rtt = math.inf
        self.at = -math.inf

    def sample(self, shared_ms: Any, t0: float, t1: float) -> None:
        # The reply was made somewhere inside the round trip, so a tight one pins the offset
        # best; an old estimate is trusted a little less every second (clocks drift apart).
        rtt = t1 - t0
        if rtt <= self.rtt + (t1 - self.at) * 1e-3:
            self.offset = float(shared_ms) / 1000.0 - (t0 + t1) / 2
            self.rtt = rtt
            self.at = t1

    def local(self, shared_ms: Any) -> float:
        return float(shared_ms) / 1000.0 - (self.offset or 0.0)


class _Gate:
    """The store's own breaker around Redis (§8 "behind its own local breaker")."""

    __slots__ = ("epoch", "open", "retry_at")

    def __init__(self) -> None:
        self.open = True  # until the first connection is made (at once, in the background)
        self.retry_at = 0.0
        self.epoch = 0  # bumped on every change, so cached views know to recompute


class _Shared:
    """What this process last knew of one key's shared layer (local clock)."""

    __slots__ = ("cooldowns", "counts", "counts_at", "cver", "probes", "state", "ver")

    def __init__(self) -> None:
        self.state: BreakerState | None = None  # None: not read yet
        self.ver = -1
        self.cooldowns: dict[Slot, Cooldown] = {}
        self.cver = -1
        self.probes: tuple[int, list[float]] = (-1, [])  # (generation, live expiries)
        self.counts: WindowCounts | None = None
        self.counts_at = -math.inf


def _rank(st: BreakerState, now: float) -> int:
    if st.state in (OPEN, FORCED_OPEN):
        return 2 if st.open_until is not None and now >= st.open_until else 3
    return 2 if st.state == HALF_OPEN else 1


def _until(st: BreakerState) -> float:
    return math.inf if st.open_until is None else st.open_until


def _longer(a: Cooldown, b: Cooldown) -> bool:
    return b.until is not None and (a.until is None or a.until > b.until)


def _field(slot: Slot) -> str:
    """A cooldown's hash field: "-" or "=<credential>", then the separator and the scope."""
    credential, scope = slot
    head = "-" if credential is None else "=" + credential
    return head + _SCOPE_SEP + scope if scope else head


def _slot(field: str) -> Slot:
    head, _, scope = field.partition(_SCOPE_SEP)
    return (None if head == "-" else head[1:]), scope


def _pairs(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []  # cjson encodes an empty table as {}


class RedisStateStore:
    """A `StateStore` shared by every process on one Redis (see the module docstring).

    One per event loop, like the engine. `clock` must be the engine's clock (the default is
    the real one). `subscribe=False` leaves out the pub/sub invalidation, so only the
    refresher keeps the cache fresh.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "gw:",
        reporter_id: str | None = None,
        op_timeout_s: float = 0.05,
        cache_ttl_s: float = 1.0,
        clock: Clock | None = None,
        subscribe: bool = True,
        max_connections: int = 16,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.reporter_id = reporter_id or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.op_timeout_s = op_timeout_s
        self.cache_ttl_s = cache_ttl_s
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.subscribe = subscribe
        self.max_connections = max_connections
        self.channel = prefix + "events"
        self.local = LocalStateStore()
        self._texts = _load_scripts()
        self._shared: dict[str, _Shared] = {}
        self._views: dict[str, tuple[Any, ...]] = {}
        self._base: dict[str, int] = {}
        self._windows: dict[str, tuple[float, int]] = {}
        self._keep_ms: dict[str, int] = {}
        self._written: dict[str, tuple[str, ...]] = {}
        self._tokens: dict[int, tuple[str, str, int, int, float]] = {}
        self._next_token = 1
        self._pending: set[str] = set()
        self._counting: dict[str, list[tuple[tuple[int, int, int], Any]]] = {}
        self._flushers: set[asyncio.Task[None]] = set()
        self._cas_flights: dict[tuple[Any, ...], asyncio.Future[bool | None]] = {}
        self._reserving: dict[str, int] = {}
        self._gate = _Gate()
        self._warned = False  # an outage is logged once
        self._verifying: asyncio.Task[None] | None = None
        self._link = _ClockLink()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Any = None  # callers' operations: op_timeout_s on every read
        self._patient: Any = None  # the store's own checks and reconnections: _patience
        self._patience = max(0.25, 5 * op_timeout_s)
        self._scripts: dict[str, Any] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._wake: asyncio.Event | None = None
        self._up: asyncio.Event | None = None
        self._subscribed: asyncio.Event | None = None

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "gw:",
        reporter_id: str | None = None,
        op_timeout_s: float = 0.05,
        cache_ttl_s: float = 1.0,
        **options: Any,
    ) -> RedisStateStore:
        """A store on the Redis at `url` (redis://host:port/db). Connects lazily, in the
        running loop, on first use; an unreachable Redis only means local state for now."""
        return cls(url, prefix=prefix, reporter_id=reporter_id, op_timeout_s=op_timeout_s,
                   cache_ttl_s=cache_ttl_s, **options)

    # introspection (tests, console) --------------------------------------------------------
    @property
    def shared_available(self) -> bool:
        """False while Redis is considered down (the local layer decides alone)."""
        return not self._gate.open

    def layers(self, key: str) -> tuple[BreakerState | None, BreakerState]:
        """(shared state as last known, None if never read; local state), local clock."""
        entry = self._shared.get(key)
        return (entry.state if entry else None), self.local.state(key)

    # breaker state -------------------------------------------------------------------------
    def state(self, key: str) -> BreakerState:
        return self._view(key)[0]

    def _view(self, key: str) -> tuple[BreakerState, str]:
        """(the state the breaker sees, the layer it comes from)."""
        loc = self.local.state(key)
        entry = self._shared.get(key)
        sh = entry.state if entry is not None else None
        if sh is None:
            self._discover(key)
        gate = self._gate
        if (sh is None or sh.state == CLOSED) and loc.state == CLOSED and not gate.open:
            layer = SHARED if sh is not None and (sh.mode != NORMAL or loc.opened_count <= sh.opened_count) else LOCAL
        else:
            layer = self._choose(sh, loc, self.clock.monotonic())
        cached = self._views.get(key)
        if (cached is not None and cached[0] is sh and cached[1] is loc and cached[2] == gate.epoch
                and cached[3] == layer):
            return cached[4], layer
        generation = (sh.generation if sh is not None else 0) + loc.generation + self._base.get(key, 0)
        chosen = sh if layer == SHARED and sh is not None else loc
        view = chosen if chosen.generation == generation else replace(chosen, generation=generation)
        self._views[key] = (sh, loc, gate.epoch, layer, view)
        return view, layer

    def _choose(self, sh: BreakerState | None, loc: BreakerState, now: float) -> str:
        if sh is None:
            return LOCAL
        if self._gate.open and not (sh.state in (OPEN, FORCED_OPEN) and _rank(sh, now) == 3):
            return LOCAL  # Redis is away: only a shared break still running is honoured
        if sh.mode != NORMAL:
            return SHARED
        rs, rl = _rank(sh, now), _rank(loc, now)
        if rs != rl:
            return SHARED if rs > rl else LOCAL
        if rs == 3:
            return LOCAL if _until(loc) > _until(sh) else SHARED
        if rs == 1:
            return LOCAL if loc.opened_count > sh.opened_count else SHARED
        return SHARED

    async def compare_and_set(self, key: str, expected: BreakerState, new: BreakerState) -> bool:
        view, layer = self._view(key)
        if (view.state, view.generation, view.mode) != (expected.state, expected.generation, expected.mode):
            return False
        delta = new.generation - expected.generation
        if new.mode != expected.mode or new.reason in _OPERATOR_REASONS:
            targets: tuple[str, ...] = (SHARED, LOCAL)  # an operator's action: everywhere
        elif expected.state == CLOSED and new.state == OPEN:
            decided = _trip_layer.get()
            targets = (decided[1],) if decided is not None and decided[0] == key else (LOCAL,)
        else:
            targets = (layer,)
        won: bool | None = None
        written: tuple[str, ...] = ()
        if SHARED in targets:
            won = await self._cas_shared(key, new, delta)
            if won is False:
                return False
            if won:
                written = (SHARED,)
            elif targets == (SHARED,):
                if expected.state != CLOSED:
                    return False  # the shared layer cannot move now; the view falls back
                targets = (LOCAL,)  # a trip Redis could not take opens the local breaker
        if LOCAL in targets:
            loc = self.local.state(key)
            ok = await self.local.compare_and_set(key, loc, replace(new, generation=loc.generation + delta))
            if ok:
                written += (LOCAL,)
            won = ok if won is None else won
        if won:
            self._written[key] = written
        return bool(won)

    async def _cas_shared(self, key: str, new: BreakerState, delta: int) -> bool | None:
        """True: written; False: the shared state was not `expected` (the cache now holds the
        current one); None: Redis did not answer. Concurrent tasks of this process asking for
        the same transition share one round trip, and only the first can have won."""
        entry = self._shared.get(key)
        sh = entry.state if entry is not None and entry.state is not None else BreakerState()
        flight = (key, sh.state, sh.generation, sh.mode, new.state, new.mode, delta)
        leader = self._cas_flights.get(flight)
        if leader is not None:
            result = await asyncio.shield(leader)
            return None if result is None else False
        done: asyncio.Future[bool | None] = asyncio.get_running_loop().create_future()
        self._cas_flights[flight] = done
        result = False
        try:
            result = await self._cas_script(key, sh, new, delta)
        finally:
            del self._cas_flights[flight]
            done.set_result(result)
        return result

    async def _cas_script(self, key: str, sh: BreakerState, new: BreakerState, delta: int) -> bool | None:
        now = self.clock.monotonic()
        open_ms = "" if new.open_until is None else f"{(new.open_until - now) * 1000:.3f}"
        base = self._base_name(key)
        reply = await self._run("cas", [base + ":s"], [
            sh.state, sh.generation, sh.mode, new.state, delta, open_ms, new.opened_count,
            new.reason, f"{(new.since - now) * 1000:.3f}", new.mode, new.cause, self.channel, key,
            self.reporter_id,
        ], at=1)
        if reply is None:
            return None
        self._apply_state(key, reply[2:])
        return int(reply[0]) == 1

    # counts --------------------------------------------------------------------------------
    async def add_outcome(
        self, key: str, now: float, *, failure: bool, slow: bool, window_s: float, buckets: int,
        consecutive: bool = True, policy: BreakerPolicy | None = None,
    ) -> WindowCounts:
        local = await self.local.add_outcome(key, now, failure=failure, slow=slow, window_s=window_s,
                                             buckets=buckets, consecutive=consecutive)
        self._windows[key] = (window_s, buckets)
        reply = await self._count_shared(key, (int(failure), int(slow), int(consecutive)))
        if reply is None:
            _trip_layer.set((key, LOCAL))
            return local
        calls, fails, slows, run, reporters, most = (int(x) for x in reply)
        pooled = WindowCounts(calls, fails, slows, run)
        entry = self._entry(key)
        entry.counts, entry.counts_at = pooled, self.clock.monotonic()
        min_calls = policy.min_calls if policy is not None else 10
        quorum = reporters >= 2 or most > 10 * min_calls
        if quorum and (policy is None or trip_reason(policy, pooled) is not None):
            _trip_layer.set((key, SHARED))
            return pooled
        _trip_layer.set((key, LOCAL))
        if policy is not None and trip_reason(policy, local) is not None:
            return local
        return pooled if quorum else local

    async def _count_shared(self, key: str, outcome: tuple[int, int, int]) -> list[Any] | None:
        """The pooled window just after `outcome`, or None when Redis did not answer within
        the op timeout. Outcomes of one key that arrive while its script is in flight go
        together in the next one, so a burst of calls costs a few round trips, not a queue."""
        if not self._bind() or self._gate.open:
            return None
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[Any] | None] = loop.create_future()
        queue = self._counting.get(key)
        if queue is None:
            queue = self._counting[key] = []
            task = loop.create_task(self._flush_counts(key, queue), context=contextvars.Context())
            self._flushers.add(task)
            task.add_done_callback(self._flushers.discard)
        queue.append((outcome, done))
        if _skip_until.get() > self.clock.monotonic():
            return None  # this call has waited out one timeout already: local counts only
        try:
            async with asyncio.timeout(self.op_timeout_s):
                return await asyncio.shield(done)
        except TimeoutError:
            _skip_until.set(self.clock.monotonic() + self.cache_ttl_s)
            return None  # decide on local counts; the outcome still reaches Redis with its batch

    async def _flush_counts(self, key: str, queue: list[tuple[tuple[int, int, int], Any]]) -> None:
        try:
            while queue:
                batch = queue[:]
                del queue[:]
                window_s, buckets = self._windows[key]
                bucket_ms = window_s / buckets * 1000.0
                base = self._base_name(key)
                args: list[Any] = [base, f"{bucket_ms:.3f}", buckets, self.reporter_id,
                                   int(window_s * 1000 + bucket_ms)]
                for outcome, _ in batch:
                    args += outcome
                reply = await self._run("count", [base + ":s"], args, at=0, caller=False)
                for i, (_, done) in enumerate(batch):
                    if not done.done():
                        done.set_result(None if reply is None else reply[1 + 6 * i:7 + 6 * i])
        finally:
            if self._counting.get(key) is queue:
                del self._counting[key]
            for _, done in queue:
                if not done.done():
                    done.set_result(None)

    def counts(self, key: str, now: float) -> WindowCounts:
        entry = self._shared.get(key)
        if (entry is not None and entry.counts is not None and not self._gate.open
                and self.clock.monotonic() - entry.counts_at <= 2 * self.cache_ttl_s):
            return entry.counts
        return self.local.counts(key, now)

    async def clear_counts(self, key: str) -> None:
        await self.local.clear_counts(key)
        if SHARED in self._written.get(key, ()):
            entry = self._entry(key)
            entry.counts = None
            await self._run("clear", [self._base_name(key) + ":s"], [], at=1)

    # half-open probes ----------------------------------------------------------------------
    async def reserve_probe(
        self, key: str, generation: int, limit: int, ttl: float, now: float
    ) -> int | None:
        view, layer = self._view(key)
        if generation != view.generation:
            return None  # the state moved on while the caller was deciding
        if layer == LOCAL:
            loc = self.local.state(key)
            if loc.state != HALF_OPEN:
                return self._token(key, FREE, 0, 0, now + ttl)  # nothing to reserve locally
            inner = await self.local.reserve_probe(key, loc.generation, limit, ttl, now)
            return None if inner is None else self._token(key, LOCAL, loc.generation, inner, now + ttl)
        entry = self._entry(key)
        assert entry.state is not None
        gen = entry.state.generation
        # Ask Redis only while a slot could still be free: a burst of calls must not become a
        # burst of round trips for slots that are known to be taken.
        known, asking = entry.probes, self._reserving.get(key, 0)
        live = sum(1 for e in known[1] if e > now) if known[0] == gen else 0
        if live + asking >= limit:
            return None
        keep_ms = self._keep_ms[key] = int(3 * ttl * 1000)
        base = self._base_name(key)
        self._reserving[key] = asking + 1
        try:
            reply = await self._run("reserve", [f"{base}:p:{gen}", f"{base}:q:{gen}", base + ":s"],
                                    [gen, limit, int(ttl * 1000), keep_ms], at=1)
        finally:
            self._reserving[key] -= 1
        if reply is None:
            if self._gate.open:  # Redis is down: the local layer decides this call
                return await self.reserve_probe(key, self._view(key)[0].generation, limit, ttl, now)
            return None  # no answer about the slots: this call does not probe
        token = int(reply[0])
        if token < 0:
            self._apply_state(key, reply[2:])
            return None
        self._set_probes(key, gen, reply[2:])
        return None if token == 0 else self._token(key, SHARED, gen, token, now + ttl)

    def _token(self, key: str, layer: str, gen: int, inner: int, expires: float) -> int:
        token = self._next_token
        self._next_token += 1
        if len(self._tokens) >= 4096:  # tokens of hung probes nobody released
            now = self.clock.monotonic()
            for t in [t for t, info in self._tokens.items() if info[4] <= now]:
                del self._tokens[t]
        self._tokens[token] = (key, layer, gen, inner, expires)
        return token

    def _set_probes(self, key: str, gen: int, live: list[Any]) -> None:
        self._entry(key).probes = (gen, sorted(self._link.local(live[i]) for i in range(1, len(live), 2)))

    async def release_probe(self, key: str, generation: int, token: int) -> None:
        info = self._tokens.pop(token, None)
        if info is None:
            return
        _, layer, gen, inner, _ = info
        if layer == LOCAL:
            await self.local.release_probe(key, gen, inner)
        elif layer == SHARED:
            reply = await self._run("release", [f"{self._base_name(key)}:p:{gen}"], [inner], at=0)
            if reply is not None:
                self._set_probes(key, gen, reply[1:])

    def probes_in_flight(self, key: str, generation: int, now: float) -> tuple[int, float | None]:
        view, layer = self._view(key)
        step = generation - view.generation
        if step not in (0, 1):
            return 0, None
        if layer == LOCAL:
            return self.local.probes_in_flight(key, self.local.state(key).generation + step, now)
        entry = self._shared[key]
        assert entry.state is not None
        gen, expiries = entry.probes
        if gen != entry.state.generation + step:
            return 0, None
        live = [e for e in expiries if e > now]
        return len(live), (live[0] if live else None)

    async def add_probe_result(self, key: str, generation: int, success: bool) -> tuple[int, int]:
        layer = self._view(key)[1]
        if layer == LOCAL:
            return await self.local.add_probe_result(key, self.local.state(key).generation, success)
        entry = self._shared[key]
        assert entry.state is not None
        gen = entry.state.generation
        reply = await self._run("probe_result", [f"{self._base_name(key)}:q:{gen}"],
                                ["ok" if success else "fail", self._keep_ms.get(key, 105_000)])
        if reply is None:
            return 0, 0  # undecided; the view is local from now on
        return int(reply[0]), int(reply[1])

    # cooldowns -----------------------------------------------------------------------------
    def cooldowns(self, key: str) -> dict[Slot, Cooldown]:
        local = self.local.cooldowns(key)
        entry = self._shared.get(key)
        if entry is None or entry.state is None:
            self._discover(key)
        if entry is None:
            return local
        shared = entry.cooldowns
        if not shared:
            return local
        if not local:
            return shared
        merged = dict(shared)
        for slot, cd in local.items():
            other = merged.get(slot)
            if other is None or _longer(cd, other):
                merged[slot] = cd
        return merged

    async def set_cooldown(self, key: str, cooldown: Cooldown) -> bool:
        started = await self.local.set_cooldown(key, cooldown)
        now = self.clock.monotonic()
        for_ms = "" if cooldown.until is None else f"{max(0.0, cooldown.until - now) * 1000:.3f}"
        base = self._base_name(key)
        reply = await self._run("cooldown", [base + ":c", base + ":s"], [
            _field(cooldown.slot), cooldown.kind, for_ms, cooldown.reason, self.channel, key, self.reporter_id,
            cooldown.version,
        ], at=1)
        if reply is None:
            return started
        self._apply_cooldowns(key, reply[2], reply[3:])
        return int(reply[0]) == 1

    async def drop_cooldown(self, key: str, slot: Slot) -> None:
        await self.local.drop_cooldown(key, slot)
        base = self._base_name(key)
        reply = await self._run("drop", [base + ":c", base + ":s"],
                                [_field(slot), self.channel, key, self.reporter_id], at=0)
        if reply is not None:
            self._apply_cooldowns(key, reply[1], reply[2:])

    async def clear_cooldowns(self, key: str) -> None:
        await self.local.clear_cooldowns(key)
        base = self._base_name(key)
        reply = await self._run("uncool", [base + ":c", base + ":s"],
                                [self.channel, key, self.reporter_id], at=0)
        if reply is not None:
            self._apply_cooldowns(key, reply[1], [])

    def keys(self) -> list[str]:
        shared = {k for k, e in self._shared.items() if e.state is not None or e.cooldowns}
        return sorted(set(self.local.keys()) | shared)

    # cache ---------------------------------------------------------------------------------
    def _base_name(self, key: str) -> str:
        return f"{self.prefix}{{{key}}}"

    def _entry(self, key: str) -> _Shared:
        entry = self._shared.get(key)
        if entry is None:
            entry = self._shared[key] = _Shared()
        return entry

    def _discover(self, key: str) -> None:
        """First sight of `key`: have the refresher read it now rather than at its next tick."""
        if key not in self._pending:
            self._pending.add(key)
            if self._bind() and self._wake is not None:
                self._wake.set()

    def _apply_state(self, key: str, fields: list[Any], *, force: bool = False) -> bool:
        """Cache a shared state read from Redis. True if it is a write we see happen (newer
        than what we held), False if it is not newer or the first we hear of the key."""
        entry = self._entry(key)
        ver = int(fields[8] or 0)
        if entry.state is not None and not force and ver <= entry.ver:
            return False  # older than (or the same as) what we hold: replies and messages race
        seen = entry.state is not None and ver > entry.ver
        link = self._link
        st = BreakerState(
            state=fields[0] or CLOSED,
            generation=int(fields[1] or 0),
            open_until=link.local(fields[2]) if fields[2] else None,
            opened_count=int(fields[3] or 0),
            reason=fields[4] or "",
            since=link.local(fields[5]) if fields[5] else 0.0,
            mode=fields[6] or NORMAL,
            cause=fields[7] or "",
        )
        old = entry.state
        if old is not None and st.generation < old.generation:
            # Redis lost this key (restarted without persistence): never let the breaker's
            # generation go back, or an old permit could pass for a current one.
            self._base[key] = self._base.get(key, 0) + old.generation - st.generation + 1
        entry.state, entry.ver = st, ver
        if st.state != HALF_OPEN or entry.probes[0] != st.generation:
            entry.probes = (st.generation, [])
        return seen

    async def _mirror(self, key: str, origin: Any) -> None:
        """Another process's operator action (reset, force open, mode): apply it to our local
        layer too, so that it also holds while Redis is away."""
        st = self._shared[key].state
        if (st is None or origin == self.reporter_id
                or not (st.reason in _OPERATOR_REASONS or st.reason.startswith("mode_"))):
            return
        loc = self.local.state(key)
        await self.local.compare_and_set(key, loc, replace(st, generation=loc.generation + 1))
        if st.reason != "forced_open":
            await self.local.clear_counts(key)

    def _apply_cooldowns(self, key: str, cver: Any, pairs: list[Any], *, force: bool = False) -> None:
        entry = self._entry(key)
        cver = int(cver or 0)
        if cver < entry.cver and not force:
            return
        book: dict[Slot, Cooldown] = {}
        for i in range(0, len(pairs) - 1, 2):
            field, value = pairs[i], json.loads(pairs[i + 1])
            credential, scope = _slot(field)
            until = self._link.local(value["u"]) if value["u"] != "" else None
            book[credential, scope] = Cooldown(credential, value["k"], until, value.get("r", ""), scope,
                                               value.get("v", ""))
        entry.cooldowns, entry.cver = book, cver

    async def _refresh(self, keys: list[str], *, force: bool = False) -> None:
        """Re-read `keys` (state, cooldowns, live probes, pooled counts), 64 per round trip."""
        for i in range(0, len(keys), 64):
            chunk = keys[i:i + 64]
            args: list[Any] = []
            for key in chunk:
                window = self._windows.get(key)
                bucket_ms = f"{window[0] / window[1] * 1000:.3f}" if window else ""
                args += [self._base_name(key), bucket_ms, window[1] if window else 0]
            reply = await self._run("snapshot", [self._base_name(k) + ":s" for k in chunk], args,
                                    at=0, caller=False)
            if reply is None:
                return
            now = self.clock.monotonic()
            for j, key in enumerate(chunk):
                fields, cooldowns, probes, counts = reply[1 + 4 * j:5 + 4 * j]
                if self._apply_state(key, fields, force=force):
                    await self._mirror(key, fields[11])
                self._apply_cooldowns(key, fields[10], _pairs(cooldowns), force=force)
                entry = self._shared[key]
                if fields[0] == "half_open":
                    entry.probes = (int(fields[1] or 0), sorted(self._link.local(e) for e in probes))
                if counts:
                    entry.counts = WindowCounts(*(int(c) for c in counts[:4]))
                    entry.counts_at = now

    async def _on_message(self, data: str) -> None:
        if self._link.offset is None:
            return  # cannot convert its times yet; the refresher reads the key anyway
        msg = json.loads(data)
        key = msg["k"]
        if msg["t"] == "s":
            if self._apply_state(key, msg["s"]):
                await self._mirror(key, msg["s"][11])
        elif msg["t"] == "c":
            self._apply_cooldowns(key, msg["v"], _pairs(msg["c"]))
            if msg.get("x") and msg.get("o") != self.reporter_id:
                await self.local.clear_cooldowns(key)  # an operator's reset, made elsewhere
            elif msg.get("d") and msg.get("o") != self.reporter_id:
                await self.local.drop_cooldown(key, _slot(msg["d"]))  # dropped elsewhere

    # Redis ---------------------------------------------------------------------------------
    def _bind(self) -> bool:
        """Use this loop's client, building it (and starting the background tasks) on first
        use in a loop. False outside a running loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        if loop is not self._loop:
            self._loop = loop
            self._tasks = []
            self._wake, self._up, self._subscribed = asyncio.Event(), asyncio.Event(), asyncio.Event()
            self._verifying = None
            self._counting.clear()
            self._cas_flights.clear()
            self._gate.open, self._gate.retry_at = True, 0.0
            self._gate.epoch += 1
            try:
                self._client = self._connect(self.op_timeout_s, self.op_timeout_s)
                self._patient = self._connect(None, self._patience, max_connections=2)
            except Exception as exc:  # a malformed URL: say so, and stay local
                log.error("REDIS_URL %r is unusable (%s); breakers use local state", self.url, exc)
                self._client = None
                self._gate.open, self._gate.retry_at = True, math.inf
                return True
            self._scripts = {name: self._client.register_script(text) for name, text in self._texts.items()}
        if self._client is not None and (not self._tasks or any(t.done() for t in self._tasks)):
            for task in self._tasks:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    log.error("Redis state store task failed", exc_info=task.exception())
            clean = contextvars.Context()  # the tasks must not inherit a caller's _skip_until
            self._tasks = [loop.create_task(self._refresh_forever(), name="redis-state-refresh",
                                            context=clean)]
            if self.subscribe:
                self._tasks.append(loop.create_task(self._listen_forever(), name="redis-state-listen",
                                                    context=contextvars.Context()))
        return True

    def _connect(self, socket_timeout: float | None, connect_timeout: float,
                 max_connections: int | None = None) -> Any:
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url, max_connections=max_connections or self.max_connections, timeout=None,
            socket_timeout=socket_timeout, socket_connect_timeout=connect_timeout,
            retry=Retry(NoBackoff(), 0), decode_responses=True, health_check_interval=0,
        )
        return aioredis.Redis(connection_pool=pool)

    async def _run(
        self, name: str, keys: list[str], args: list[Any], at: int | None = None, caller: bool = True
    ) -> Any:
        """Run one script under the op timeout; None (use local state) if Redis failed.

        A caller (a request's task, as opposed to this store's own tasks) that has waited out
        one timeout does not wait for Redis again for `cache_ttl_s`: one call pays at most
        one timeout, however many operations it makes.
        """
        if not self._bind() or self._gate.open:
            return None
        clock = self.clock
        t0 = clock.monotonic()
        if caller and _skip_until.get() > t0:
            return None
        try:
            async with asyncio.timeout(self.op_timeout_s):
                reply = await self._scripts[name](keys=keys, args=args)
        except (TimeoutError, RedisTimeoutError) as exc:
            if caller:
                _skip_until.set(clock.monotonic() + self.cache_ttl_s)
            self._suspect(exc)
            return None
        except Exception as exc:  # down or refusing: never the caller's problem
            self._fail(exc)
            return None
        if at is not None:
            self._link.sample(reply[at], t0, clock.monotonic())
        return reply

    def _report(self, exc: BaseException) -> None:
        if isinstance(exc, (TimeoutError, RedisTimeoutError)):
            self._suspect(exc)
        else:
            self._fail(exc)

    def _suspect(self, exc: BaseException) -> None:
        """A timeout: Redis may be hung, or only this process too busy to read its answer in
        time. Check with a patient ping (in the background) before giving up on Redis."""
        if self._gate.open or self._verifying is not None or self._loop is None:
            return
        self._verifying = self._loop.create_task(self._verify(exc), context=contextvars.Context())

    async def _verify(self, exc: BaseException) -> None:
        try:
            async with asyncio.timeout(self._patience):
                await self._patient.ping()
        except Exception:
            self._fail(exc)
        finally:
            self._verifying = None

    def _fail(self, exc: BaseException) -> None:
        gate = self._gate
        if gate.open:
            return
        gate.open = True
        gate.epoch += 1
        gate.retry_at = self.clock.monotonic() + self.cache_ttl_s
        if self._up is not None:
            self._up.clear()
        if self._wake is not None:
            self._wake.set()
        if not self._warned:
            self._warned = True
            log.warning("Redis unavailable (%s: %s); breakers use local state until it answers",
                        type(exc).__name__, exc)

    async def _reconnect(self) -> None:
        """(Re)connect while the gate is open: load the scripts and sample the clock, off the
        callers' path and with time to spare; on success close the gate and re-read every key.
        Until then callers do not wait for Redis, they use local state."""
        gate = self._gate
        client = self._patient
        for stale in (self._client, client):  # connections to a dead server are stale
            with contextlib.suppress(Exception):
                await stale.connection_pool.disconnect()
        try:
            async with asyncio.timeout(2 * self._patience):
                async with client.pipeline(transaction=False) as pipe:
                    for text in self._texts.values():
                        pipe.script_load(text)
                    await pipe.execute()
                t0 = self.clock.monotonic()
                seconds, micros = await client.time()
                self._link.sample(seconds * 1000 + micros / 1000, t0, self.clock.monotonic())
        except Exception as exc:
            gate.retry_at = self.clock.monotonic() + self.cache_ttl_s
            if not self._warned:
                self._warned = True
                log.warning("Redis at %s unavailable (%s: %s); breakers use local state until it "
                            "answers", self.url, type(exc).__name__, exc)
            return
        gate.open = False
        gate.epoch += 1
        keys = set(self._shared) | self._pending
        with contextlib.suppress(Exception):  # a slow scan only means keys are read on first use
            async with asyncio.timeout(2 * self._patience):
                keys.update(await self._scan_keys())
        self._pending.clear()
        await self._refresh(sorted(keys), force=True)
        assert self._up is not None
        self._up.set()
        if self._warned:
            log.warning("Redis answers again; breakers use shared state")
        self._warned = False

    async def connect(self, timeout_s: float = 2.0) -> bool:
        """Wait until the shared state is in use: connected, every shared key read and
        (with `subscribe`) transitions arriving. For start-up, so that the first calls already
        see and pool the fleet's evidence; False if Redis did not answer within `timeout_s`."""
        self._bind()
        if self._up is None or self._subscribed is None:
            return False
        try:
            async with asyncio.timeout(timeout_s):
                await self._up.wait()
                if self.subscribe:
                    await self._subscribed.wait()
        except TimeoutError:
            return False
        return True

    async def _refresh_forever(self) -> None:
        period = 0.9 * self.cache_ttl_s
        next_full = 0.0
        assert self._wake is not None
        while True:
            gate = self._gate
            now = self.clock.monotonic()
            wait = period
            try:
                if gate.open:
                    if now >= gate.retry_at:
                        await self._reconnect()
                    wait = max(0.0, gate.retry_at - self.clock.monotonic()) if gate.open else 0.0
                else:
                    if self._pending:
                        keys, self._pending = sorted(self._pending), set()
                        await self._refresh(keys)
                    if now >= next_full:
                        next_full = now + period
                        await self._refresh(list(self._shared))
                    wait = max(0.0, next_full - self.clock.monotonic())
            except Exception:  # a reply we could not read: keep the cache, say why, go on
                log.exception("Redis state refresh failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            self._wake.clear()

    async def _listen_forever(self) -> None:
        """Apply published transitions and cooldowns as they happen (§8 pub/sub invalidation)."""
        assert self._up is not None and self._subscribed is not None
        listener = self._connect(None, self._patience)
        try:
            while True:
                await self._up.wait()
                pubsub = listener.pubsub(ignore_subscribe_messages=True)
                try:
                    async with asyncio.timeout(self._patience):
                        await pubsub.subscribe(self.channel)
                    self._subscribed.set()
                    self._resync()  # what changed before we listened
                    while True:
                        msg = await pubsub.get_message(ignore_subscribe_messages=True,
                                                       timeout=self.cache_ttl_s)
                        if msg is not None and msg.get("type") == "message":
                            try:
                                await self._on_message(msg["data"])
                            except Exception:  # one unreadable message: say so, read on
                                log.exception("unreadable Redis state message %r", msg["data"])
                except Exception as exc:
                    self._subscribed.clear()
                    self._report(exc)
                    await self._quietly(listener.connection_pool.disconnect())
                    if self._up.is_set():  # a listener-only failure: do not spin
                        await asyncio.sleep(self.cache_ttl_s)
                finally:
                    self._subscribed.clear()
                    await self._quietly(pubsub.aclose())
        finally:
            await self._quietly(listener.aclose())

    async def _quietly(self, cleanup: Awaitable[Any]) -> None:
        """Close something that may belong to a dead connection: bounded, errors dropped."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self._patience):
                await cleanup

    def _resync(self) -> None:
        self._pending.update(self._shared)
        if self._wake is not None:
            self._wake.set()

    async def _scan_keys(self) -> list[str]:
        """Breaker keys with a shared state in Redis (read once per connection)."""
        escaped = "".join("\\" + c if c in "*?[]\\" else c for c in self.prefix)
        head, tail = len(self.prefix) + 1, len("}:s")
        found = []
        async for name in self._patient.scan_iter(match=escaped + "{*}:s", count=1000):
            found.append(name[head:-tail])
        return found

    async def aclose(self) -> None:
        """Stop the background tasks and close the connections (tests, shutdown)."""
        tasks = [*self._tasks, *self._flushers]
        if self._verifying is not None:
            tasks.append(self._verifying)
        self._tasks = []
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2 * self._patience)
        for client in (self._client, self._patient):
            if client is not None:
                await self._quietly(client.aclose())
        self._client = self._patient = None
        self._loop = None

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

Transitions: a trip goes to the layer the quorum rule chose for it (redis_counts); other
transitions stay in the layer the breaker saw; operator actions (reset, force open, modes) go
to both and are mirrored into every other process's local layer (redis_cache). Concurrent
tasks asking for the same transition share one compare-and-set.

Generations: the breaker sees one generation per key, the sum of the two layers' (plus a base
that keeps it from going back if Redis forgets a key), so a transition in either layer moves
it on by one and makes permits taken before it stale.

The pieces, one module each: the connection, its breaker and the clock offset (redis_link);
the cache of the shared layer and the tasks that keep it fresh (redis_cache); pooled counts
and the quorum rule (redis_counts); probe reservations (redis_probes); cooldowns
(redis_cooldowns). This module holds the layer view and the state changes, and wires them.
The hot path pays one round trip per outcome (shared by concurrent outcomes) and none per
admission. While Redis is away the local layer decides alone, except that a shared break still
running is honoured until its deadline. `connect()` waits for the connection at start-up;
without it the first calls use local state until it is made.
"""

from __future__ import annotations

import asyncio
import math
import os
import secrets
import socket
from dataclasses import replace
from typing import Any

from .clock import Clock, SystemClock
from .policy import BreakerPolicy
from .redis_cache import LOCAL, OPERATOR_REASONS, SHARED, SharedCache
from .redis_cooldowns import SharedCooldowns
from .redis_counts import SharedCounts, trip_layer
from .redis_link import RedisLink
from .redis_probes import ASK_LOCAL, SharedProbes
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

__all__ = ["RedisStateStore"]


def _rank(st: BreakerState, now: float) -> int:
    if st.state in (OPEN, FORCED_OPEN):
        return 2 if st.open_until is not None and now >= st.open_until else 3
    return 2 if st.state == HALF_OPEN else 1


def _until(st: BreakerState) -> float:
    return math.inf if st.open_until is None else st.open_until


def _choose(sh: BreakerState | None, loc: BreakerState, now: float, redis_down: bool) -> str:
    """The layer whose state the breaker sees: the more restrictive one."""
    if sh is None:
        return LOCAL
    if redis_down and not (sh.state in (OPEN, FORCED_OPEN) and _rank(sh, now) == 3):
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
        self._link = link = RedisLink(
            url, op_timeout_s=op_timeout_s, cache_ttl_s=cache_ttl_s, clock=self.clock, max_connections=max_connections
        )
        self._cache = cache = SharedCache(link, self.local, prefix=prefix, reporter_id=self.reporter_id)
        self._counts = SharedCounts(link, cache, self.reporter_id)
        self._probes = SharedProbes(link, cache)
        self._cooldowns = SharedCooldowns(link, cache)
        self._views: dict[str, tuple[Any, ...]] = {}
        self._written: dict[str, tuple[str, ...]] = {}  # the layers a key's last transition went to
        self._cas_flights: dict[tuple[Any, ...], asyncio.Future[bool | None]] = {}
        link.on_new_loop = self._forget_loop
        link.workers = (("redis-state-refresh", cache.refresh_forever),)
        if subscribe:
            link.workers += (("redis-state-listen", cache.listen_forever),)

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
        return cls(
            url, prefix=prefix, reporter_id=reporter_id, op_timeout_s=op_timeout_s, cache_ttl_s=cache_ttl_s, **options
        )

    def _forget_loop(self) -> None:
        self._counts.forget()
        self._cas_flights.clear()

    # introspection (tests, console) --------------------------------------------------------
    @property
    def shared_available(self) -> bool:
        """False while Redis is considered down (the local layer decides alone)."""
        return not self._link.gate.open

    def layers(self, key: str) -> tuple[BreakerState | None, BreakerState]:
        """(shared state as last known, None if never read; local state), local clock."""
        entry = self._cache.entries.get(key)
        return (entry.state if entry else None), self.local.state(key)

    # breaker state -------------------------------------------------------------------------
    def state(self, key: str) -> BreakerState:
        return self._view(key)[0]

    def _view(self, key: str) -> tuple[BreakerState, str]:
        """(the state the breaker sees, the layer it comes from)."""
        loc = self.local.state(key)
        entry = self._cache.entries.get(key)
        sh = entry.state if entry is not None else None
        if sh is None:
            self._cache.discover(key)
        gate = self._link.gate
        if (sh is None or sh.state == CLOSED) and loc.state == CLOSED and not gate.open:
            layer = SHARED if sh is not None and (sh.mode != NORMAL or loc.opened_count <= sh.opened_count) else LOCAL
        else:
            layer = _choose(sh, loc, self.clock.monotonic(), gate.open)
        cached = self._views.get(key)
        if (
            cached is not None
            and cached[0] is sh
            and cached[1] is loc
            and cached[2] == gate.epoch
            and cached[3] == layer
        ):
            return cached[4], layer
        generation = (sh.generation if sh is not None else 0) + loc.generation + self._cache.base.get(key, 0)
        chosen = sh if layer == SHARED and sh is not None else loc
        view = chosen if chosen.generation == generation else replace(chosen, generation=generation)
        self._views[key] = (sh, loc, gate.epoch, layer, view)
        return view, layer

    async def compare_and_set(self, key: str, expected: BreakerState, new: BreakerState) -> bool:
        view, layer = self._view(key)
        if (view.state, view.generation, view.mode) != (expected.state, expected.generation, expected.mode):
            return False
        delta = new.generation - expected.generation
        if new.mode != expected.mode or new.reason in OPERATOR_REASONS:
            targets: tuple[str, ...] = (SHARED, LOCAL)  # an operator's action: everywhere
        elif expected.state == CLOSED and new.state == OPEN:
            decided = trip_layer.get()
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
        entry = self._cache.entries.get(key)
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
        cache = self._cache
        reply = await self._link.run(
            "cas",
            [cache.base_name(key) + ":s"],
            [
                sh.state,
                sh.generation,
                sh.mode,
                new.state,
                delta,
                open_ms,
                new.opened_count,
                new.reason,
                f"{(new.since - now) * 1000:.3f}",
                new.mode,
                new.cause,
                cache.channel,
                key,
                self.reporter_id,
            ],
            at=1,
        )
        if reply is None:
            return None
        cache.apply_state(key, reply[2:])
        return int(reply[0]) == 1

    # counts --------------------------------------------------------------------------------
    async def add_outcome(
        self,
        key: str,
        now: float,
        *,
        failure: bool,
        slow: bool,
        window_s: float,
        buckets: int,
        consecutive: bool = True,
        policy: BreakerPolicy | None = None,
    ) -> WindowCounts:
        return await self._counts.add_outcome(
            key,
            now,
            failure=failure,
            slow=slow,
            window_s=window_s,
            buckets=buckets,
            consecutive=consecutive,
            policy=policy,
        )

    def counts(self, key: str, now: float) -> WindowCounts:
        return self._counts.counts(key, now)

    async def clear_counts(self, key: str) -> None:
        await self._counts.clear(key, shared=SHARED in self._written.get(key, ()))

    async def reset_counts(self, key: str) -> None:
        await self._counts.clear(key, shared=True)

    # half-open probes ----------------------------------------------------------------------
    async def reserve_probe(self, key: str, generation: int, limit: int, ttl: float, now: float) -> int | None:
        view, layer = self._view(key)
        if generation != view.generation:
            return None  # the state moved on while the caller was deciding
        if layer == LOCAL:
            return await self._probes.reserve_local(key, limit, ttl, now)
        token = await self._probes.reserve_shared(key, limit, ttl, now)
        if token == ASK_LOCAL:  # Redis is down: the local layer decides this call
            return await self.reserve_probe(key, self._view(key)[0].generation, limit, ttl, now)
        return token

    async def release_probe(self, key: str, generation: int, token: int) -> None:
        await self._probes.release(key, token)

    def probes_in_flight(self, key: str, generation: int, now: float) -> tuple[int, float | None]:
        view, layer = self._view(key)
        step = generation - view.generation
        if step not in (0, 1):
            return 0, None
        if layer == LOCAL:
            return self.local.probes_in_flight(key, self.local.state(key).generation + step, now)
        return self._probes.in_flight_shared(key, step, now)

    async def add_probe_result(self, key: str, generation: int, success: bool) -> tuple[int, int]:
        layer = self._view(key)[1]
        if layer == LOCAL:
            return await self.local.add_probe_result(key, self.local.state(key).generation, success)
        return await self._probes.add_result_shared(key, success)

    # cooldowns -----------------------------------------------------------------------------
    def cooldowns(self, key: str) -> dict[Slot, Cooldown]:
        return self._cooldowns.cooldowns(key)

    async def set_cooldown(self, key: str, cooldown: Cooldown) -> bool:
        return await self._cooldowns.set_cooldown(key, cooldown)

    async def drop_cooldown(self, key: str, slot: Slot) -> None:
        await self._cooldowns.drop_cooldown(key, slot)

    async def clear_cooldowns(self, key: str) -> None:
        await self._cooldowns.clear_cooldowns(key)

    def keys(self) -> list[str]:
        shared = {k for k, e in self._cache.entries.items() if e.state is not None or e.cooldowns}
        return sorted(set(self.local.keys()) | shared)

    # lifecycle -----------------------------------------------------------------------------
    async def connect(self, timeout_s: float = 2.0) -> bool:
        """Wait until the shared state is in use: connected, every shared key read and
        (with `subscribe`) transitions arriving. For start-up, so that the first calls already
        see and pool the fleet's evidence; False if Redis did not answer within `timeout_s`."""
        return await self._link.ready(timeout_s, subscribe=self.subscribe)

    async def aclose(self) -> None:
        """Stop the background tasks and close the connections (tests, shutdown)."""
        await self._link.aclose(self._counts.flushers)

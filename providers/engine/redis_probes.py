"""Half-open probe reservations in either layer, behind tokens of the store's own.

A probe token handed to the breaker remembers the layer and generation it was reserved in, so
its release and result go where the slot is. Redis is asked for a slot only while one could
still be free: a burst of calls must not become a burst of round trips for slots that are
known to be taken. A half-open slot that Redis did not confirm is not taken.
"""

from __future__ import annotations

from .redis_cache import FREE, LOCAL, SHARED, SharedCache
from .redis_link import RedisLink
from .store import HALF_OPEN

# reserve_shared's answer when Redis is down: the local layer decides this call.
ASK_LOCAL = -1


class SharedProbes:
    """Probe tokens of one store: (key, layer, generation, inner token, expiry) each."""

    def __init__(self, link: RedisLink, cache: SharedCache) -> None:
        self.link = link
        self.cache = cache
        self.local = cache.local
        self.tokens: dict[int, tuple[str, str, int, int, float]] = {}
        self.next_token = 1
        self.reserving: dict[str, int] = {}  # reservations asked of Redis and not answered yet
        self.keep_ms: dict[str, int] = {}  # how long Redis keeps a key's probe results

    def token(self, key: str, layer: str, gen: int, inner: int, expires: float) -> int:
        token = self.next_token
        self.next_token += 1
        if len(self.tokens) >= 4096:  # tokens of hung probes nobody released
            now = self.link.clock.monotonic()
            for t in [t for t, info in self.tokens.items() if info[4] <= now]:
                del self.tokens[t]
        self.tokens[token] = (key, layer, gen, inner, expires)
        return token

    async def reserve_local(self, key: str, limit: int, ttl: float, now: float) -> int | None:
        loc = self.local.state(key)
        if loc.state != HALF_OPEN:
            return self.token(key, FREE, 0, 0, now + ttl)  # nothing to reserve locally
        inner = await self.local.reserve_probe(key, loc.generation, limit, ttl, now)
        return None if inner is None else self.token(key, LOCAL, loc.generation, inner, now + ttl)

    async def reserve_shared(self, key: str, limit: int, ttl: float, now: float) -> int | None:
        """A token, None (no slot for this call), or ASK_LOCAL (Redis is down)."""
        entry = self.cache.entry(key)
        assert entry.state is not None
        gen = entry.state.generation
        known, asking = entry.probes, self.reserving.get(key, 0)
        live = sum(1 for e in known[1] if e > now) if known[0] == gen else 0
        if live + asking >= limit:
            return None
        keep_ms = self.keep_ms[key] = int(3 * ttl * 1000)
        base = self.cache.base_name(key)
        self.reserving[key] = asking + 1
        try:
            reply = await self.link.run(
                "reserve",
                [f"{base}:p:{gen}", f"{base}:q:{gen}", base + ":s"],
                [gen, limit, int(ttl * 1000), keep_ms],
                at=1,
            )
        finally:
            self.reserving[key] -= 1
        if reply is None:
            # Redis down: the local layer decides; no answer about the slots: no probe
            return ASK_LOCAL if self.link.gate.open else None
        token = int(reply[0])
        if token < 0:
            self.cache.apply_state(key, reply[2:])
            return None
        self.cache.set_probes(key, gen, reply[2:])
        return None if token == 0 else self.token(key, SHARED, gen, token, now + ttl)

    async def release(self, key: str, token: int) -> None:
        info = self.tokens.pop(token, None)
        if info is None:
            return
        _, layer, gen, inner, _ = info
        if layer == LOCAL:
            await self.local.release_probe(key, gen, inner)
        elif layer == SHARED:
            reply = await self.link.run("release", [f"{self.cache.base_name(key)}:p:{gen}"], [inner], at=0)
            if reply is not None:
                self.cache.set_probes(key, gen, reply[1:])

    def in_flight_shared(self, key: str, step: int, now: float) -> tuple[int, float | None]:
        """(live probes, first expiry) of the shared generation `step` after the current."""
        entry = self.cache.entries[key]
        assert entry.state is not None
        gen, expiries = entry.probes
        if gen != entry.state.generation + step:
            return 0, None
        live = [e for e in expiries if e > now]
        return len(live), (live[0] if live else None)

    async def add_result_shared(self, key: str, success: bool) -> tuple[int, int]:
        entry = self.cache.entries[key]
        assert entry.state is not None
        gen = entry.state.generation
        reply = await self.link.run(
            "probe_result",
            [f"{self.cache.base_name(key)}:q:{gen}"],
            ["ok" if success else "fail", self.keep_ms.get(key, 105_000)],
        )
        if reply is None:
            return 0, 0  # undecided; the view is local from now on
        return int(reply[0]), int(reply[1])

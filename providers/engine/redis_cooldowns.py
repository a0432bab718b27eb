"""Credential and target cooldowns in both layers: set in both, read as the longer of the two.

Each cooldown is one field of the key's cooldown hash in Redis, its expiry set on Redis TIME;
the scripts publish every change, and a reset or a drop made elsewhere is mirrored into this
process's local layer (see redis_cache).
"""

from __future__ import annotations

from .redis_cache import SharedCache, cooldown_field
from .redis_link import RedisLink
from .store import Cooldown, Slot


def _longer(a: Cooldown, b: Cooldown) -> bool:
    return b.until is not None and (a.until is None or a.until > b.until)


class SharedCooldowns:
    """The cooldown half of the Redis state store."""

    def __init__(self, link: RedisLink, cache: SharedCache) -> None:
        self.link = link
        self.cache = cache
        self.local = cache.local

    def cooldowns(self, key: str) -> dict[Slot, Cooldown]:
        local = self.local.cooldowns(key)
        entry = self.cache.entries.get(key)
        if entry is None or entry.state is None:
            self.cache.discover(key)
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
        cache = self.cache
        now = self.link.clock.monotonic()
        for_ms = "" if cooldown.until is None else f"{max(0.0, cooldown.until - now) * 1000:.3f}"
        base = cache.base_name(key)
        reply = await self.link.run(
            "cooldown",
            [base + ":c", base + ":s"],
            [
                cooldown_field(cooldown.slot),
                cooldown.kind,
                for_ms,
                cooldown.reason,
                cache.channel,
                key,
                cache.reporter_id,
                cooldown.version,
            ],
            at=1,
        )
        if reply is None:
            return started
        cache.apply_cooldowns(key, reply[2], reply[3:])
        return int(reply[0]) == 1

    async def drop_cooldown(self, key: str, slot: Slot) -> None:
        await self.local.drop_cooldown(key, slot)
        cache = self.cache
        base = cache.base_name(key)
        reply = await self.link.run(
            "drop", [base + ":c", base + ":s"], [cooldown_field(slot), cache.channel, key, cache.reporter_id], at=0
        )
        if reply is not None:
            cache.apply_cooldowns(key, reply[1], reply[2:])

    async def clear_cooldowns(self, key: str) -> None:
        await self.local.clear_cooldowns(key)
        cache = self.cache
        base = cache.base_name(key)
        reply = await self.link.run("uncool", [base + ":c", base + ":s"], [cache.channel, key, cache.reporter_id], at=0)
        if reply is not None:
            cache.apply_cooldowns(key, reply[1], [])

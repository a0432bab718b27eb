"""Cooldowns: quota state, kept apart from the breaker's health state (resilience.md §1, §2).

A 429 says "this credential, slow down until T"; a spend cap says "this credential has no money
left"; a 401/403 on a rotated credential says "this key is bad". None of them is an outage, so
none touches the breaker. Each is keyed by (breaker key, credential): a 429 on one API key does
not cool another, and the next attempt on the same target simply uses the next credential.
"""

from __future__ import annotations

from .clock import Clock
from .events import CooldownStarted, Emitter
from .store import Cooldown, StateStore

RATE_LIMITED, EXHAUSTED, INVALID = "rate_limited", "exhausted", "invalid"


class Cooldowns:
    """Reads and starts cooldowns in the store, announcing each new one as an event."""

    def __init__(self, store: StateStore, clock: Clock, emitter: Emitter) -> None:
        self.store = store
        self.clock = clock
        self.emitter = emitter

    def pick(
        self, key: str, credentials: tuple[str, ...], now: float
    ) -> tuple[str | None, str | None]:
        """(credential to use, None), or (None, skip reason) when every credential is set aside.

        The first credential in the target's order that is not cooling down wins. The skip
        reason is "cooldown" while any credential is only rate limited (it will come back by
        itself), "exhausted" when all are exhausted or invalid.
        """
        book = self.store.cooldowns(key)
        if not credentials:
            cd = book.get(None) if book else None
            if cd is None or not cd.active(now):
                return None, None
            return None, "cooldown" if cd.kind == RATE_LIMITED else "exhausted"
        if not book:
            return credentials[0], None
        temporary = False
        for credential in credentials:
            cd = book.get(credential)
            if cd is None or not cd.active(now):
                return credential, None
            temporary = temporary or cd.kind == RATE_LIMITED
        return None, "cooldown" if temporary else "exhausted"

    def available(self, key: str, credentials: tuple[str, ...], now: float) -> int:
        """How many of `credentials` are usable now (1 or 0 for a target without credentials)."""
        book = self.store.cooldowns(key)
        creds: tuple[str | None, ...] = credentials or (None,)
        return sum(1 for c in creds if (cd := book.get(c)) is None or not cd.active(now))

    async def start(
        self, key: str, credential: str | None, kind: str, seconds: float | None, reason: str
    ) -> bool:
        """Set `credential` aside for `seconds` (None: until reset); False if one as long runs."""
        now = self.clock.monotonic()
        until = now + seconds if seconds is not None else None
        started = await self.store.set_cooldown(key, Cooldown(credential, kind, until, reason))
        if started and self.emitter:
            wall = self.clock.time()
            self.emitter.emit(CooldownStarted(
                wall, key, credential, kind, wall + seconds if seconds is not None else None, reason
            ))
        return started

    async def clear(self, key: str) -> None:
        await self.store.clear_cooldowns(key)

    def listing(self, key: str) -> list[tuple[str | None, str, float | None]]:
        """Active cooldowns as (credential, kind, until as wall time or None)."""
        now = self.clock.monotonic()
        wall = self.clock.time()
        return [
            (cd.credential, cd.kind, wall + (cd.until - now) if cd.until is not None else None)
            for cd in self.store.cooldowns(key).values()
            if cd.active(now)
        ]

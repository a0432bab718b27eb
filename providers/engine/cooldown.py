"""Cooldowns: quota state, kept apart from the breaker's health state (resilience.md §1, §2).

A 429 says "this credential, slow down on this model until T"; a spend cap says "this
credential has no money left"; a 401/403 says "this key is refused"; a 404 on a model the
route chose says "this provider has no such model". None of them is an outage, so none
touches the breaker.

Each cooldown sits in a slot (credential, scope) of its breaker key's book:

- `rate_limited`: (credential, model family). A 429 on one model says nothing about another
  (OpenAI limits each model on its own), nor about another key;
- `exhausted`, `rejected`: (credential, ""), every model of that key;
- `model_missing`: (None, model family), that model with any key.

A credential's cooldowns carry its fingerprint (`TargetSpec.credential_versions`): when the
configuration changes the key, the old cooldowns no longer hold, so a `rejected` key lasts
exactly until the configuration changes it or an operator resets the provider.
"""

from __future__ import annotations

from typing import Literal, overload

from .clock import Clock
from .events import CooldownStarted, Emitter
from .policy import TargetSpec
from .store import Cooldown, Slot, StateStore

RATE_LIMITED, EXHAUSTED, REJECTED, MODEL_MISSING = "rate_limited", "exhausted", "rejected", "model_missing"

# A cooldown as `Cooldowns.listing` shows it: (credential, kind, until as wall time or None),
# and with the scope last.
CooldownRow = tuple[str | None, str, float | None]
ScopedCooldownRow = tuple[str | None, str, float | None, str]

# The skip reason for a target whose every credential is set aside, most hopeful first: a
# rate limit ends by itself, the others need a reset, a new key or a pulled model.
_SKIP_ORDER = (
    (RATE_LIMITED, "cooldown"),
    (EXHAUSTED, "exhausted"),
    (REJECTED, "rejected"),
    (MODEL_MISSING, "model_missing"),
)


class Cooldowns:
    """Reads and starts cooldowns in the store, announcing each new one as an event."""

    def __init__(self, store: StateStore, clock: Clock, emitter: Emitter) -> None:
        self.store = store
        self.clock = clock
        self.emitter = emitter

    def _blocking(self, target: TargetSpec, credential: str | None, now: float) -> list[Cooldown]:
        """The cooldowns in force for `credential` on `target`'s model family."""
        book = self.store.cooldowns(target.breaker_key)
        if not book:
            return []
        version = target.credential_version(credential)
        found = []
        for slot in ((credential, ""), (credential, target.model_family), (None, target.model_family)):
            cd = book.get(slot)
            if cd is None or not cd.active(now):
                continue
            if slot[0] is not None and cd.version != version:
                continue  # set for a key the configuration has replaced since
            found.append(cd)
        return found

    def pick(self, target: TargetSpec, now: float) -> tuple[str | None, str | None]:
        """(credential to use, None), or (None, skip reason) when every credential is set aside.

        The first credential in the target's order with no cooldown in force wins. The skip
        reason is "cooldown" while any credential is only rate limited (it comes back by
        itself), else "exhausted", "rejected" or "model_missing".
        """
        creds: tuple[str | None, ...] = target.credentials or (None,)
        kinds: set[str] = set()
        for credential in creds:
            blocking = self._blocking(target, credential, now)
            if not blocking:
                return credential, None
            kinds.update(cd.kind for cd in blocking)
        return None, next((reason for kind, reason in _SKIP_ORDER if kind in kinds), "exhausted")

    def available(self, target: TargetSpec, now: float) -> int:
        """How many of the target's credentials are usable now (1 or 0 without credentials)."""
        creds: tuple[str | None, ...] = target.credentials or (None,)
        return sum(1 for c in creds if not self._blocking(target, c, now))

    def ends_in(self, target: TargetSpec, now: float) -> float | None:
        """Seconds until the target can be used again as far as cooldowns go: the earliest
        moment one of its credentials is free. None if any of them waits for a person."""
        creds: tuple[str | None, ...] = target.credentials or (None,)
        best: float | None = None
        for credential in creds:
            blocking = self._blocking(target, credential, now)
            if any(cd.until is None for cd in blocking):
                continue
            free_at = max((cd.until for cd in blocking if cd.until is not None), default=now)
            best = free_at - now if best is None else min(best, free_at - now)
        return best

    async def start(
        self, target: TargetSpec, credential: str | None, kind: str, seconds: float | None, reason: str
    ) -> bool:
        """Set a slot aside for `seconds` (None: until reset or a configuration change).

        The slot follows from `kind` (see the module docstring). False if a cooldown as long
        already runs there.
        """
        if kind == MODEL_MISSING:
            credential, scope = None, target.model_family
        elif kind == RATE_LIMITED:
            scope = target.model_family
        else:
            scope = ""
        now = self.clock.monotonic()
        until = now + seconds if seconds is not None else None
        version = target.credential_version(credential)
        key = target.breaker_key
        started = await self.store.set_cooldown(key, Cooldown(credential, kind, until, reason, scope, version))
        if started and self.emitter:
            wall = self.clock.time()
            self.emitter.emit(
                CooldownStarted(
                    wall,
                    key,
                    credential,
                    kind,
                    wall + seconds if seconds is not None else None,
                    reason,
                    scope=scope,
                    provider=target.provider,
                    model=target.model,
                )
            )
        return started

    async def forget_stale(self, target: TargetSpec, credential: str | None) -> None:
        """Drop the cooldowns of `credential` set for a key the configuration has replaced
        since, so its state stops showing them (cheap when there are none)."""
        if credential is None:
            return
        book = self.store.cooldowns(target.breaker_key)
        if not book:
            return
        version = target.credential_version(credential)
        for slot in ((credential, ""), (credential, target.model_family)):
            cd = book.get(slot)
            if cd is not None and cd.version != version:
                await self.store.drop_cooldown(target.breaker_key, slot)

    async def drop(self, key: str, slot: Slot) -> None:
        await self.store.drop_cooldown(key, slot)

    async def clear(self, key: str) -> None:
        await self.store.clear_cooldowns(key)

    @overload
    def listing(self, key: str) -> list[CooldownRow]: ...

    @overload
    def listing(self, key: str, *, scoped: Literal[True]) -> list[ScopedCooldownRow]: ...

    def listing(self, key: str, *, scoped: bool = False) -> list[CooldownRow] | list[ScopedCooldownRow]:
        """Active cooldowns, as (credential, kind, until as wall time or None), or with
        `scoped` as (credential, kind, until, scope): scope "" holds for every model of the
        credential, a model family's name for that model only (a 429, a missing model)."""
        now = self.clock.monotonic()
        wall = self.clock.time()
        rows: list[ScopedCooldownRow] = []
        for cd in self.store.cooldowns(key).values():
            if not cd.active(now):
                continue
            until = wall + (cd.until - now) if cd.until is not None else None
            rows.append((cd.credential, cd.kind, until, cd.scope))
        if scoped:
            return rows
        return [(credential, kind, until) for credential, kind, until, _ in rows]

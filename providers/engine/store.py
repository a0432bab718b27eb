"""Where breaker state, outcome counts, probe reservations and cooldowns live.

`StateStore` is the seam for resilience.md §8. Its shape follows what a shared (Redis) store
must do, so one can be added without touching the breaker:

- **reads are sync** (`state`, `counts`, `cooldowns`, `probes_in_flight`): a shared store
  answers them from a local cache refreshed at most every second (or on pub/sub invalidation),
  so the hot path never pays a round trip;
- **every write is async and atomic on its own**: `compare_and_set` is the Lua CAS on
  {state, generation, open_until, k}; `add_outcome` is the per-outcome counter script and
  returns the counts the trip decision uses (pooled across processes, after the quorum rule);
  `reserve_probe` is the `INCR ≤ N` reservation with expiry `probe_ttl`;
- times are the engine's **monotonic** seconds. A shared store keeps its own clock (Redis
  `TIME`) and converts at the edge, `local = now + (shared_deadline - shared_now)`;
- a shared store that cannot reach Redis within 50 ms answers from its local state instead of
  raising: a provider call never fails because the store did;
- the quorum rule fits behind the same calls: a shared store keeps a local store inside it,
  `add_outcome` returns the pooled counts when failures came from >= 2 reporters (or one
  reporter with more than 10 x min_calls) and they trip the breaker's `policy`, the local
  counts otherwise, and the `compare_and_set` that follows a trip then writes the shared state
  or only the local one accordingly; `state()` reports the more restrictive of the two.

`LocalStateStore` is the default: in-process, one per event loop. Its async methods never
suspend, so each is atomic with respect to other tasks without any lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from .window import EMPTY, SlidingWindow, WindowCounts

if TYPE_CHECKING:
    from .policy import BreakerPolicy

CLOSED, OPEN, HALF_OPEN, FORCED_OPEN = "closed", "open", "half_open", "forced_open"
NORMAL, DISABLED, METRICS_ONLY = "normal", "disabled", "metrics_only"


@dataclass(frozen=True, slots=True)
class BreakerState:
    """One breaker's shared state. Every transition bumps `generation` (compare-and-set)."""

    state: str = CLOSED  # closed | open | half_open | forced_open
    generation: int = 0
    open_until: float | None = None  # monotonic; forced_open with None lasts until a reset
    opened_count: int = 0  # k: consecutive openings, before decay
    reason: str = ""
    since: float = 0.0  # monotonic time the state began
    mode: str = NORMAL  # normal | disabled | metrics_only (operator modes, orthogonal to state)
    cause: str = ""  # the trip rule behind the current opening ("slow_call_rate", ...)


@dataclass(frozen=True, slots=True)
class Cooldown:
    """A credential set aside: rate limited until `until`, exhausted, rejected (401/403), or
    a model the provider does not have (model_missing, with `credential` None: any key).

    `scope` is the model family it holds for ("" for the whole credential): a 429 or a
    missing model concerns one model, an exhausted quota or a refused key every model.
    `version` is the credential's fingerprint when it was rejected.
    """

    credential: str | None
    kind: str  # rate_limited | exhausted | rejected | model_missing
    until: float | None  # monotonic; None: until an operator resets it
    reason: str = ""
    scope: str = ""
    version: str = ""

    @property
    def slot(self) -> Slot:
        return self.credential, self.scope

    def active(self, now: float) -> bool:
        return self.until is None or now < self.until


Slot = tuple[str | None, str]  # (credential, scope): where a cooldown sits in a key's book


INITIAL = BreakerState()


@runtime_checkable
class StateStore(Protocol):
    """State shared by every call through one breaker key (see the module docstring)."""

    def state(self, key: str) -> BreakerState: ...

    async def compare_and_set(self, key: str, expected: BreakerState, new: BreakerState) -> bool:
        """Replace the state if it still has `expected`'s (state, generation, mode)."""
        ...

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
        """Count one call; `consecutive=False` leaves the consecutive-failure run alone.

        `policy` is the breaker's: a shared store needs its thresholds for the quorum rule
        (10 x min_calls) and to tell whether the pooled or the local counts trip.
        """
        ...

    def counts(self, key: str, now: float) -> WindowCounts: ...

    async def clear_counts(self, key: str) -> None: ...

    async def reset_counts(self, key: str) -> None:
        """Forget `key`'s window and consecutive-failure run in every layer (an operator's
        "reset statistics"); `clear_counts` is the breaker's own, which a shared store may
        apply to the layer its last transition went to only."""
        ...

    async def reserve_probe(self, key: str, generation: int, limit: int, ttl: float, now: float) -> int | None:
        """Claim one of `limit` half-open probe slots for `generation`; None when all are taken."""
        ...

    async def release_probe(self, key: str, generation: int, token: int) -> None: ...

    def probes_in_flight(self, key: str, generation: int, now: float) -> tuple[int, float | None]:
        """Live reservations for `generation`, and when the earliest of them expires."""
        ...

    async def add_probe_result(self, key: str, generation: int, success: bool) -> tuple[int, int]:
        """Count one probe result for `generation`; returns (successes, failures) so far."""
        ...

    def cooldowns(self, key: str) -> dict[Slot, Cooldown]: ...

    async def set_cooldown(self, key: str, cooldown: Cooldown) -> bool:
        """Start or extend the cooldown in `cooldown.slot`; False (and no change) if one as
        long already runs there."""
        ...

    async def drop_cooldown(self, key: str, slot: Slot) -> None:
        """Forget the cooldown in `slot` (a model pulled, a key replaced)."""
        ...

    async def clear_cooldowns(self, key: str) -> None:
        """Forget every cooldown of `key` (an operator's reset)."""
        ...

    def keys(self) -> list[str]: ...


class _Probes:
    __slots__ = ("failures", "generation", "next_token", "successes", "tokens")

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.tokens: dict[int, float] = {}  # token -> expiry
        self.next_token = 1
        self.successes = 0
        self.failures = 0

    def purge(self, now: float) -> None:
        if self.tokens:
            for token in [t for t, exp in self.tokens.items() if exp <= now]:
                del self.tokens[token]


class LocalStateStore:
    """In-process state for one event loop (resilience.md §8 "Default")."""

    def __init__(self) -> None:
        self._states: dict[str, BreakerState] = {}
        self._windows: dict[str, SlidingWindow] = {}
        self._consecutive: dict[str, int] = {}
        self._probes: dict[str, _Probes] = {}
        self._cooldowns: dict[str, dict[Slot, Cooldown]] = {}

    # breaker state -------------------------------------------------------------------------
    def state(self, key: str) -> BreakerState:
        return self._states.get(key, INITIAL)

    async def compare_and_set(self, key: str, expected: BreakerState, new: BreakerState) -> bool:
        current = self._states.get(key, INITIAL)
        if (current.state, current.generation, current.mode) != (expected.state, expected.generation, expected.mode):
            return False
        self._states[key] = new
        return True

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
        window = self._windows.get(key)
        if window is None or window.window_s != window_s or window._n != buckets:
            window = self._windows[key] = SlidingWindow(window_s, buckets)
        window.add(now, failure, slow)
        run = self._consecutive.get(key, 0)
        if consecutive:
            run = run + 1 if failure else 0
            self._consecutive[key] = run
        return window.counts(now, run)

    def counts(self, key: str, now: float) -> WindowCounts:
        window = self._windows.get(key)
        if window is None:
            return EMPTY
        return window.counts(now, self._consecutive.get(key, 0))

    async def clear_counts(self, key: str) -> None:
        window = self._windows.get(key)
        if window is not None:
            window.clear()
        self._consecutive[key] = 0

    async def reset_counts(self, key: str) -> None:
        await self.clear_counts(key)

    # half-open probes ----------------------------------------------------------------------
    def _probes_for(self, key: str, generation: int) -> _Probes:
        probes = self._probes.get(key)
        if probes is None or probes.generation != generation:
            probes = self._probes[key] = _Probes(generation)
        return probes

    async def reserve_probe(self, key: str, generation: int, limit: int, ttl: float, now: float) -> int | None:
        probes = self._probes_for(key, generation)
        probes.purge(now)
        if len(probes.tokens) >= limit:
            return None
        token = probes.next_token
        probes.next_token += 1
        probes.tokens[token] = now + ttl
        return token

    async def release_probe(self, key: str, generation: int, token: int) -> None:
        probes = self._probes.get(key)
        if probes is not None and probes.generation == generation:
            probes.tokens.pop(token, None)

    def probes_in_flight(self, key: str, generation: int, now: float) -> tuple[int, float | None]:
        probes = self._probes.get(key)
        if probes is None or probes.generation != generation:
            return 0, None
        probes.purge(now)
        return len(probes.tokens), min(probes.tokens.values(), default=None)

    async def add_probe_result(self, key: str, generation: int, success: bool) -> tuple[int, int]:
        probes = self._probes_for(key, generation)
        if success:
            probes.successes += 1
        else:
            probes.failures += 1
        return probes.successes, probes.failures

    # cooldowns -----------------------------------------------------------------------------
    def cooldowns(self, key: str) -> dict[Slot, Cooldown]:
        return self._cooldowns.get(key) or {}

    async def set_cooldown(self, key: str, cooldown: Cooldown) -> bool:
        book = self._cooldowns.setdefault(key, {})
        current = book.get(cooldown.slot)
        # The longer cooldown wins whatever its kind; an expired one is always shorter, and
        # one set for another version of the credential no longer holds.
        if (
            current is not None
            and current.version == cooldown.version
            and (current.until is None or (cooldown.until is not None and current.until >= cooldown.until))
        ):
            return False
        book[cooldown.slot] = cooldown
        return True

    async def drop_cooldown(self, key: str, slot: Slot) -> None:
        book = self._cooldowns.get(key)
        if book:
            book.pop(slot, None)

    async def clear_cooldowns(self, key: str) -> None:
        self._cooldowns.pop(key, None)

    def keys(self) -> list[str]:
        return sorted(set(self._states) | set(self._windows) | set(self._cooldowns))

"""The circuit breaker (resilience.md §3): health only, never quota.

States: CLOSED → OPEN → HALF_OPEN → CLOSED | OPEN, plus FORCED_OPEN and the operator modes
DISABLED and METRICS_ONLY. The legal edges are `LEGAL_EDGES`; every transition is a
compare-and-set on (state, generation) in the store and emits exactly one event.

Contracts worth knowing:
- A `Permit` carries the generation it was taken in. An outcome from an older generation is
  counted as a statistic and never drives a transition (a late success cannot close a
  half-open circuit it was not a probe of; a late failure cannot extend `open_until`).
- OPEN → HALF_OPEN and HALF_OPEN → OPEN (after `max_half_open_s`) happen lazily, on the next
  `acquire()` or `refresh()`: no timers. `check()` and `state()` only read.
- Half-open admits `half_open_probes` calls by reservation; a reservation expires after
  `probe_ttl_s`, and `release()` frees it at once (cancellation, caller errors).
- No lock is held across an await: each store call is atomic on its own, and the decision that
  follows it is a compare-and-set that loses cleanly to a concurrent one.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace

from .backoff import break_duration
from .clock import Clock
from .errors import CircuitOpen
from .events import BreakerStateChanged, Emitter, ThresholdExceeded
from .outcome import Outcome
from .policy import BreakerPolicy
from .store import (
    CLOSED,
    DISABLED,
    FORCED_OPEN,
    HALF_OPEN,
    METRICS_ONLY,
    NORMAL,
    OPEN,
    BreakerState,
    StateStore,
)
from .window import WindowCounts

LEGAL_EDGES = frozenset(
    {
        (CLOSED, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, CLOSED),
        (HALF_OPEN, OPEN),
        (FORCED_OPEN, HALF_OPEN),
        # operator actions: force open and reset from anywhere, modes from anywhere
        *((s, FORCED_OPEN) for s in (CLOSED, OPEN, HALF_OPEN, FORCED_OPEN)),
        *((s, CLOSED) for s in (OPEN, HALF_OPEN, FORCED_OPEN)),
    }
)

_FAILURES = frozenset({Outcome.FAILURE, Outcome.DEADLINE, Outcome.STREAM_ABORTED})


def trip_reason(p: BreakerPolicy, c: WindowCounts) -> str | None:
    """Which trip rule (§3 a-c) `c` meets under `p`, as the reason text, or None."""
    if c.calls >= p.min_calls:
        rate = c.failures / c.calls
        if rate >= p.failure_rate:
            return f"failure_rate {rate:.2f} >= {p.failure_rate:g} over {c.calls} calls"
        slow_rate = c.slow / c.calls
        if slow_rate >= p.slow_call_rate:
            return f"slow_call_rate {slow_rate:.2f} >= {p.slow_call_rate:g} over {c.calls} calls"
    if p.consecutive_failures and c.consecutive_failures >= p.consecutive_failures:
        return f"consecutive_failures {c.consecutive_failures}"
    return None


class Permit:
    """Leave to send one call, taken in `generation`; `probe` is the half-open reservation."""

    __slots__ = ("done", "generation", "key", "probe")

    def __init__(self, key: str, generation: int, probe: int | None = None) -> None:
        self.key = key
        self.generation = generation
        self.probe = probe
        self.done = False


class CircuitBreaker:
    """One breaker key's health state machine. Cheap to create; state lives in the store."""

    def __init__(
        self,
        key: str,
        policy: BreakerPolicy,
        store: StateStore,
        clock: Clock,
        rng: random.Random,
        emitter: Emitter,
    ) -> None:
        self.key = key
        self.store = store
        self.clock = clock
        self.rng = rng
        self.emitter = emitter
        self._threshold_exceeded = False
        self.configure(policy)

    def configure(self, policy: BreakerPolicy) -> None:
        """Use new thresholds from now on (settings changed at run time)."""
        if not policy.resolved:
            policy = policy.resolve(30.0)
        self.policy = policy
        window_s, probe_ttl_s, max_half_open_s = policy.window_s, policy.probe_ttl_s, policy.max_half_open_s
        assert window_s is not None and probe_ttl_s is not None and max_half_open_s is not None
        self.window_s: float = window_s
        self.probe_ttl_s: float = probe_ttl_s
        self.max_half_open_s: float = max_half_open_s
        self._need_fail = max(1, math.ceil(policy.failure_rate * policy.half_open_probes - 1e-9))
        self._need_ok = policy.half_open_probes - self._need_fail + 1

    # reading -------------------------------------------------------------------------------
    def state(self) -> str:
        """The state as an operator sees it, with due lazy transitions applied to the view."""
        st = self.store.state(self.key)
        if st.mode != NORMAL:
            return st.mode
        return self._effective(st, self.clock.monotonic())

    def _effective(self, st: BreakerState, now: float) -> str:
        if st.state in (OPEN, FORCED_OPEN):
            if st.open_until is not None and now >= st.open_until:
                return HALF_OPEN
            return st.state
        if st.state == HALF_OPEN and now >= st.since + self.max_half_open_s:
            return OPEN
        return st.state

    def check(self, now: float | None = None) -> str | None:
        """Why a call would be refused now ("open", "forced_open", "half_open_full"), or None.

        Sync and cheap: the fallback chain asks this before it spends anything on a target.
        """
        st = self.store.state(self.key)
        if st.state == CLOSED or st.mode != NORMAL:
            return None
        now = self.clock.monotonic() if now is None else now
        state = self._effective(st, now)
        if state == HALF_OPEN:
            generation = st.generation if st.state == HALF_OPEN else st.generation + 1
            live, _ = self.store.probes_in_flight(self.key, generation, now)
            return "half_open_full" if live >= self.policy.half_open_probes else None
        return state

    def opened_count(self, now: float | None = None) -> int:
        """k after decay: one less for every full window spent closed."""
        st = self.store.state(self.key)
        now = self.clock.monotonic() if now is None else now
        return self._decayed_k(st, now)

    def _decayed_k(self, st: BreakerState, now: float) -> int:
        if st.state != CLOSED or st.opened_count == 0 or st.mode != NORMAL:
            return st.opened_count
        return max(0, st.opened_count - int((now - st.since) // self.window_s))

    def counts(self) -> WindowCounts:
        return self.store.counts(self.key, self.clock.monotonic())

    # calls ---------------------------------------------------------------------------------
    async def acquire(self) -> Permit:
        """Take a permit or raise `CircuitOpen` (with `retry_after`). Never waits."""
        st = self.store.state(self.key)
        if st.state == CLOSED or st.mode != NORMAL:
            return Permit(self.key, st.generation)
        now = self.clock.monotonic()
        st = await self._advance(st, now)
        if st.state == CLOSED:
            return Permit(self.key, st.generation)
        if st.state in (OPEN, FORCED_OPEN):
            # A shared store that could not write the move to half-open leaves an elapsed
            # break in place for this call: still refused, never with a negative wait.
            wait = max(st.open_until - now, 0.001) if st.open_until is not None else math.inf
            raise CircuitOpen(self.key, wait, st.state)
        token = await self.store.reserve_probe(
            self.key, st.generation, self.policy.half_open_probes, self.probe_ttl_s, now
        )
        if token is None:
            _, first_expiry = self.store.probes_in_flight(self.key, st.generation, now)
            wait = (first_expiry - now) if first_expiry is not None else self.probe_ttl_s
            raise CircuitOpen(self.key, max(wait, 0.001), HALF_OPEN)
        return Permit(self.key, st.generation, token)

    async def refresh(self) -> str:
        """Apply due lazy transitions now (the monitor calls this each tick); returns state()."""
        await self._advance(self.store.state(self.key), self.clock.monotonic())
        return self.state()

    async def _advance(self, st: BreakerState, now: float) -> BreakerState:
        for _ in range(4):  # each round either transitions or stops; a lost CAS re-reads
            if st.mode != NORMAL:
                return st
            if st.state in (OPEN, FORCED_OPEN) and st.open_until is not None and now >= st.open_until:
                new = replace(
                    st,
                    state=HALF_OPEN,
                    generation=st.generation + 1,
                    open_until=None,
                    since=now,
                    reason="break_elapsed",
                )
            elif st.state == HALF_OPEN and now >= st.since + self.max_half_open_s:
                new = self._opened(st, now, "half_open_timeout", st.opened_count + 1, st.cause)
            else:
                return st
            await self._transition(st, new, now)
            st = self.store.state(self.key)
        return st

    async def release(self, permit: Permit) -> None:
        """Give a permit back without an outcome (cancelled, caller error, rate limited)."""
        if permit.done:
            return
        permit.done = True
        if permit.probe is not None:
            await self.store.release_probe(self.key, permit.generation, permit.probe)

    async def record(self, permit: Permit, outcome: Outcome, duration_s: float) -> None:
        """Report the outcome of the call `permit` admitted. Idempotent per permit.

        Only SUCCESS, FAILURE, DEADLINE and STREAM_ABORTED count; any other outcome releases
        the permit and changes no counter.
        """
        if outcome is not Outcome.SUCCESS and outcome not in _FAILURES:
            await self.release(permit)
            return
        if permit.done:
            return
        permit.done = True
        st = self.store.state(self.key)
        if st.mode == DISABLED:
            if permit.probe is not None:
                await self.store.release_probe(self.key, permit.generation, permit.probe)
            return
        failure = outcome is not Outcome.SUCCESS
        slow = duration_s > self.policy.slow_call_s or outcome is Outcome.DEADLINE
        now = self.clock.monotonic()
        current = permit.generation == st.generation
        if permit.probe is not None:
            await self.store.release_probe(self.key, permit.generation, permit.probe)
            await self._count(now, failure, slow, consecutive=False)
            if current and st.state == HALF_OPEN and st.mode == NORMAL:
                await self._probe_result(st, now, failure, slow)
            return
        counts = await self.store.add_outcome(
            self.key,
            now,
            failure=failure,
            slow=slow,
            window_s=self.window_s,
            buckets=self.policy.buckets,
            consecutive=current,
            policy=self.policy,
        )
        if not current or (st.state != CLOSED and st.mode == NORMAL):
            return  # stale, or arriving while open: statistics only
        reason = self._trip_reason(counts)
        if st.mode == METRICS_ONLY:
            if reason is not None and not self._threshold_exceeded and self.emitter:
                self.emitter.emit(
                    ThresholdExceeded(self.clock.time(), self.key, reason, counts.calls, counts.failures, counts.slow)
                )
            self._threshold_exceeded = reason is not None
            return
        if reason is not None:
            cause = reason.split(" ", 1)[0]
            new = self._opened(st, now, reason, self._decayed_k(st, now) + 1, cause)
            await self._transition(st, new, now)

    async def _count(self, now: float, failure: bool, slow: bool, consecutive: bool) -> WindowCounts:
        return await self.store.add_outcome(
            self.key,
            now,
            failure=failure,
            slow=slow,
            window_s=self.window_s,
            buckets=self.policy.buckets,
            consecutive=consecutive,
            policy=self.policy,
        )

    def _trip_reason(self, c: WindowCounts) -> str | None:
        return trip_reason(self.policy, c)

    async def _probe_result(self, st: BreakerState, now: float, failure: bool, slow: bool) -> None:
        # A slow success helps close only if slowness is not what opened the circuit.
        ok = not failure and not (slow and st.cause == "slow_call_rate")
        successes, failures = await self.store.add_probe_result(self.key, st.generation, ok)
        if failures >= self._need_fail:
            await self._transition(st, self._opened(st, now, "probe_failed", st.opened_count + 1, st.cause), now)
        elif successes >= self._need_ok:
            new = replace(
                st, state=CLOSED, generation=st.generation + 1, open_until=None, since=now, reason="probe_ok", cause=""
            )
            if await self._transition(st, new, now):
                await self.store.clear_counts(self.key)

    def _opened(self, st: BreakerState, now: float, reason: str, k: int, cause: str) -> BreakerState:
        p = self.policy
        duration = break_duration(k, p.break_s, p.max_break_s, p.jitter, self.rng)
        return replace(
            st,
            state=OPEN,
            generation=st.generation + 1,
            open_until=now + duration,
            opened_count=k,
            reason=reason,
            since=now,
            cause=cause,
        )

    async def _transition(self, old: BreakerState, new: BreakerState, now: float) -> bool:
        if not await self.store.compare_and_set(self.key, old, new):
            return False
        if self.emitter:
            wall = self.clock.time()
            old_name = old.mode if old.mode != NORMAL else old.state
            new_name = new.mode if new.mode != NORMAL else new.state
            until = wall + (new.open_until - now) if new.open_until is not None else None
            self.emitter.emit(
                BreakerStateChanged(wall, self.key, old_name, new_name, new.reason, new.generation, until)
            )
        return True

    # operator actions ----------------------------------------------------------------------
    async def reset(self) -> None:
        """Close the breaker, forget k and the window (an operator's "reset")."""
        for _ in range(8):
            st = self.store.state(self.key)
            now = self.clock.monotonic()
            if st.state == CLOSED:
                new = replace(st, opened_count=0, since=now, reason="manual_reset", cause="")
                if await self.store.compare_and_set(self.key, st, new):
                    break
                continue
            new = replace(
                st,
                state=CLOSED,
                generation=st.generation + 1,
                open_until=None,
                opened_count=0,
                since=now,
                reason="manual_reset",
                cause="",
            )
            if await self._transition(st, new, now):
                break
        self._threshold_exceeded = False
        await self.store.clear_counts(self.key)

    async def force_open(self, seconds: float | None = None) -> None:
        """Reject every call for `seconds` (None: until `reset`), then probe as usual."""
        for _ in range(8):
            st = self.store.state(self.key)
            now = self.clock.monotonic()
            until = now + seconds if seconds is not None else None
            new = replace(
                st,
                state=FORCED_OPEN,
                generation=st.generation + 1,
                open_until=until,
                since=now,
                reason="forced_open",
                mode=NORMAL,
            )
            if await self._transition(st, new, now):
                return

    async def set_mode(self, mode: str) -> None:
        """normal | disabled (let all through, record nothing) | metrics_only (let all through,
        count, emit ThresholdExceeded instead of opening). Any change starts a fresh CLOSED."""
        if mode not in (NORMAL, DISABLED, METRICS_ONLY):
            raise ValueError(f"mode: must be normal, disabled or metrics_only, not {mode!r}")
        for _ in range(8):
            st = self.store.state(self.key)
            if st.mode == mode:
                return
            now = self.clock.monotonic()
            new = replace(
                st,
                state=CLOSED,
                generation=st.generation + 1,
                open_until=None,
                since=now,
                reason=f"mode_{mode}",
                mode=mode,
                cause="",
            )
            if await self._transition(st, new, now):
                break
        self._threshold_exceeded = False
        await self.store.clear_counts(self.key)


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """What the console and the operations API show for one breaker key."""

    key: str
    state: str  # closed | open | half_open | forced_open | disabled | metrics_only
    generation: int
    open_until: float | None  # wall time
    opened_count: int
    reason: str
    calls: int
    failures: int
    slow: int
    success_rate: float | None
    consecutive_failures: int
    p50_ms: float | None
    p95_ms: float | None
    cooldowns: list[tuple[str | None, str, float | None]]  # (credential, kind, until wall)
    # The same with the scope: "" (every model of the credential) or one model family.
    scoped_cooldowns: list[tuple[str | None, str, float | None, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "key": self.key,
            "state": self.state,
            "generation": self.generation,
            "open_until": self.open_until,
            "opened_count": self.opened_count,
            "reason": self.reason,
            "calls": self.calls,
            "failures": self.failures,
            "slow": self.slow,
            "success_rate": self.success_rate,
            "consecutive_failures": self.consecutive_failures,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "cooldowns": [{"credential": c, "kind": k, "until": u} for c, k, u in self.cooldowns],
            "scoped_cooldowns": [
                {"credential": c, "kind": k, "until": u, "scope": sc} for c, k, u, sc in self.scoped_cooldowns
            ],
        }

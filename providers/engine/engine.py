"""The engine: one object per event loop that routes calls and owns the resilience state."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import Any

from .breaker import BreakerSnapshot, CircuitBreaker, Permit
from .budget import AdaptiveThrottle, RetryBudget
from .bulkhead import Bulkhead
from .chain import AttemptFn, FallbackChain
from .clock import Clock, SystemClock
from .cooldown import Cooldowns
from .deadline import _deadline
from .errors import NoTargets, StreamDeadline
from .events import AttemptFinished, Emitter, EventHook
from .latency import LatencyTracker
from .limits import LimitStore, LocalLimits
from .outcome import Outcome
from .policy import BreakerPolicy, RoutePolicy, TargetSpec
from .result import AttemptRecord, ChainResult
from .sent import Sent
from .store import CLOSED, FORCED_OPEN, OPEN, LocalStateStore, StateStore
from .strategies import latency_key, order_targets


class KeyState:
    """What one breaker key has besides its stored state: the process-local parts."""

    __slots__ = ("breaker", "budget", "bulkhead", "target", "throttle")

    def __init__(self, breaker: CircuitBreaker, bulkhead: Bulkhead) -> None:
        self.breaker = breaker
        self.bulkhead = bulkhead
        self.budget = RetryBudget()
        self.throttle = AdaptiveThrottle()
        self.target: TargetSpec | None = None


class Engine:
    """Routes calls along fallback chains with breakers, cooldowns, retries and deadlines.

    Create one per event loop (the default `LocalStateStore` is per loop). `clock` and `rng`
    default to the real clock and an unseeded `random.Random`; tests pass a `FakeClock` and a
    seeded one. Reads (`snapshot`, `snapshots`) are sync; anything that changes shared state is
    async, so a shared store can do it atomically.
    """

    def __init__(
        self,
        store: StateStore | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        limits: LimitStore | None = None,
    ) -> None:
        self.store: StateStore = store if store is not None else LocalStateStore()
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.rng = rng if rng is not None else random.Random()
        self.limits: LimitStore = limits if limits is not None else LocalLimits(self.clock.time)
        self.emitter = Emitter()
        self.cooldowns = Cooldowns(self.store, self.clock, self.emitter)
        self.latency = LatencyTracker()
        self._breakers: dict[str, CircuitBreaker] = {}
        self._keys: dict[str, KeyState] = {}
        self._scores: dict[str, float] = {}
        self._turns: dict[str, int] = {}

    # the call ------------------------------------------------------------------------------
    async def execute(
        self,
        route: RoutePolicy,
        targets: Sequence[TargetSpec],
        call: AttemptFn,
        *,
        deadline_s: float | None = None,
        preferred_provider: str | None = None,
        streaming: bool = False,
    ) -> ChainResult[Any]:
        """Call `call(target, ctx)` along the route's fallback chain until one succeeds.

        Returns a `ChainResult` (for `streaming=True`, call `result.finish(error)` when the
        stream ends). Raises `CallerError` at once on a caller error (and when no target can
        take the request), `DeadlineExceeded` when the deadline left no time, `AllTargetsFailed`
        (with `all_skipped` and `retry_after`) otherwise, and lets `asyncio.CancelledError`
        through unchanged.
        """
        if not targets:
            raise NoTargets(f"route {route.name!r} has no targets")
        if route.overrides_retry:  # a no-op for targets built for the route (`target_for`)
            targets = [route.target_for(t) for t in targets]
        now = self.clock.monotonic()
        deadline = now + (deadline_s if deadline_s is not None else route.deadline)
        outer = _deadline.get()
        if outer is not None and outer < deadline:
            deadline = outer
        token = _deadline.set(deadline)
        try:
            turn = 0
            if route.strategy == "round_robin":
                turn = self._turns[route.name] = self._turns.get(route.name, -1) + 1
            if len(targets) == 1:
                order = list(targets)
            else:
                order = order_targets(
                    route.strategy,
                    targets,
                    scores=self._scores,
                    latency=self.latency,
                    turn=turn,
                    rng=self.rng,
                    preferred_provider=preferred_provider,
                )
            return await FallbackChain(self, route, order, call, deadline, streaming).run()
        finally:
            _deadline.reset(token)

    # hooks and scores ----------------------------------------------------------------------
    def subscribe(self, hook: EventHook) -> None:
        """Receive every event (see `events`). Hooks are sync and must not block."""
        self.emitter.subscribe(hook)

    def unsubscribe(self, hook: EventHook) -> None:
        self.emitter.unsubscribe(hook)

    def set_scores(self, scores: dict[str, float]) -> None:
        """Health scores (0-100) by breaker key, for the health_score strategy."""
        self._scores.update(scores)

    # operations ----------------------------------------------------------------------------
    def breaker(self, key: str, policy: BreakerPolicy | None = None) -> CircuitBreaker:
        """The breaker for `key`, created with `policy` (or the defaults) if new."""
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = self._breakers[key] = CircuitBreaker(
                key, policy or BreakerPolicy(), self.store, self.clock, self.rng, self.emitter
            )
        elif policy is not None and policy != breaker.policy:
            breaker.configure(policy)
        return breaker

    def configure(self, key: str, policy: BreakerPolicy, attempt_timeout_s: float = 30.0) -> None:
        """New breaker thresholds for `key`; unresolved fields use `attempt_timeout_s`."""
        self.breaker(key).configure(policy if policy.resolved else policy.resolve(attempt_timeout_s))

    def snapshot(self, key: str) -> BreakerSnapshot:
        breaker = self.breaker(key)
        now = self.clock.monotonic()
        wall = self.clock.time()
        st = self.store.state(key)
        state = breaker.state()
        counts = self.store.counts(key, now)
        open_until = None
        if state in (OPEN, FORCED_OPEN) and st.state == state and st.open_until is not None:
            open_until = wall + (st.open_until - now)
        p50 = self.latency.percentile(key, 0.5)
        p95 = self.latency.percentile(key, 0.95)
        return BreakerSnapshot(
            key=key,
            state=state,
            generation=st.generation,
            open_until=open_until,
            opened_count=breaker.opened_count(now),
            reason=st.reason,
            calls=counts.calls,
            failures=counts.failures,
            slow=counts.slow,
            success_rate=counts.success_rate,
            consecutive_failures=counts.consecutive_failures,
            p50_ms=p50 * 1000 if p50 is not None else None,
            p95_ms=p95 * 1000 if p95 is not None else None,
            cooldowns=self.cooldowns.listing(key),
            scoped_cooldowns=self.cooldowns.listing(key, scoped=True),
        )

    def snapshots(self) -> list[BreakerSnapshot]:
        keys = set(self._breakers) | set(self.store.keys())
        return [self.snapshot(key) for key in sorted(keys)]

    async def reset(self, key: str) -> None:
        """Close the breaker and clear every cooldown of `key` (the console's "reset")."""
        await self.breaker(key).reset()
        await self.cooldowns.clear(key)

    async def reset_statistics(self, key: str) -> None:
        """Forget `key`'s rolling window of outcomes and its consecutive-failure run, here and
        in a shared store (an operator's "reset statistics": a provider judged on what happens
        from now on). The breaker's state and the cooldowns stay as they are (`reset` is for
        those), and so do the latency samples (the last 100 successes, not a window)."""
        await self.store.reset_counts(key)

    async def clear_model_missing(self, key: str, model: str) -> None:
        """Forget that `model` was missing on `key` (its provider): call it when the model has
        been pulled or added, so routes use it again at once instead of after the TTL."""
        await self.cooldowns.drop(key, (None, model))

    async def force_open(self, key: str, seconds: float | None = None) -> None:
        await self.breaker(key).force_open(seconds)

    async def set_mode(self, key: str, mode: str) -> None:
        """ "normal", "disabled" or "metrics_only" (see `CircuitBreaker.set_mode`)."""
        await self.breaker(key).set_mode(mode)

    async def refresh(self, key: str) -> str:
        """Apply due lazy transitions (open -> half-open, half-open timeout) now."""
        return await self.breaker(key).refresh()

    async def record(self, key: str, outcome: Outcome, duration_s: float, policy: BreakerPolicy | None = None) -> None:
        """Count an outcome observed outside a chain (the monitor's probes).

        It feeds the same window as live calls. While CLOSED it can trip the breaker like any
        call; while open or half-open it is statistics only, never a transition.
        """
        breaker = self.breaker(key, policy.resolve(30.0) if policy and not policy.resolved else policy)
        st = self.store.state(key)
        generation = st.generation if st.state == CLOSED else -1
        await breaker.record(Permit(key, generation), outcome, duration_s)
        if outcome is Outcome.SUCCESS:
            self.latency.add(key, duration_s)

    # per-key resources (used by the chain) -------------------------------------------------
    def state_for(self, target: TargetSpec) -> KeyState:
        """Everything kept per breaker key, configured from `target` (cheap when unchanged)."""
        state = self._keys.get(target.breaker_key)
        if state is not None and state.target is target:
            return state
        key = target.breaker_key
        r = target.retry
        breaker = self.breaker(key, target.breaker)
        if state is None:
            state = self._keys[key] = KeyState(breaker, Bulkhead(target.max_concurrent))
        state.breaker = breaker
        state.bulkhead.limit = target.max_concurrent
        if state.budget.params != (r.budget_window_s, r.budget_ratio, r.budget_min_retries):
            state.budget = RetryBudget(r.budget_window_s, r.budget_ratio, r.budget_min_retries)
        if state.throttle.params != (r.throttle_window_s, r.throttle_k):
            state.throttle = AdaptiveThrottle(r.throttle_window_s, r.throttle_k)
        state.target = target
        return state

    def breaker_for(self, target: TargetSpec) -> CircuitBreaker:
        return self.state_for(target).breaker

    def bulkhead_for(self, target: TargetSpec) -> Bulkhead:
        return self.state_for(target).bulkhead

    def budget_for(self, target: TargetSpec) -> RetryBudget:
        return self.state_for(target).budget

    def throttle_for(self, target: TargetSpec) -> AdaptiveThrottle:
        return self.state_for(target).throttle

    def min_useful_time(self, target: TargetSpec) -> float:
        """Start nothing with less time left than this: the setting, p50 latency, or 1 s."""
        if target.min_useful_s is not None:
            return target.min_useful_s
        p50 = self.latency.percentile(latency_key(target), 0.5)
        return p50 if p50 is not None else 1.0

    def record_latency(self, target: TargetSpec, seconds: float) -> None:
        self.latency.add(latency_key(target), seconds)
        self.latency.add(target.breaker_key, seconds)

    def announce(self, record: AttemptRecord, target: TargetSpec, slow: bool) -> None:
        if self.emitter and record.outcome is not None:
            self.emitter.emit(
                AttemptFinished(
                    self.clock.time(),
                    target.breaker_key,
                    record.provider,
                    record.model,
                    record.credential,
                    record.outcome,
                    record.status,
                    record.duration_ms,
                    slow,
                    record.hedge,
                    record.reason,
                )
            )

    def stream_finisher(self, chain: FallbackChain, target: TargetSpec, sent: Sent, permit: Permit, lease: int) -> Any:
        """The `finish(error)` of a streaming result: records the stream's real outcome."""
        state = self.state_for(target)
        breaker, bulkhead = state.breaker, state.bulkhead

        async def finish(error: BaseException | None) -> None:
            if error is None:
                outcome, reason = Outcome.SUCCESS, sent.classification.reason
            elif isinstance(error, asyncio.CancelledError):
                outcome, reason = Outcome.CANCELLED, "cancelled"
            elif isinstance(error, StreamDeadline):
                # The request's own deadline cut a stream that was flowing: like a client
                # going away, the provider is not to blame (the breaker counts nothing).
                outcome, reason = Outcome.CANCELLED, "stream_deadline"
            else:
                outcome, reason = Outcome.STREAM_ABORTED, "stream_aborted"
            try:
                await breaker.record(permit, outcome, sent.duration)  # slowness is judged on TTFT
            finally:
                bulkhead.release(lease)
            record = chain.attempts[sent.index]
            if outcome is not Outcome.SUCCESS:
                message = str(error) or type(error).__name__
                record = record._replace(outcome=outcome, reason=reason, error=message[:200])
                chain.attempts[sent.index] = record
            self.announce(record, target, sent.slow)

        return finish

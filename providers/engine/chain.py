"""The fallback chain executor: one request, its targets in order, its retries and deadline.

For each target in the strategy's order the chain first asks, without sending anything,
whether the target may be used (enabled, breaker, cooldowns, bulkhead, deadline, throttling,
retry budget). A refused target is recorded with `skipped` set and costs no call. Otherwise it
sends the attempt under `asyncio.timeout`, classifies the result (resilience.md §2) and decides:
return it, retry the same target (backoff, Retry-After, next credential), fall back to the next
target at once, or stop (caller error, deadline).

Who is at fault decides (product.md): a 401/403 sets that credential aside as `rejected` and
tries the next credential, then the next target; a 404 for a model the route chose sets the
target aside as `model_missing` and falls back; a target that cannot take the request
(`UnsupportedRequest`) is skipped as "unsupported" without a call; an exception from our own
code before anything was sent is the caller's 400, not the provider's failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from . import hedging
from .backoff import full_jitter, jittered_at_least
from .cooldown import EXHAUSTED, MODEL_MISSING, RATE_LIMITED, REJECTED
from .deadline import MARGIN_S, AttemptTimer
from .errors import (
    AllTargetsFailed,
    CallerError,
    CircuitOpen,
    DeadlineExceeded,
    EngineError,
    UnsupportedRequest,
    UpstreamError,
)
from .outcome import Outcome, at_fault, parse_retry_after
from .policy import RoutePolicy, TargetSpec
from .result import AttemptContext, AttemptRecord, ChainResult, hops_of
from .sent import Sent, watch_sends

if TYPE_CHECKING:
    from .breaker import CircuitBreaker, Permit
    from .engine import Engine, KeyState

AttemptFn = Callable[[TargetSpec, AttemptContext], Awaitable[Any]]
MISCONFIGURED = "misconfigured"  # the skip of a target whose `problem` says it cannot be called
Admitted = tuple[str | None, "Permit", int, "KeyState"]  # credential, permit, bulkhead lease, key state


class FallbackChain:
    """The state of one `Engine.execute` call. Created per request, never shared."""

    __slots__ = (
        "attempts",
        "call",
        "comeback",
        "deadline",
        "deadline_hit",
        "engine",
        "last_error",
        "order",
        "race_won",
        "route",
        "sent",
        "skip_error",
        "streaming",
        "tries",
    )

    def __init__(
        self,
        engine: Engine,
        route: RoutePolicy,
        order: list[TargetSpec],
        call: AttemptFn,
        deadline: float,
        streaming: bool,
    ) -> None:
        self.engine = engine
        self.route = route
        self.order = order
        self.call = call
        self.deadline = deadline
        self.streaming = streaming
        self.attempts: list[AttemptRecord] = []
        self.sent = 0  # calls sent over the chain (skips not counted)
        self.tries: dict[int, int] = {}  # calls sent per target (by position in `order`)
        self.last_error: BaseException | None = None
        self.skip_error: BaseException | None = None
        self.deadline_hit = False
        self.race_won = False  # a hedged race has a winner: cancelled calls lost it
        self.comeback: float | None = None  # seconds until the first skipped target is usable

    # the loop ------------------------------------------------------------------------------
    async def run(self) -> ChainResult[Any]:
        for index, target in enumerate(self.order):
            if self.sent >= self.route.max_attempts:
                break
            result = await self._run_target(index, target)
            if result is not None:
                return result
        raise self._failure()

    def _comes_back_in(self, seconds: float | None) -> None:
        if seconds is not None and (self.comeback is None or seconds < self.comeback):
            self.comeback = max(seconds, 0.0)

    async def _run_target(self, index: int, target: TargetSpec) -> ChainResult[Any] | None:
        """Call one target until it serves, or until the chain should move on (None)."""
        while self.sent < self.route.max_attempts:
            n = self.tries.get(index, 0)
            if n >= target.retry.max_attempts:
                return None
            hedge_now = self.route.hedge is not None and self.sent == 0
            admitted = await self.admit(target, retry=n > 0)
            if isinstance(admitted, str):
                return None
            if hedge_now:
                sent = await hedging.race(self, index, target, admitted)
            else:
                sent = await self.send(index, target, admitted)
            if sent.ok:
                return self._result(sent)
            if not await self._again(index, target, sent):
                return None
        return None

    async def _again(self, index: int, target: TargetSpec, sent: Sent) -> bool:
        """After a failed call: whether to call this target again (True) or move on. Raises
        CallerError for a request that is the caller's to fix."""
        if sent.skipped == "unsupported":
            return False  # this target cannot take the request: the next one may
        if sent.skipped == "invalid_request":
            assert sent.error is not None
            raise CallerError.invalid(_invalid_message(target, sent.error), self.attempts)
        outcome = sent.classification.outcome
        if outcome is Outcome.CALLER_ERROR:
            assert isinstance(sent.error, UpstreamError)
            raise CallerError(sent.error, self.attempts)
        if outcome is Outcome.CREDENTIAL_REJECTED:
            return await self._credential_rejected(index, target, sent)
        if outcome is Outcome.TARGET_MISCONFIGURED:
            await self.engine.cooldowns.start(
                target, None, MODEL_MISSING, target.retry.model_missing_ttl_s, sent.classification.reason
            )
            return False
        hint = self._retry_after(sent)
        if outcome is Outcome.RATE_LIMITED:
            return await self._rate_limited(index, target, sent, hint)
        if outcome is Outcome.EXHAUSTED:
            return await self._cool_key(
                target, sent, EXHAUSTED, hint if hint is not None else target.retry.exhausted_cooldown_s
            )
        return await self._failed(index, target, sent, hint)

    async def _cool_key(self, target: TargetSpec, sent: Sent, kind: str, seconds: float | None) -> bool:
        """Set the credential aside; True when another credential of the target can serve now."""
        cooldowns = self.engine.cooldowns
        await cooldowns.start(target, sent.credential, kind, seconds, sent.classification.reason)
        return cooldowns.available(target, self.engine.clock.monotonic()) > 0

    async def _credential_rejected(self, index: int, target: TargetSpec, sent: Sent) -> bool:
        # Our key is refused: never the caller's answer. Set it aside until the configuration
        # changes it or an operator resets it; another key, or the next target, serves.
        self.tries[index] -= 1  # a bad key is not a failed try of the target
        return await self._cool_key(target, sent, REJECTED, None)

    async def _rate_limited(self, index: int, target: TargetSpec, sent: Sent, hint: float | None) -> bool:
        retry = target.retry
        if await self._cool_key(target, sent, RATE_LIMITED, hint if hint is not None else retry.default_cooldown_s):
            return True  # the next credential, at once
        now = self.engine.clock.monotonic()
        if (
            hint is None
            or hint > min(retry.max_retry_after_s, self.deadline - now - MARGIN_S)
            or self.tries[index] >= retry.max_attempts
            or self.sent >= self.route.max_attempts
            or not self.engine.budget_for(target).allows(now)
        ):
            return False  # too long to wait here: fall back at once, the key cools down
        return await self._sleep(target, jittered_at_least(hint, retry.retry_after_jitter, self.engine.rng))

    async def _failed(self, index: int, target: TargetSpec, sent: Sent, hint: float | None) -> bool:
        """FAILURE or DEADLINE: retry on this target, budget and deadline permitting."""
        retry = target.retry
        if (
            self.tries[index] >= retry.max_attempts
            or self.sent >= self.route.max_attempts
            or sent.classification.should_retry is False
        ):
            return False
        if hint is not None:
            if hint > retry.max_retry_after_s:
                return False
            delay = jittered_at_least(hint, retry.retry_after_jitter, self.engine.rng)
        else:
            delay = full_jitter(self.tries[index], retry.base_delay_s, retry.max_delay_s, self.engine.rng)
        return await self._sleep(target, delay)

    async def _sleep(self, target: TargetSpec, delay: float) -> bool:
        """Back off before a retry, unless the retry could no longer be useful afterwards."""
        left = self.deadline - self.engine.clock.monotonic() - delay
        if left < self.engine.min_useful_time(target) or left <= MARGIN_S:
            self.deadline_hit = True
            self._skip(target, "deadline", f"backoff {delay:.2f}s leaves {max(left, 0):.2f}s")
            return False
        if delay > 0:
            await self.engine.clock.sleep(delay)
        return True

    def _retry_after(self, sent: Sent) -> float | None:
        """The server's wait hint, re-read so that implausible values (> 300 s) are skipped."""
        retry = sent.target.retry
        error = sent.error
        if isinstance(error, UpstreamError) and error.headers:
            # Rate-limit reset headers (OpenAI sends them with every answer) say when a request
            # window reopens: news for a 429 alone. A failing server is waited for only when
            # it says so (Retry-After), else the backoff applies.
            return parse_retry_after(
                {k.lower(): v for k, v in error.headers.items()},
                self.engine.clock.time(),
                max_s=retry.discard_retry_after_s,
                explicit_only=sent.classification.outcome is not Outcome.RATE_LIMITED,
            )
        hint = sent.classification.retry_after
        return hint if hint is not None and hint <= retry.discard_retry_after_s else None

    # admission -----------------------------------------------------------------------------
    async def admit(
        self, target: TargetSpec, *, retry: bool, hedge: bool = False, record: bool = True
    ) -> Admitted | str:
        """(credential, permit, bulkhead lease, key state) for one call, or why to skip.

        The checks that take nothing come first; then the breaker's permit; then the slots
        (bulkhead, retry budget, request limits), each given back if a later one refuses. A
        refusal is recorded as a skip unless `record` is False (a hedge's candidate).
        """
        engine = self.engine
        now = engine.clock.monotonic()
        ks = engine.state_for(target)
        extra = retry or hedge  # a retry or a hedge spends the retry budget
        credential, reason = self._cooldown_pick(target, ks.breaker, now, record)
        if reason is None:
            reason = self._static_refusal(target, ks, now, hedge, extra)
        if reason is not None:
            return self._refused(target, reason, record)
        try:
            permit = await ks.breaker.acquire()
        except CircuitOpen as exc:
            if record:
                self.skip_error = exc
                self._skip(target, "open" if exc.state != "half_open" else "half_open_full")
            return "open"
        lease = self._take_slots(target, ks, now, extra)
        if isinstance(lease, str):
            await ks.breaker.release(permit)
            return self._refused(target, lease, record)
        # Last, so an open breaker or a full bulkhead never uses up a request of the minute.
        if (target.requests_per_minute or target.tokens_per_minute) and not await engine.limits.take(
            target.breaker_key, target.requests_per_minute, target.tokens_per_minute
        ):
            await ks.breaker.release(permit)
            ks.bulkhead.release(lease)
            return self._refused(target, "limit", record)
        if not extra:
            ks.budget.record_first(now)
        if credential is not None and engine.store.cooldowns(target.breaker_key):
            await engine.cooldowns.forget_stale(target, credential)  # only when there are any
        return credential, permit, lease, ks

    def _cooldown_pick(
        self, target: TargetSpec, breaker: CircuitBreaker, now: float, record: bool
    ) -> tuple[str | None, str | None]:
        """(credential to use, None) or (None, why not): the target's switches, its breaker's
        state, then its credentials' cooldowns."""
        if not target.enabled:
            return None, "disabled"
        if target.maintenance:
            return None, "maintenance"
        if target.problem:
            return None, MISCONFIGURED
        reason = breaker.check(now)
        if reason is not None:
            return None, reason
        cooldowns = self.engine.cooldowns
        credential, reason = cooldowns.pick(target, now)
        if reason is not None and record:
            self._comes_back_in(cooldowns.ends_in(target, now))
        return credential, reason

    def _static_refusal(self, target: TargetSpec, ks: KeyState, now: float, hedge: bool, extra: bool) -> str | None:
        """Why not to call a target whose breaker and credentials allow it, judged without
        taking anything: hedging, bulkhead room, time left, retry budget, throttling."""
        if hedge and ks.breaker.state() == "half_open":
            return "half_open"  # a hedge goes only to a CLOSED breaker
        if not ks.bulkhead.has_room(now):
            return "bulkhead_full"
        left = self.deadline - now
        if left <= MARGIN_S or left < self.engine.min_useful_time(target):
            self.deadline_hit = True
            return "deadline"
        if extra and not ks.budget.allows(now):
            return "budget"
        if target.retry.throttle and ks.throttle.should_reject(now, self.engine.rng):
            ks.throttle.record(now, accepted=False)
            return "throttled"
        return None

    @staticmethod
    def _take_slots(target: TargetSpec, ks: KeyState, now: float, extra: bool) -> int | str:
        """A bulkhead lease, and a unit of retry budget for a retry or a hedge; or why not
        (with nothing left taken). Sync: the hot path pays no await for it."""
        lease = ks.bulkhead.try_acquire(now, now + target.attempt_timeout_s + ks.breaker.probe_ttl_s)
        if lease is None:
            return "bulkhead_full"
        if extra and not ks.budget.try_spend(now):
            ks.bulkhead.release(lease)
            return "budget"
        return lease

    def _refused(self, target: TargetSpec, reason: str, record: bool) -> str:
        if record:
            self._skip(target, reason, target.problem if reason == MISCONFIGURED else "")
        return reason

    def _skip(self, target: TargetSpec, reason: str, detail: str = "") -> None:
        if reason in ("open", "forced_open", "half_open_full"):
            breaker = self.engine.breaker_for(target)
            st = self.engine.store.state(target.breaker_key)
            wait = (st.open_until - self.engine.clock.monotonic()) if st.open_until else breaker.probe_ttl_s
            if self.skip_error is None:
                self.skip_error = CircuitOpen(target.breaker_key, max(wait, 0.001), st.state)
            if st.state != "forced_open" or st.open_until is not None:  # a forced open waits for a person
                self._comes_back_in(wait)
        self.attempts.append(
            AttemptRecord(
                target.provider,
                target.model,
                None,
                None,
                None,
                0.0,
                skipped=reason,
                reason=reason,
                error=detail,
            )
        )

    # sending -------------------------------------------------------------------------------
    async def send(self, index: int, target: TargetSpec, admitted: Admitted, *, hedge: bool = False) -> Sent:
        """Send one attempt and do all its bookkeeping. Raises only CancelledError."""
        engine = self.engine
        credential, permit, lease, ks = admitted
        clock = engine.clock
        breaker = ks.breaker
        self.sent += 1
        attempt_no = self.tries[index] = self.tries.get(index, 0) + 1
        start = clock.monotonic()
        timeout = min(target.timeout_for(self.streaming), self.deadline - start - MARGIN_S)
        ctx = AttemptContext(timeout, self.deadline, attempt_no, self.sent, credential, hedge)
        sent = Sent(target, credential, hedge)
        with watch_sends() as wire:
            try:
                with AttemptTimer(asyncio.get_running_loop(), start + timeout):
                    sent.value = await self.call(target, ctx)
                sent.ok = True
                sent.status = 200  # every adapter answers only a 2xx; the attempt list shows it
            except asyncio.CancelledError:
                sent.fail(asyncio.CancelledError())
                sent.duration = clock.monotonic() - start
                ks.bulkhead.release(lease)
                await breaker.release(permit)
                self._finished(sent, "hedge_lost" if self.race_won else "cancelled")
                raise
            except UnsupportedRequest as exc:
                sent.fail(exc)
                sent.skipped = "unsupported"
            except Exception as exc:
                sent.fail(exc, sent=wire.sent)
                if isinstance(exc, UpstreamError) or sent.classification.outcome is not Outcome.CALLER_ERROR:
                    self.last_error = exc
                else:
                    sent.skipped = "invalid_request"  # our translation failed: nothing was sent
            except BaseException:
                ks.bulkhead.release(lease)
                await breaker.release(permit)
                raise
        if sent.skipped is not None:
            # The provider was told nothing: not a call, not a try, no breaker effect. The
            # attempt list shows the target as skipped, with the reason.
            self.sent -= 1
            self.tries[index] -= 1
            ks.bulkhead.release(lease)
            await breaker.release(permit)
            assert sent.error is not None
            detail = (
                sent.error.message if isinstance(sent.error, UpstreamError) else _invalid_message(target, sent.error)
            )
            self._skip(target, sent.skipped, detail)
            return sent
        end = clock.monotonic()
        if isinstance(sent.error, UpstreamError):
            # A refused key, or a model the route chose that is not there: neither is the
            # caller's answer (product.md "Who is at fault").
            sent.classification = at_fault(
                sent.classification,
                sent.status,
                sent.error.body,
                sent.error.message,
                target.model,
                caller_named=target.caller_named,
            )
        sent.duration = duration = end - start
        if sent.ok:
            engine.record_latency(target, duration)
            if self.streaming:  # the permit and the slot stay until finish()
                ks.bulkhead.extend(lease, max(end + breaker.probe_ttl_s, self.deadline))
                sent.finisher = engine.stream_finisher(self, target, sent, permit, lease)
            else:
                ks.bulkhead.release(lease)
                await breaker.record(permit, Outcome.SUCCESS, duration)
        else:
            ks.bulkhead.release(lease)
            await breaker.record(permit, sent.classification.outcome, duration)
        if target.retry.throttle:
            accepted = sent.accepted
            if accepted is not None:
                ks.throttle.record(end, accepted=accepted)
        self._finished(sent)
        return sent

    def _finished(self, sent: Sent, reason: str = "") -> None:
        record = sent.record(reason)
        sent.index = len(self.attempts)
        self.attempts.append(record)
        if not (sent.ok and self.streaming):
            self.engine.announce(record, sent.target, sent.slow)

    # endings -------------------------------------------------------------------------------
    def _result(self, sent: Sent) -> ChainResult[Any]:
        served = sent.target
        if self.sent == 1:  # the usual case: one call, no hops
            return ChainResult(sent.value, served, self.attempts, 0, 0, sent.finisher)
        hops = hops_of(self.attempts, (served.provider, served.model))
        return ChainResult(sent.value, served, self.attempts, hops.failovers, hops.retries, sent.finisher)

    def _failure(self) -> EngineError:
        if self.sent == 0 and self.attempts and all(a.skipped == "unsupported" for a in self.attempts):
            # No target can take this request: the caller's to change, and it is told why.
            why = "; ".join(f"{a.provider}/{a.model}: {a.error}" for a in self.attempts)
            return CallerError.unsupported(f"no target of this route can take the request ({why})", self.attempts)
        names = "; ".join(_named(a) for a in self.attempts) or "no targets"
        last = self.last_error or self.skip_error
        all_skipped = self.sent == 0
        left = self.deadline - self.engine.clock.monotonic()
        if self.deadline_hit or left <= MARGIN_S:
            return DeadlineExceeded(
                f"deadline left no time for another attempt ({names})",
                self.attempts,
                last_error=last,
                all_skipped=all_skipped,
            )
        return AllTargetsFailed(
            f"every target failed ({names})",
            self.attempts,
            last_error=last,
            all_skipped=all_skipped,
            retry_after=self.comeback if all_skipped else None,
        )


def _named(attempt: AttemptRecord) -> str:
    """One attempt in a failure's message: what happened, and why for a target that cannot be
    called at all (an operator's to fix, so said in words)."""
    if not attempt.skipped:
        return f"{attempt.provider}: {attempt.reason}"
    why = f" ({attempt.error})" if attempt.skipped == MISCONFIGURED and attempt.error else ""
    return f"{attempt.provider}: skipped {attempt.skipped}{why}"


def _invalid_message(target: TargetSpec, error: BaseException) -> str:
    """The caller's 400 for a request our translation could not build: the exception's kind
    and text, never a traceback."""
    text = str(error)[:300]
    return (
        f"the request could not be translated for {target.provider}/{target.model}: "
        f"{type(error).__name__}{': ' + text if text else ''}"
    )

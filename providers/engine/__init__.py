"""The routing engine: fallback chains, circuit breakers, cooldowns, retries and deadlines.

Pure Python and httpx; it never imports Django. The behaviour is resilience.md's. Start here::

    engine = Engine()                       # one per event loop
    engine.subscribe(hook)                  # BreakerStateChanged, CooldownStarted, ...
    result = await engine.execute(route, targets, call, deadline_s=None,
                                  preferred_provider=None, streaming=False)

`call(target, ctx)` performs one attempt and returns a value or raises (`UpstreamError`,
`UnsupportedRequest` for a request the target cannot take, httpx errors); `ctx` is an
`AttemptContext`. Errors are the small tree in `errors`. The HTTP transport calls
`mark_request_sent()` for every request it sends, so the chain can tell our own translation
errors (the caller's 400) from a provider's failure.

The names below are the engine's whole public surface; the modules behind them are private
to the package (an import-linter contract, `make lint`, refuses a project module importing one
directly; the engine's own tests may).

Test mode: `FakeClock` with `FakeClock.new_loop()` (or `FakeClock.run(coro)`) makes time free:
sleeps, timeouts and backoff advance virtual time instead of waiting.
"""

from typing import TYPE_CHECKING, Any

from .backoff import backoff_bound
from .breaker import Permit
from .clock import Clock, FakeClock, SystemClock
from .engine import Engine
from .errors import (
    AllTargetsFailed,
    CallerError,
    CircuitOpen,
    DeadlineExceeded,
    EngineError,
    NoTargets,
    StreamDeadline,
    UnsupportedRequest,
    UpstreamError,
)
from .events import AttemptFinished, BreakerStateChanged, CooldownStarted, Event, ThresholdExceeded
from .limits import RedisLimits
from .outcome import Classification, Outcome, classify_exception
from .policy import (
    BreakerPolicy,
    HedgePolicy,
    RetryPolicy,
    RoutePolicy,
    TargetSpec,
    attempt_timeout_for,
    breaker_timeout_for,
    first_byte_timeout_for,
    modality_for,
)
from .result import AttemptContext, AttemptRecord, ChainResult, Hops, count_hops
from .sent import mark_request_sent
from .store import StateStore
from .waiting import wait_event

if TYPE_CHECKING:
    from .redis_store import RedisStateStore

__all__ = [
    "AllTargetsFailed",
    "AttemptContext",
    "AttemptFinished",
    "AttemptRecord",
    "BreakerPolicy",
    "BreakerStateChanged",
    "CallerError",
    "ChainResult",
    "CircuitOpen",
    "Classification",
    "Clock",
    "CooldownStarted",
    "DeadlineExceeded",
    "Engine",
    "EngineError",
    "Event",
    "FakeClock",
    "HedgePolicy",
    "Hops",
    "NoTargets",
    "Outcome",
    "Permit",
    "RedisLimits",
    "RedisStateStore",
    "RetryPolicy",
    "RoutePolicy",
    "StateStore",
    "StreamDeadline",
    "SystemClock",
    "TargetSpec",
    "ThresholdExceeded",
    "UnsupportedRequest",
    "UpstreamError",
    "attempt_timeout_for",
    "backoff_bound",
    "breaker_timeout_for",
    "classify_exception",
    "count_hops",
    "first_byte_timeout_for",
    "mark_request_sent",
    "modality_for",
    "wait_event",
]


def __getattr__(name: str) -> Any:
    """The Redis-backed state store loads `redis` only when a deployment asks for it."""
    if name == "RedisStateStore":
        from .redis_store import RedisStateStore

        return RedisStateStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

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

Test mode: `FakeClock` with `FakeClock.new_loop()` (or `FakeClock.run(coro)`) makes time free:
sleeps, timeouts and backoff advance virtual time instead of waiting.
"""

from .backoff import backoff_bound, break_duration, full_jitter, jittered_at_least
from .breaker import LEGAL_EDGES, BreakerSnapshot, CircuitBreaker, Permit
from .budget import AdaptiveThrottle, RetryBudget
from .bulkhead import Bulkhead
from .chain import AttemptFn
from .clock import Clock, FakeClock, SystemClock, VirtualTimeLoop
from .cooldown import EXHAUSTED, MODEL_MISSING, RATE_LIMITED, REJECTED, Cooldowns
from .deadline import current_deadline, deadline_scope
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
from .events import (
    AttemptFinished,
    BreakerStateChanged,
    CooldownStarted,
    Event,
    EventHook,
    ThresholdExceeded,
)
from .latency import LatencyTracker
from .limits import LimitStore, LocalLimits
from .outcome import Classification, Outcome, classify_exception, classify_http, parse_retry_after
from .policy import (
    CAPABILITY_DEFAULTS,
    IMAGE,
    LLM,
    STRATEGIES,
    TTS,
    BreakerPolicy,
    HedgePolicy,
    Modality,
    RetryPolicy,
    RoutePolicy,
    TargetSpec,
    attempt_timeout_for,
    breaker_timeout_for,
    first_byte_timeout_for,
    modality_for,
)
from .result import AttemptContext, AttemptRecord, ChainResult
from .sent import mark_request_sent, watch_sends
from .store import BreakerState, Cooldown, LocalStateStore, StateStore
from .strategies import order_targets
from .window import SlidingWindow, WindowCounts

__all__ = [
    "CAPABILITY_DEFAULTS",
    "EXHAUSTED",
    "IMAGE",
    "LEGAL_EDGES",
    "LLM",
    "MODEL_MISSING",
    "RATE_LIMITED",
    "REJECTED",
    "STRATEGIES",
    "TTS",
    "AdaptiveThrottle",
    "AllTargetsFailed",
    "AttemptContext",
    "AttemptFinished",
    "AttemptFn",
    "AttemptRecord",
    "BreakerPolicy",
    "BreakerSnapshot",
    "BreakerState",
    "BreakerStateChanged",
    "Bulkhead",
    "CallerError",
    "ChainResult",
    "CircuitBreaker",
    "CircuitOpen",
    "Classification",
    "Clock",
    "Cooldown",
    "CooldownStarted",
    "Cooldowns",
    "DeadlineExceeded",
    "Engine",
    "EngineError",
    "Event",
    "EventHook",
    "FakeClock",
    "HedgePolicy",
    "LatencyTracker",
    "LimitStore",
    "LocalLimits",
    "LocalStateStore",
    "Modality",
    "NoTargets",
    "Outcome",
    "Permit",
    "RetryBudget",
    "RetryPolicy",
    "RoutePolicy",
    "SlidingWindow",
    "StateStore",
    "StreamDeadline",
    "SystemClock",
    "TargetSpec",
    "ThresholdExceeded",
    "UnsupportedRequest",
    "UpstreamError",
    "VirtualTimeLoop",
    "WindowCounts",
    "attempt_timeout_for",
    "backoff_bound",
    "break_duration",
    "breaker_timeout_for",
    "classify_exception",
    "classify_http",
    "current_deadline",
    "deadline_scope",
    "first_byte_timeout_for",
    "full_jitter",
    "jittered_at_least",
    "mark_request_sent",
    "modality_for",
    "order_targets",
    "parse_retry_after",
    "watch_sends",
]

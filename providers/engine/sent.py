"""One attempt: whether anything went out on the wire, what came back, how long it took.

`mark_request_sent()` is the hook for the HTTP layer: the shared client's transport calls it
as each request goes out. The chain runs every attempt inside `watch_sends()`, so it knows
whether the attempt reached a provider. An exception from our own code before anything was
sent (a TypeError while translating the caller's `"temperature": "hot"` for Anthropic) is the
caller's 400, never the provider's failure; after a send, the same exception means the
provider's answer could not be used, a FAILURE as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import httpx

from .errors import UpstreamError
from .outcome import SUCCESS, Classification, Outcome, classify_exception
from .policy import TargetSpec
from .result import AttemptRecord


class Wire:
    """Whether the attempt it belongs to has sent a request (set by `mark_request_sent`)."""

    __slots__ = ("sent",)

    def __init__(self) -> None:
        self.sent = False


_wire: ContextVar[Wire | None] = ContextVar("providers_engine_wire", default=None)


def mark_request_sent() -> None:
    """Note that the current attempt has put a request on the wire. Called by the HTTP
    transport for every request it sends; a no-op outside an attempt."""
    wire = _wire.get()
    if wire is not None:
        wire.sent = True


class watch_sends:  # used as a function: `with watch_sends() as wire`
    """Run one attempt with a fresh `Wire` (tasks it starts share it: the object is copied
    by reference into their contexts). A class, not a generator context manager: it runs on
    every attempt, and the generator form cost several times as much."""

    __slots__ = ("token", "wire")

    def __enter__(self) -> Wire:
        self.wire = Wire()
        self.token = _wire.set(self.wire)
        return self.wire

    def __exit__(self, *exc: object) -> None:
        _wire.reset(self.token)


# Exceptions that speak of the network or of time, whoever raised them: never the caller's.
_TRANSPORT = (httpx.HTTPError, OSError, TimeoutError, asyncio.CancelledError, httpx.StreamError)


def translation_error(exc: BaseException, sent: bool) -> bool:
    """Whether `exc` is our own code failing on the caller's request before anything went
    out: not an upstream answer, not a transport or timeout error, and nothing sent."""
    return not sent and not isinstance(exc, (UpstreamError, *_TRANSPORT)) and isinstance(exc, Exception)


class Sent:
    __slots__ = (
        "classification",
        "credential",
        "duration",
        "error",
        "finisher",
        "hedge",
        "index",
        "ok",
        "skipped",
        "status",
        "target",
        "value",
    )

    def __init__(self, target: TargetSpec, credential: str | None, hedge: bool) -> None:
        self.target = target
        self.credential = credential
        self.hedge = hedge
        self.ok = False
        self.value: Any = None
        self.error: BaseException | None = None
        self.classification: Classification = SUCCESS
        self.status: int | None = None
        self.duration = 0.0
        self.finisher: Callable[[BaseException | None], Awaitable[None]] | None = None
        self.index = -1
        self.skipped: str | None = None  # "unsupported" / "invalid_request": nothing was sent

    def fail(self, error: BaseException, *, sent: bool = True) -> None:
        self.error = error
        if translation_error(error, sent):
            self.classification = Classification(Outcome.CALLER_ERROR, "invalid_request", None, False)
            self.status = 400
            return
        self.classification = classify_exception(error)
        if isinstance(error, UpstreamError):
            self.status = error.status

    @property
    def slow(self) -> bool:
        return self.duration > self.target.breaker.slow_call_s or self.classification.outcome is Outcome.DEADLINE

    @property
    def accepted(self) -> bool | None:
        """For adaptive throttling: False for an overload signal, None when it should not count.

        A 429 that carried a wait hint is the cooldown's business: it names the moment to come
        back, and counting it here as well would keep the key dark for the throttle's 120 s.
        An exhausted quota (insufficient_quota, a spend cap) is one credential's state, not the
        provider's load: it must not throttle the provider's other credentials.
        """
        if self.ok:
            return True
        if self.status == 529 or self.classification.reason == "http_529":
            return False
        if self.classification.outcome is Outcome.EXHAUSTED:
            return None
        if self.status == 429:
            return None if self.classification.retry_after is not None else False
        if self.classification.outcome is Outcome.CANCELLED:
            return None
        return True

    def record(self, reason: str = "") -> AttemptRecord:
        cls = self.classification
        error = ""
        if cls.outcome is Outcome.CREDENTIAL_REJECTED:
            # What a provider says about our key (a careless proxy repeats it) is for the
            # operator's health view, never for the caller's attempt list.
            error = f"the provider refused the gateway's credential (HTTP {self.status})"
        elif self.error is not None:
            message = getattr(self.error, "message", None) or str(self.error) or type(self.error).__name__
            error = message[:200]
        return AttemptRecord(
            self.target.provider,
            self.target.model,
            self.credential,
            cls.outcome,
            self.status,
            self.duration * 1000.0,
            None,
            reason or cls.reason,
            error,
            self.hedge,
        )

"""One attempt that was sent: what came back and how long it took (internal to the chain)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from .errors import UpstreamError
from .outcome import SUCCESS, Classification, Outcome, classify_exception
from .policy import TargetSpec
from .result import AttemptRecord


class Sent:
    __slots__ = ("classification", "credential", "duration", "error", "finisher", "hedge", "index",
                 "ok", "status", "target", "value")

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

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.classification = classify_exception(error)
        if isinstance(error, UpstreamError):
            self.status = error.status

    @property
    def slow(self) -> bool:
        return (
            self.duration > self.target.breaker.slow_call_s
            or self.classification.outcome is Outcome.DEADLINE
        )

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
        if self.error is not None:
            message = getattr(self.error, "message", None) or str(self.error) or type(self.error).__name__
            error = message[:200]
        return AttemptRecord(
            self.target.provider, self.target.model, self.credential, cls.outcome, self.status,
            self.duration * 1000.0, None, reason or cls.reason, error, self.hedge,
        )

"""The engine's exceptions. One small tree:

    EngineError
    ├── UpstreamError        a provider answered with an error, or its answer was unusable
    │   └── UnsupportedRequest  this target cannot take this request (raised before sending):
    │                            the chain skips it ("unsupported") and falls back
    ├── CircuitOpen          a breaker refused the call (fail fast), with `retry_after`
    ├── NoTargets            the route has no target that could serve the request
    ├── CallerError          the request itself is wrong: a provider's 4xx (returned as is), a
    │                        request no target can take, or one our translation cannot build
    ├── StreamDeadline       the request's deadline ended a stream after its first byte
    └── AllTargetsFailed     every target failed or was skipped; carries the attempt list and,
        │                    when cooldowns or open breakers were the cause, `retry_after`
        └── DeadlineExceeded the request's deadline left no time for another attempt

`asyncio.CancelledError` is never wrapped: it is re-raised unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .outcome import Classification, Outcome, classify_http
from .result import Hops, hops_of


class EngineError(Exception):
    """Base of every error the engine raises."""


class UpstreamError(EngineError):
    """A provider answered with an error status, or its answer could not be used.

    Adapters raise this; the engine reads `classification` to decide on breaker, retry and
    fallback. `status`, `headers` and `body` keep the provider's own answer so a caller error
    can be returned to the client as is.
    """

    def __init__(
        self,
        classification: Classification,
        *,
        status: int | None = None,
        message: str = "",
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        media_type: str = "application/json",
    ) -> None:
        self.classification = classification
        self.status = status
        self.message = message or classification.reason
        self.headers = dict(headers or {})
        self.body = body
        self.media_type = media_type
        super().__init__(self.message)

    @property
    def outcome(self) -> Outcome:
        return self.classification.outcome

    @classmethod
    def from_response(
        cls,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        *,
        message: str = "",
        classification: Classification | None = None,
        media_type: str = "application/json",
    ) -> UpstreamError:
        """Build the error for an HTTP answer, classified by `classify_http` unless given."""
        parsed: Any = body
        classification = classification or classify_http(status, headers, parsed)
        if not message:
            message = _message_of(body) or f"HTTP {status}"
        return cls(
            classification,
            status=status,
            message=message,
            headers=headers,
            body=body,
            media_type=media_type,
        )

    def __repr__(self) -> str:
        return f"UpstreamError({self.classification.outcome}, status={self.status}, {self.message!r})"


def _message_of(body: bytes) -> str:
    import json

    try:
        data = json.loads(body or b"null")
    except ValueError:
        return body[:200].decode(errors="replace").strip()
    if isinstance(data, dict):
        for key in ("error", "detail", "message"):
            inner = data.get(key)
            if isinstance(inner, dict):
                msg = inner.get("message") or inner.get("msg") or inner.get("status")
                if isinstance(msg, str):
                    return msg
            elif isinstance(inner, str):
                return inner
    return ""


class UnsupportedRequest(UpstreamError):
    """This target cannot take this request (`n > 1`, audio input, an option its wire format
    lacks, a value it refuses), found before anything was sent.

    Not the provider's fault and not necessarily the caller's: another target may take it.
    The chain records the target as skipped ("unsupported", with this message), sends
    nothing, leaves the breaker alone and falls back; only when every target refuses does
    the caller get a 400 (`CallerError`) that says why, per target.
    """

    def __init__(self, message: str, *, reason: str = "unsupported", status: int = 400, body: bytes = b"") -> None:
        if not body:
            body = _error_body(message, reason)
        super().__init__(Classification(Outcome.CALLER_ERROR, reason), status=status, message=message, body=body)


def _error_body(message: str, code: str) -> bytes:
    import json

    return json.dumps(
        {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
    ).encode()


class CircuitOpen(EngineError):
    """The breaker is open (or half-open with no probe slot free); the call was not sent."""

    def __init__(self, key: str, retry_after: float, state: str = "open") -> None:
        self.key = key
        self.retry_after = retry_after
        self.state = state
        super().__init__(f"circuit {state} for {key}; retry after {retry_after:.1f}s")


class NoTargets(EngineError):
    """The route has no target for this request."""


class CallerError(EngineError):
    """The request itself is wrong: not retried, never a breaker failure.

    `upstream` is what the caller is answered with: a provider's own 4xx (400/404/413/422) as
    it came, or one the engine built (`invalid`, `unsupported`) in OpenAI's error shape.
    """

    def __init__(self, upstream: UpstreamError, attempts: Sequence[Any]) -> None:
        self.upstream = upstream
        self.attempts = list(attempts)
        super().__init__(upstream.message)

    @property
    def hops(self) -> Hops:
        """How the request moved along its chain before it ended (`result.Hops`)."""
        return hops_of(self.attempts)

    @classmethod
    def invalid(cls, message: str, attempts: Sequence[Any]) -> CallerError:
        """A request our translation for a target could not build: a 400 `invalid_request`."""
        return cls(
            UpstreamError(
                Classification(Outcome.CALLER_ERROR, "invalid_request"),
                status=400,
                message=message,
                body=_error_body(message, "invalid_request"),
            ),
            attempts,
        )

    @classmethod
    def unsupported(cls, message: str, attempts: Sequence[Any]) -> CallerError:
        """No target can take the request: a 400 `unsupported`, saying why per target."""
        return cls(
            UpstreamError(
                Classification(Outcome.CALLER_ERROR, "unsupported"),
                status=400,
                message=message,
                body=_error_body(message, "unsupported"),
            ),
            attempts,
        )


class StreamDeadline(EngineError):
    """The request's deadline ran out while a stream was being forwarded.

    The client keeps what it got and hears why; the provider is not blamed (the breaker
    counts nothing), since it was answering, only for longer than the request allowed.
    """


class AllTargetsFailed(EngineError):
    """No target produced a result. `all_skipped` is true when no call was sent at all."""

    def __init__(
        self,
        message: str,
        attempts: Sequence[Any],
        *,
        last_error: BaseException | None = None,
        all_skipped: bool = False,
        retry_after: float | None = None,
    ) -> None:
        self.attempts = list(attempts)
        self.last_error = last_error
        self.all_skipped = all_skipped
        # Seconds until the earliest cooldown or open breaker among the skipped targets ends
        # (None: none of them will end by itself); the gateway sends it as Retry-After.
        self.retry_after = retry_after
        super().__init__(message)

    @property
    def hops(self) -> Hops:
        """How the request moved along its chain before it ended (`result.Hops`)."""
        return hops_of(self.attempts)


class DeadlineExceeded(AllTargetsFailed):
    """The request's deadline left no time for a useful attempt."""

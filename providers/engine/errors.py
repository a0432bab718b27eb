"""The engine's exceptions. One small tree:

    EngineError
    ├── UpstreamError        a provider answered with an error, or its answer was unusable
    ├── CircuitOpen          a breaker refused the call (fail fast), with `retry_after`
    ├── NoTargets            the route has no target that could serve the request
    ├── CallerError          a provider said the request itself is wrong (4xx): returned as is
    └── AllTargetsFailed     every target failed or was skipped; carries the attempt list
        └── DeadlineExceeded the request's deadline left no time for another attempt

`asyncio.CancelledError` is never wrapped: it is re-raised unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .outcome import Classification, Outcome, classify_http


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
    """A provider rejected the request itself (400/401/403/404/413/422): not retried."""

    def __init__(self, upstream: UpstreamError, attempts: Sequence[Any]) -> None:
        self.upstream = upstream
        self.attempts = list(attempts)
        super().__init__(upstream.message)


class AllTargetsFailed(EngineError):
    """No target produced a result. `all_skipped` is true when no call was sent at all."""

    def __init__(
        self,
        message: str,
        attempts: Sequence[Any],
        *,
        last_error: BaseException | None = None,
        all_skipped: bool = False,
    ) -> None:
        self.attempts = list(attempts)
        self.last_error = last_error
        self.all_skipped = all_skipped
        super().__init__(message)


class DeadlineExceeded(AllTargetsFailed):
    """The request's deadline left no time for a useful attempt."""

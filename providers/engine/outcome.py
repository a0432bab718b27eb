"""Classifying what one attempt's result means for the breaker, retries and fallback.

This is the foundation of every routing decision (resilience.md §2): an HTTP status, an error
body, a set of headers or an exception becomes one `Classification`. Nothing here keeps state.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import re
import ssl
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx


class Outcome(enum.StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    RATE_LIMITED = "rate_limited"
    EXHAUSTED = "exhausted"
    CALLER_ERROR = "caller_error"
    CREDENTIAL_REJECTED = "credential_rejected"  # 401/403: our key for the provider is refused
    TARGET_MISCONFIGURED = "target_misconfigured"  # 404 for a model the route chose
    CANCELLED = "cancelled"
    DEADLINE = "deadline"
    STREAM_ABORTED = "stream_aborted"  # cut after the first byte was forwarded: no retry, no fallback


@dataclass(frozen=True, slots=True)
class Classification:
    """The meaning of one result. `reason` is a short machine word shown to operators."""

    outcome: Outcome
    reason: str
    retry_after: float | None = None  # seconds from now, parsed from the response's headers
    should_retry: bool | None = None  # the server's own hint (x-should-retry), when it gave one


SUCCESS = Classification(Outcome.SUCCESS, "ok")

# Error codes that mean "this credential has no money or quota left", not "slow down".
EXHAUSTION_CODES = frozenset(
    {
        "insufficient_quota",
        "enforced_spend_limit_reached",
        "billing_hard_limit_reached",
        "billing_not_active",
        "quota_exceeded",
        "credit_balance_too_low",
        "payment_required",
    }
)
_EXHAUSTION_MESSAGES = ("credit balance is too low", "exceeded your current quota", "quota exceeded")

# Statuses a caller must fix; never retried, never a breaker failure (resilience.md §2).
CALLER_ERROR_STATUSES = frozenset({400, 401, 403, 404, 405, 409, 410, 413, 415, 422})
# Within a chain, these mean the provider refused *our* credential (the caller already passed
# the gateway's own key check): CREDENTIAL_REJECTED, which the chain decides (`at_fault`).
CREDENTIAL_STATUSES = frozenset({401, 403})

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(value: str) -> float | None:
    """Parse OpenAI's reset durations ("1s", "6m0s", "20ms", "1h2m3.5s") or plain seconds."""
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    parts = _DURATION_PART.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value.replace(" ", ""):
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * scale[u] for n, u in parts)


def _parse_instant(value: str, now: float) -> float | None:
    """Seconds from `now` until an HTTP date or an RFC 3339 timestamp (never negative)."""
    value = value.strip()
    when: float | None = None
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        try:
            from datetime import datetime

            when = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return max(0.0, when - now)


def parse_retry_after(
    headers: Mapping[str, str],
    now: float | None = None,
    *,
    max_s: float | None = None,
    explicit_only: bool = False,
) -> float | None:
    """How long the server asked us to wait, in seconds, or None if it did not say.

    Precedence: `retry-after-ms`, then `Retry-After` (seconds or HTTP date; a past date is 0),
    then OpenAI's `x-ratelimit-reset-{requests,tokens}`, then Anthropic's
    `anthropic-ratelimit-*-reset`, then `X-RateLimit-Reset` (a Unix time, as in Envoy).
    With `max_s`, a value above it is implausible and skipped for the next header
    (resilience.md §4: above 300 s, try the next header, then fall back to a default).
    `explicit_only` reads `retry-after-ms` and `Retry-After` alone: the rate-limit reset
    headers describe request windows, not when an exhausted quota comes back.
    `headers` must be case-insensitive (httpx.Headers) or have lowercase keys.
    """
    now = time.time() if now is None else now
    for value in _retry_after_candidates(headers, now, explicit_only):
        if max_s is None or value <= max_s:
            return value
    return None


def _retry_after_candidates(headers: Mapping[str, str], now: float, explicit_only: bool = False) -> Iterator[float]:
    """Every wait the headers state, most explicit first: Retry-After(-Ms), then (unless
    `explicit_only`) the rate-limit reset headers of OpenAI, Anthropic and the plain
    `x-ratelimit-reset` epoch."""
    yield from _explicit_waits(headers, now)
    if explicit_only:
        return
    yield from _openai_resets(headers)
    yield from _anthropic_resets(headers, now)
    unix = headers.get("x-ratelimit-reset")
    if unix is not None:
        with contextlib.suppress(ValueError):
            yield max(0.0, float(unix) - now)


def _explicit_waits(headers: Mapping[str, str], now: float) -> Iterator[float]:
    ms = headers.get("retry-after-ms")
    if ms is not None:
        with contextlib.suppress(ValueError):
            yield max(0.0, float(ms) / 1000.0)
    ra = headers.get("retry-after")
    if ra is not None:
        try:
            yield max(0.0, float(ra))
        except ValueError:
            parsed = _parse_instant(ra, now)
            if parsed is not None:
                yield parsed


def _openai_resets(headers: Mapping[str, str]) -> Iterator[float]:
    """The reset of the limit that was hit (remaining 0), else the later of the two."""
    resets: list[float] = []
    hit: float | None = None
    for kind in ("requests", "tokens"):
        reset = headers.get(f"x-ratelimit-reset-{kind}")
        seconds = None if reset is None else parse_duration(reset)
        if seconds is None:
            continue
        if hit is None and headers.get(f"x-ratelimit-remaining-{kind}", "").strip() == "0":
            hit = seconds  # this is the limit that was hit
        resets.append(seconds)
    if hit is not None:
        yield hit
    elif resets:
        yield max(resets)


def _anthropic_resets(headers: Mapping[str, str], now: float) -> Iterator[float]:
    for kind in ("requests", "tokens", "input-tokens", "output-tokens"):
        reset = headers.get(f"anthropic-ratelimit-{kind}-reset")
        if reset is not None and headers.get(f"anthropic-ratelimit-{kind}-remaining", "").strip() == "0":
            parsed = _parse_instant(reset, now)
            if parsed is not None:
                yield parsed


def _error_codes(body: Any) -> tuple[set[str], str]:
    """The error codes and message an error body carries, in the shapes providers use."""
    if isinstance(body, bytes | bytearray | str):
        try:
            body = json.loads(body or b"null")
        except ValueError:
            return set(), body.decode(errors="replace") if isinstance(body, bytes | bytearray) else body
    codes: set[str] = set()
    message = ""
    if not isinstance(body, dict):
        return codes, message
    candidates: list[Any] = [body]
    for key in ("error", "detail"):
        inner = body.get(key)
        if isinstance(inner, dict):
            candidates.append(inner)
            details = inner.get("details")
            if isinstance(details, dict):
                candidates.append(details)
        elif isinstance(inner, str):
            message = message or inner
    for candidate in candidates:
        for key in ("code", "type", "error_code", "status"):
            value = candidate.get(key)
            if isinstance(value, str):
                codes.add(value.lower())
        msg = candidate.get("message")
        if isinstance(msg, str) and not message:
            message = msg
    return codes, message


def _should_retry(headers: Mapping[str, str]) -> bool | None:
    hint = headers.get("x-should-retry")
    if hint is None:
        return None
    return hint.strip().lower() == "true"


def classify_http(
    status: int,
    headers: Mapping[str, str] | None = None,
    body: Any = None,
    *,
    now: float | None = None,
) -> Classification:
    """Classify an HTTP answer by status, error body and headers (resilience.md §2)."""
    headers = headers if headers is not None else {}
    if 200 <= status < 300:
        return SUCCESS
    hint = _should_retry(headers)
    if 400 <= status < 500:
        codes, message = _error_codes(body)
        lowered = message.lower()
        if (
            status == 402
            or status == 456
            or codes & EXHAUSTION_CODES
            or any(m in lowered for m in _EXHAUSTION_MESSAGES)
        ):
            reason = next(iter(sorted(codes & EXHAUSTION_CODES)), f"http_{status}")
            # An exhausted quota or spend cap comes back when the provider says so explicitly,
            # or when an operator resets it; a request-window reset header is not that.
            return Classification(Outcome.EXHAUSTED, reason, parse_retry_after(headers, now, explicit_only=True), False)
        if status == 429:
            return Classification(Outcome.RATE_LIMITED, "rate_limited", parse_retry_after(headers, now), hint)
        if status == 408:
            return Classification(Outcome.FAILURE, "http_408", None, hint)
        return Classification(Outcome.CALLER_ERROR, f"http_{status}", None, False)
    if status >= 500:
        return Classification(Outcome.FAILURE, f"http_{status}", parse_retry_after(headers, now), hint)
    return Classification(Outcome.FAILURE, f"unexpected_status_{status}", None, hint)


_MODEL_MISSING_CODES = frozenset({"model_not_found", "not_found_error", "model_not_available"})


def model_missing(status: int | None, reason: str, body: Any, message: str, model: str) -> bool:
    """Whether a 404 says the provider has no such *model* (as opposed to another missing
    thing the caller named, an ElevenLabs voice say, which must not set the target aside).

    Yes when an adapter classified it `model_not_found`, when the error code says so
    (OpenAI `model_not_found`, Anthropic `not_found_error`), or when the message names the
    model (Ollama: `model "llama3" not found, try pulling it first`). Another `*_not_found`
    code (voice_not_found, ...) is the caller's, whatever the message says.
    """
    if status != 404:
        return False
    if reason == "model_not_found":
        return True
    codes, body_message = _error_codes(body)
    if any(c.endswith("not_found") and c not in _MODEL_MISSING_CODES for c in codes):
        return False
    if codes & _MODEL_MISSING_CODES:
        return True
    text = f"{message} {body_message}".lower()
    return "model" in text and bool(model) and model.lower() in text


def at_fault(
    classification: Classification, status: int | None, body: Any, message: str, model: str, *, caller_named: bool
) -> Classification:
    """What a caller error from a provider means inside a fallback chain (product.md "Who is
    at fault"): a 401/403 is our credential refused (CREDENTIAL_REJECTED); a 404 for a model
    the route chose is the route misconfigured (TARGET_MISCONFIGURED, "model_missing"). An
    HTTP answer alone cannot say either: it takes the chain's knowledge of the target."""
    if classification.outcome is not Outcome.CALLER_ERROR:
        return classification
    if status in CREDENTIAL_STATUSES:
        return Classification(Outcome.CREDENTIAL_REJECTED, classification.reason, None, False)
    if not caller_named and model_missing(status, classification.reason, body, message, model):
        return Classification(Outcome.TARGET_MISCONFIGURED, "model_missing", None, False)
    return classification


def _connect_reason(exc: BaseException) -> str:
    """httpx-aiohttp reports any lost connection as a ConnectTimeout; the aiohttp error behind
    it (read by class name: the engine does not import aiohttp) says what really happened."""
    cause = exc.__cause__ or exc.__context__
    for _ in range(4):
        if cause is None:
            break
        name = type(cause).__name__
        if "ServerDisconnected" in name:
            return "connection_dropped"  # the upstream hung up after the request was sent
        if "ConnectorError" in name or isinstance(cause, ConnectionRefusedError):
            return "connect_error"
        if isinstance(cause, ConnectionResetError) or getattr(cause, "errno", None) == 104:
            return "connection_reset"
        if isinstance(cause, OSError) and not isinstance(cause, TimeoutError) and "timeout" not in name.lower():
            return "connect_error"
        cause = cause.__cause__ or cause.__context__
    return "connect_timeout"


def classify_exception(exc: BaseException) -> Classification:
    """Classify an exception raised by an attempt (transport error, our timeout, cancellation)."""
    from .errors import UpstreamError  # errors imports this module

    if isinstance(exc, UpstreamError):
        return exc.classification
    if isinstance(exc, asyncio.CancelledError):
        return Classification(Outcome.CANCELLED, "cancelled")
    if isinstance(exc, httpx.ConnectTimeout):
        # httpx-aiohttp reports a refused connection as a ConnectTimeout; the aiohttp
        # error behind it (an OSError that is no timeout) tells the truth.
        return Classification(Outcome.FAILURE, _connect_reason(exc))
    if isinstance(exc, httpx.ReadTimeout):
        return Classification(Outcome.FAILURE, "read_timeout")
    if isinstance(exc, httpx.TimeoutException):
        return Classification(Outcome.FAILURE, "timeout")
    if isinstance(exc, TimeoutError):  # asyncio.timeout around the attempt: our own deadline
        return Classification(Outcome.DEADLINE, "attempt_timeout")
    if isinstance(exc, httpx.ConnectError):
        return Classification(Outcome.FAILURE, "connect_error")
    if isinstance(exc, httpx.RemoteProtocolError):
        return Classification(Outcome.FAILURE, "protocol_error")
    if isinstance(exc, httpx.TransportError):
        return Classification(Outcome.FAILURE, "transport_error")
    if isinstance(exc, ssl.SSLError):
        return Classification(Outcome.FAILURE, "tls_error")
    if isinstance(exc, ConnectionError | OSError):
        return Classification(Outcome.FAILURE, "connect_error")
    if isinstance(exc, ValueError | httpx.DecodingError):  # JSONDecodeError is a ValueError
        return Classification(Outcome.FAILURE, "malformed_response")
    return Classification(Outcome.FAILURE, f"error:{type(exc).__name__}")

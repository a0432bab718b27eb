"""Plain-language names for the error keys the gateway records, with the key kept beside them.

The keys are short machine words (`http_503`, `open`, `read_timeout`) written by the engine's
outcome classification (providers/engine/outcome.py), the fallback chain's skip reasons
(providers/engine/result.py, `AttemptRecord.skipped`), the gateway's request errors and the
key limits. Operators see "Service unavailable (http_503)": the name says what happened, the
key is what to search the logs and the API for.

`error_name(key)` never fails: an unknown key is shown as itself, an HTTP status by its
standard phrase, `error:Name` (or a bare exception class name) as an unexpected error.
"""

from __future__ import annotations

import re
from http import HTTPStatus

__all__ = ["ERROR_NAMES", "error_name"]

ERROR_NAMES: dict[str, str] = {
    # What an upstream answered or how the call failed (an attempt's reason).
    "http_408": "Upstream timed out the request",
    "http_429": "Rate limited by the provider",
    "http_500": "Provider internal error",
    "http_502": "Bad gateway at the provider",
    "http_503": "Service unavailable",
    "http_504": "Provider's gateway timed out",
    "http_529": "Provider overloaded",
    "rate_limited": "Rate limited",
    "timeout": "Timed out",
    "read_timeout": "No answer in time (read timeout)",
    "connect_timeout": "Could not connect in time",
    "attempt_timeout": "Attempt ran past its time limit",
    "connect_error": "Could not connect",
    "connection_dropped": "Provider hung up mid-request",
    "connection_reset": "Connection reset",
    "protocol_error": "Broken HTTP exchange",
    "transport_error": "Network error",
    "tls_error": "TLS / certificate error",
    "malformed_response": "Unreadable answer",
    "response_too_large": "Answer too large",
    "empty_stream": "Stream ended before any output",
    "stream_error": "Stream failed",
    "stream_aborted": "Stream cut off midway",
    "model_missing": "Model not found at the provider",
    "model_not_found": "Unknown model",
    "misconfigured": "Provider misconfigured",
    "unhealthy": "Provider reported itself unhealthy",
    "url_refused": "URL refused by the address guard",
    "unsafe_output_url": "Unsafe output URL refused",
    "request_failed": "Request failed",
    "output_unavailable": "Output not available",
    "no_results": "No results",
    "no_chat_model": "No chat model at the provider",
    "not_whisper_asr": "Not a Whisper ASR server",
    "wrong_audio_format": "Audio in the wrong format",
    "queue_timeout": "Waited too long in the provider's queue",
    "prediction_timeout": "Generation took too long",
    "compose_timeout": "Composition took too long",
    "invalid_request": "Invalid request",
    "unsupported": "Not supported by this provider",
    "cancelled": "Cancelled by the caller",
    "deadline": "Request deadline ran out",
    "caller_error": "Caller's error",
    "failure": "Failed",
    "unavailable": "No provider available",
    "no_targets": "No target configured for this model",
    # Exhausted credit (an attempt's reason when the provider named it).
    "insufficient_quota": "Quota used up",
    "exhausted": "Credit or quota used up",
    "exhausted_balance": "Balance used up",
    "enforced_spend_limit_reached": "Provider spend limit reached",
    "billing_hard_limit_reached": "Billing limit reached",
    "billing_not_active": "Billing not active",
    "quota_exceeded": "Quota exceeded",
    "credit_balance_too_low": "Credit balance too low",
    "payment_required": "Payment required",
    # Why a target was skipped without a call (the fallback chain's skip reasons).
    "open": "Circuit breaker open",
    "half_open_full": "Breaker testing recovery (trial slots full)",
    "forced_open": "Breaker forced open by an operator",
    "disabled": "Provider disabled",
    "maintenance": "Provider in maintenance",
    "cooldown": "Cooling down after errors",
    "rejected": "Credentials rejected",
    "bulkhead_full": "Too many calls in flight",
    "throttled": "Throttled after many failures",
    "budget": "Retry budget spent",
    "limit": "Provider's own rate limit reached",
    # The gateway's answers to callers (API key limits, request checks).
    "budget_exceeded": "API key's budget spent",
    "route_not_allowed": "API key may not use this route",
    "invalid_api_key": "Invalid API key",
    "missing_api_key": "No API key",
    "request_too_large": "Request too large",
    "all_targets_failed": "Every provider failed",
    "no_target_available": "No provider available",
    "deadline_exceeded": "Request deadline ran out",
    "client_disconnected": "Caller went away",
    # A broken stream records the exception that broke it (providers/gateway/serving.py).
    "ReadError": "Connection broke while reading",
    "ReadTimeout": "No data in time while reading",
    "WriteError": "Connection broke while sending",
    "RemoteProtocolError": "Provider broke the HTTP exchange",
    "ConnectError": "Could not connect",
    "CancelledError": "Cancelled",
}

_HTTP = re.compile(r"^(?:http|unexpected_status)_(\d{3})$")
_CLASS = re.compile(r"^[A-Z][A-Za-z0-9]*(?:Error|Exception|Timeout)$")


def error_name(key: str | None) -> str:
    """The plain-language name of an error key ("" for none); the key itself when unknown."""
    if not key:
        return ""
    name = ERROR_NAMES.get(key)
    if name is not None:
        return name
    match = _HTTP.match(key)
    if match:
        try:
            return HTTPStatus(int(match.group(1))).phrase
        except ValueError:
            return f"HTTP status {match.group(1)}"
    if key.startswith("error:"):
        return f"Unexpected error ({key.removeprefix('error:')})"
    if _CLASS.match(key):
        return "Unexpected error"
    return key

"""Reading the server's wait hints (resilience.md §4 "Retry-After and reset headers")."""

from __future__ import annotations

from email.utils import formatdate

import httpx

from providers.engine import Outcome, classify_exception
from providers.engine.outcome import classify_http, parse_retry_after

NOW = 1_800_000_000.0


def test_retry_after_ms_wins_over_retry_after():
    assert parse_retry_after(httpx.Headers({"retry-after-ms": "1500", "retry-after": "9"}), NOW) == 1.5


def test_a_past_http_date_means_no_wait():
    assert parse_retry_after({"retry-after": formatdate(NOW - 10, usegmt=True)}, NOW) == 0.0


def test_an_implausible_value_gives_way_to_the_next_header():
    headers = {"retry-after": "100000", "x-ratelimit-reset-requests": "6m0s"}
    assert parse_retry_after(headers, NOW) == 100000.0
    assert parse_retry_after(headers, NOW, max_s=400.0) == 360.0
    assert parse_retry_after(headers, NOW, max_s=300.0) is None  # both implausible
    assert parse_retry_after({"retry-after": "100000"}, NOW, max_s=300.0) is None


def test_a_unix_reset_time_is_read_as_seconds_from_now():
    assert parse_retry_after({"x-ratelimit-reset": str(NOW + 42)}, NOW) == 42.0


def test_a_429_with_retry_after_is_rate_limited_not_a_failure():
    classification = classify_http(429, {"retry-after": "5"})
    assert (classification.outcome, classification.retry_after) == (Outcome.RATE_LIMITED, 5.0)


def test_our_own_timeout_is_a_deadline_outcome():
    assert classify_exception(TimeoutError()).outcome is Outcome.DEADLINE


def test_an_exhausted_quota_ignores_request_window_reset_headers():
    headers = {"x-ratelimit-reset-requests": "1s", "x-ratelimit-remaining-requests": "0"}
    body = b'{"error": {"code": "insufficient_quota", "type": "insufficient_quota"}}'
    classification = classify_http(429, headers, body)
    assert classification.outcome is Outcome.EXHAUSTED
    assert classification.retry_after is None
    explicit = classify_http(429, {**headers, "retry-after": "3600"}, body)
    assert explicit.retry_after == 3600.0


async def test_a_refused_connection_through_httpx_aiohttp_is_named_connect_error():
    from providers.adapters.client import build_client
    from tests.fakes.base import free_port

    client = build_client("aiohttp")
    try:
        try:
            await client.get(f"http://127.0.0.1:{free_port()}/", timeout=2)
        except httpx.HTTPError as exc:
            classification = classify_exception(exc)
    finally:
        await client.aclose()
    assert classification.outcome is Outcome.FAILURE
    assert classification.reason == "connect_error"

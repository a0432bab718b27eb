"""Every fault of resilience.md §2 against the real server (daphne) and fake upstreams.

For each: the status the client gets, whether the same target was retried, whether the
fallback served, the breaker and cooldown state in /api/breakers, and the request's one row
in the request log (written by the server's analytics batcher, read back by request id).
The last test stops the server with SIGTERM and checks that every request the module sent
is in the log exactly once.
"""

from __future__ import annotations

import email.utils
import json
import time
from typing import Any

import pytest
from django.conf import settings

from tests.fakes.base import free_port

from .live import LiveGateway
from .upstreams import BlackHole, RawUpstream, flood, short_body, slowloris, stream_without_done

pytestmark = pytest.mark.e2e

CHAT_PATH = "/v1/chat/completions"


def calls(fake: Any) -> int:
    return len(fake.requests_to(CHAT_PATH))


def attempts(row: Any) -> list[tuple[str, str, Any, str]]:
    """(provider role, outcome or skipped reason, status, reason) of each attempt in a log row."""
    return [
        (a["provider"], (a["skipped"] and f"skipped:{a['skipped']}") or a["outcome"], a["status"], a["reason"])
        for a in json.loads(row["attempts"])
    ]


def logged(live: LiveGateway, response: Any) -> Any:
    request_id = response.headers["x-request-id"]
    return live.accounted([request_id])[request_id]


def served(response: Any) -> tuple[int, str, str, str]:
    h = response.headers
    return (
        response.status_code,
        h.get("x-gateway-provider", ""),
        h["x-gateway-attempts"],
        h.get("x-gateway-failovers", ""),
    )


# -- FAILURE: retried on the same target (budgeted), then the fallback ------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 529])
def test_a_server_error_is_retried_once_then_the_fallback_serves(live, setup, primary, fallback, status):
    names = setup()
    primary.fault(status=status)
    response = live.chat(names.body())
    row = logged(live, response)
    failed = (names.first, "failure", status, f"http_{status}")
    if status == 529 and attempts(row)[1][1] == "skipped:throttled":
        # 529 is an overload signal: adaptive throttling (resilience.md §4, K=2) rejects the
        # retry locally with probability 1/2 after one 529, and the fallback serves at once.
        expect_calls, expect_attempts = 1, [failed, (names.first, "skipped:throttled", None, "throttled")]
    else:
        expect_calls, expect_attempts = 2, [failed, failed]
    assert served(response) == (200, names.second, str(expect_calls + 1), "1")
    assert response.json()["choices"][0]["message"]["content"] == "Echo: hello there"
    assert (calls(primary), calls(fallback)) == (expect_calls, 1)
    breaker = live.breaker(names.first)
    assert (breaker["state"], breaker["failures"], breaker["consecutive_failures"]) == (
        "closed",
        expect_calls,
        expect_calls,
    )
    assert (row["outcome"], row["status"], row["provider"], row["retries"], row["failovers"]) == (
        "success",
        200,
        names.second,
        expect_calls - 1,
        1,
    )
    assert attempts(row) == [*expect_attempts, (names.second, "success", 200, "ok")]


@pytest.mark.parametrize("status", [500, 503])
def test_a_server_error_on_a_route_with_no_fallback_is_a_502_with_the_attempts(live, setup, primary, status):
    names = setup()
    primary.fault(status=status)
    response = live.chat(names.body(names.solo))
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["type"] == "all_targets_failed"
    assert [(a["provider"], a["outcome"], a["status"]) for a in error["attempts"]] == [
        (names.first, "failure", status)
    ] * 2
    row = logged(live, response)
    assert (row["outcome"], row["status"], row["provider"], row["calls"]) == ("failure", 502, "", 2)


def test_consecutive_failures_open_the_breaker_then_requests_get_503_without_an_upstream_call(live, setup, primary):
    names = setup()
    primary.fault(status=503)
    before = time.time()
    statuses = [live.chat(names.body(names.solo)).status_code for _ in range(4)]
    # 2 + 2 calls, then the 5th consecutive failure opens the breaker (its retry is skipped);
    # the 4th request finds it open and is refused at once.
    assert statuses == [502, 502, 502, 503]
    assert calls(primary) == 5
    breaker = live.breaker(names.first)
    assert breaker["state"] == "open" and breaker["reason"] == "consecutive_failures 5"
    assert breaker["open_until"] >= before + 30  # the base break time, from when it opened
    last = live.chat(names.body(names.solo))
    assert last.status_code == 503 and calls(primary) == 5
    assert last.json()["error"]["type"] == "no_target_available"
    assert [a["skipped"] for a in last.json()["error"]["attempts"]] == ["open"]
    rows = live.accounted(live.sent[-5:])
    assert sorted(r["status"] for r in rows.values()) == [502, 502, 502, 503, 503]
    # the fallback still serves the route that has one, without touching the open breaker
    ok = live.chat(names.body())
    assert served(ok)[:2] == (200, names.second) and calls(primary) == 5
    assert attempts(logged(live, ok))[0] == (names.first, "skipped:open", None, "open")


# -- RATE_LIMITED: not a failure; a cooldown; retry only when the wait fits ---------------------


def test_a_429_with_a_short_retry_after_in_seconds_is_retried_on_the_same_target_after_the_wait(
    live, setup, primary, fallback
):
    names = setup()
    primary.fault(status=429, retry_after="1", times=1)
    started = time.monotonic()
    response = live.chat(names.body())
    assert time.monotonic() - started >= 1.0
    assert served(response) == (200, names.first, "2", "0")
    assert (calls(primary), calls(fallback)) == (2, 0)
    breaker = live.breaker(names.first)
    assert (breaker["state"], breaker["failures"]) == ("closed", 0)
    assert attempts(logged(live, response)) == [
        (names.first, "rate_limited", 429, "rate_limited"),
        (names.first, "success", 200, "ok"),
    ]


def test_a_429_with_a_long_retry_after_in_seconds_cools_the_key_down_and_falls_back_at_once(
    live, setup, primary, fallback
):
    names = setup()
    primary.fault(status=429, retry_after="120")
    before = time.time()
    response = live.chat(names.body())
    after = time.time()
    # fell back at once: the first target was tried once, never waited for
    assert served(response) == (200, names.second, "2", "1")
    assert calls(primary) == 1
    breaker = live.breaker(names.first)
    assert (breaker["state"], breaker["failures"]) == ("closed", 0)  # a rate limit is not an outage
    [cooldown] = breaker["cooldowns"]
    assert cooldown["kind"] == "rate_limited" and before + 120 <= cooldown["until"] <= after + 120 * 1.2
    # while it cools down the key is skipped without a call
    again = live.chat(names.body())
    assert served(again)[:2] == (200, names.second) and calls(primary) == 1
    assert attempts(logged(live, again))[0][:2] == (names.first, "skipped:cooldown")
    assert logged(live, response)["outcome"] == "success"


def test_a_429_with_retry_after_as_a_far_http_date_cools_down_until_that_date(live, setup, primary, fallback):
    names = setup()
    until = int(time.time()) + 90
    primary.fault(status=429, retry_after=email.utils.formatdate(until, usegmt=True))
    response = live.chat(names.body())
    assert served(response) == (200, names.second, "2", "1")
    [cooldown] = live.breaker(names.first)["cooldowns"]
    assert cooldown["kind"] == "rate_limited" and abs(cooldown["until"] - until) < 2
    assert calls(primary) == 1
    assert attempts(logged(live, response))[0] == (names.first, "rate_limited", 429, "rate_limited")


def test_a_429_with_retry_after_as_a_near_http_date_waits_for_it_and_retries(live, setup, primary, fallback):
    names = setup()
    until = int(time.time()) + 2  # an HTTP date has whole seconds: 1 to 2 s from now
    primary.fault(status=429, retry_after=email.utils.formatdate(until, usegmt=True), times=1)
    response = live.chat(names.body())
    assert time.time() >= until - 0.05
    assert served(response) == (200, names.first, "2", "0")
    assert (calls(primary), calls(fallback)) == (2, 0)
    assert live.breaker(names.first)["failures"] == 0
    logged(live, response)


# -- EXHAUSTED: no retry, the key set aside, the fallback ---------------------------------------


def test_insufficient_quota_sets_the_key_aside_without_a_retry_and_falls_back(live, setup, primary, fallback):
    names = setup()
    primary.fault(status=429, error_code="insufficient_quota")
    response = live.chat(names.body())
    assert served(response) == (200, names.second, "2", "1")
    assert calls(primary) == 1
    breaker = live.breaker(names.first)
    assert (breaker["state"], breaker["failures"]) == ("closed", 0)
    assert [c["kind"] for c in breaker["cooldowns"]] == ["exhausted"]
    detail = live.api("GET", f"/api/providers/{names.first}").json()
    assert [c["state"] for c in detail["credentials"]] == ["exhausted"]
    again = live.chat(names.body())
    assert served(again)[:2] == (200, names.second) and calls(primary) == 1
    assert attempts(logged(live, response))[0] == (names.first, "exhausted", 429, "insufficient_quota")
    logged(live, again)


# -- CALLER_ERROR: returned as is, never retried, no fallback -----------------------------------


def test_a_caller_error_is_returned_as_is_without_a_retry_or_a_fallback(live, setup, primary, fallback):
    names = setup()
    primary.fault(status=400, error_code="invalid_value")
    response = live.chat(names.body())
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_value"
    assert (calls(primary), calls(fallback)) == (1, 0)
    assert live.breaker(names.first)["failures"] == 0
    row = logged(live, response)
    assert (row["outcome"], row["status"]) == ("caller_error", 400)


# -- transport faults ------------------------------------------------------------------------------


def test_a_refused_connection_is_retried_then_the_fallback_serves(live, setup, fallback):
    names = setup(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    response = live.chat(names.body())
    assert served(response) == (200, names.second, "3", "1")
    assert live.breaker(names.first)["failures"] == 2
    assert attempts(logged(live, response))[:2] == [(names.first, "failure", None, "connect_error")] * 2


def test_a_connect_timeout_is_retried_then_the_fallback_serves(live, setup, fallback):
    with BlackHole() as hole:
        names = setup(hole.url, timeout_s=0.5)
        started = time.monotonic()
        response = live.chat(names.body())
        elapsed = time.monotonic() - started
    assert served(response) == (200, names.second, "3", "1")
    assert elapsed >= 0.9  # both attempts waited out their 0.5 s timeout
    assert live.breaker(names.first)["failures"] == 2
    first_two = attempts(logged(live, response))[:2]
    # whichever fires first, httpx's connect timeout or the engine's attempt timer (both 0.5 s)
    assert all(a[1] in ("failure", "deadline") and a[3] in ("connect_timeout", "attempt_timeout") for a in first_two)


def test_a_read_timeout_is_retried_then_the_fallback_serves(live, setup, primary, fallback):
    names = setup(timeout_s=0.5)
    primary.fault(hang=True)
    started = time.monotonic()
    response = live.chat(names.body())
    assert time.monotonic() - started >= 0.9  # both attempts waited out their 0.5 s timeout
    assert served(response) == (200, names.second, "3", "1")
    assert live.breaker(names.first)["failures"] == 2
    assert attempts(logged(live, response))[:2] == [(names.first, "deadline", None, "attempt_timeout")] * 2


def test_a_dropped_connection_is_retried_then_the_fallback_serves(live, setup, primary, fallback):
    names = setup()
    primary.fault(drop=True)
    response = live.chat(names.body())
    assert served(response) == (200, names.second, "3", "1")
    assert live.breaker(names.first)["failures"] == 2
    assert [a[1] for a in attempts(logged(live, response))] == ["failure", "failure", "success"]


def test_a_dropped_connection_is_not_reported_as_a_connect_timeout(live, setup, primary):
    names = setup()
    primary.fault(drop=True)
    response = live.chat(names.body())
    reasons = [a[3] for a in attempts(logged(live, response))[:2]]
    assert "connect_timeout" not in reasons


def test_a_trickling_upstream_is_cut_at_the_attempt_timeout_and_the_fallback_serves(live, setup, fallback):
    with RawUpstream(slowloris(0.05)) as loris:
        names = setup(loris.url, timeout_s=0.5)
        started = time.monotonic()
        response = live.chat(names.body())
        assert time.monotonic() - started >= 0.9  # both attempts waited out their 0.5 s timeout
        assert served(response) == (200, names.second, "3", "1")
        deadline = time.monotonic() + 30  # a bound on waiting, not a timing goal
        while time.monotonic() < deadline and not all(c.ended for c in loris.connections):
            time.sleep(0.05)
        # the gateway hung up on both trickling connections instead of waiting them out (each
        # trickle would go on for 10 s; closed_by_peer says the gateway ended it first)
        assert len(loris.connections) == 2 and all(c.closed_by_peer for c in loris.connections)
    assert attempts(logged(live, response))[:2] == [(names.first, "deadline", None, "attempt_timeout")] * 2


def test_a_trickling_stream_that_never_sends_a_chunk_falls_back_at_the_first_byte_timeout(live, setup, fallback):
    with RawUpstream(slowloris(0.05, stream=True)) as loris:
        names = setup(loris.url, timeout_s=0.5)
        with live.stream(names.body()) as (response, events):
            assert served(response)[:2] == (200, names.second)
            assert events[-1] == "[DONE]" and "error" not in events[-2]
    assert [a[1] for a in attempts(logged(live, response))] == ["deadline", "deadline", "success"]


# -- bad answers -------------------------------------------------------------------------------


@pytest.mark.parametrize("body", ["{not json", ""], ids=["malformed-json", "empty-body"])
def test_an_unreadable_answer_is_a_failure_retried_then_the_fallback_serves(live, setup, primary, fallback, body):
    names = setup()
    primary.fault(status=200, body=body)
    response = live.chat(names.body())
    assert served(response) == (200, names.second, "3", "1")
    assert live.breaker(names.first)["failures"] == 2
    assert attempts(logged(live, response))[:2] == [(names.first, "failure", 200, "malformed_response")] * 2


def test_a_body_shorter_than_its_content_length_is_a_failure_and_the_fallback_serves(live, setup, fallback):
    with RawUpstream(short_body()) as raw:
        names = setup(raw.url)
        response = live.chat(names.body())
    assert served(response) == (200, names.second, "3", "1")
    assert live.breaker(names.first)["failures"] == 2
    assert [a[1] for a in attempts(logged(live, response))] == ["failure", "failure", "success"]


def test_an_oversized_answer_is_refused_as_a_failure_and_the_fallback_serves(live, setup, primary, fallback):
    MAX_RESPONSE_BYTES = settings.GATEWAY_MAX_RESPONSE_BYTES  # the server's default too

    names = setup(timeout_s=10)
    big = {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "y" * (MAX_RESPONSE_BYTES + 1)},
                "finish_reason": "stop",
            }
        ],
    }
    primary.fault(status=200, body=json.dumps(big), retry_after=None)
    response = live.chat(names.body())
    assert served(response) == (200, names.second, "3", "1")
    assert len(response.content) < 10_000
    assert attempts(logged(live, response))[:2] == [(names.first, "failure", 200, "response_too_large")] * 2


def test_the_gateway_stops_reading_an_oversized_answer_at_the_limit(live, setup):
    MAX_RESPONSE_BYTES = settings.GATEWAY_MAX_RESPONSE_BYTES  # the server's default too

    size = MAX_RESPONSE_BYTES + 32 * 1024 * 1024
    with RawUpstream(flood(size)) as raw:
        names = setup(raw.url, timeout_s=10, retry={"max_attempts": 1})
        response = live.chat(names.body(names.solo))
        assert response.status_code == 502
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not all(c.ended for c in raw.connections):
            time.sleep(0.05)
        [connection] = raw.connections
    logged(live, response)
    assert connection.sent < MAX_RESPONSE_BYTES + 1024 * 1024


# -- streams -----------------------------------------------------------------------------------


def test_a_stream_cut_before_its_first_chunk_falls_back_and_the_client_gets_a_whole_stream(
    live, setup, primary, fallback
):
    names = setup()
    primary.fault(cut_stream_after=0)
    with live.stream(names.body()) as (response, events):
        assert served(response) == (200, names.second, "3", "1")
    assert events[-1] == "[DONE]"
    text = "".join(
        json.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-1] if json.loads(e)["choices"]
    )
    assert text == "Echo: hello there"
    assert (calls(primary), calls(fallback)) == (2, 1)
    row = logged(live, response)
    assert (row["outcome"], row["stream"], row["provider"]) == ("success", 1, names.second)


def test_a_stream_cut_after_its_first_chunk_is_not_retried_and_the_client_hears_why(live, setup, primary, fallback):
    names = setup()
    primary.fault(cut_stream_after=1)
    with live.stream(names.body()) as (response, events):
        assert served(response) == (200, names.first, "1", "0")
    assert len(events) == 2 and "[DONE]" not in events
    assert json.loads(events[0])["object"] == "chat.completion.chunk"
    assert json.loads(events[1])["error"]["type"] == "stream_aborted"
    assert (calls(primary), calls(fallback)) == (1, 0)  # no retry, no fallback: bytes were forwarded
    breaker = live.breaker(names.first)
    assert (breaker["failures"], breaker["consecutive_failures"]) == (1, 1)
    row = logged(live, response)
    assert (row["outcome"], row["provider"]) == ("stream_aborted", names.first)
    assert attempts(row) == [(names.first, "stream_aborted", 200, "stream_aborted")]


def test_a_stream_that_ends_without_done_is_aborted_not_retried(live, setup, fallback):
    with RawUpstream(stream_without_done(chunks=2)) as raw:
        names = setup(raw.url)
        with live.stream(names.body()) as (response, events):
            assert served(response) == (200, names.first, "1", "0")
    assert [json.loads(e).get("error", {}).get("type") for e in events] == [None, None, "stream_aborted"]
    assert calls(fallback) == 0
    assert live.breaker(names.first)["failures"] == 1
    assert logged(live, response)["outcome"] == "stream_aborted"


# -- the whole module's accounting -------------------------------------------------------------


def test_after_sigterm_every_request_the_module_sent_is_in_the_log_exactly_once(live):
    assert live.sent, "run with the rest of the module"
    totals = live.api("GET", "/api/analytics?window=1h").json()["total"]
    assert live.terminate() == 0
    ids = [r["request_id"] for r in live.rows()]
    assert len(ids) == len(set(ids)) == len(live.sent)
    assert set(ids) == set(live.sent)
    assert totals["requests"] == len(live.sent)

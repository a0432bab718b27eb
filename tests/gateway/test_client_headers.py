"""What the gateway keeps of a client's request and passes on of a provider's answer: the
caller's own `X-Request-Id` (kept, echoed and logged when it is a plain token), the serving
provider's rate-limit headers as `X-Gateway-Upstream-Ratelimit-*`, and a stream's usage chunk
only when the client asked for it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from analytics.models import RequestLog
from analytics.recorder import flush_all
from providers.gateway.dialects import openai_chat
from tests.fakes.anthropic import API_KEY as ANTHROPIC_KEY
from tests.fakes.openai import API_KEY as OPENAI_KEY

from .conftest import CHAT, auth, provider

pytestmark = pytest.mark.django_db(transaction=True)

COMPLETIONS = "/v1/chat/completions"
QUIET = {"consecutive_failures": 100, "min_calls": 1000}
MESSAGE = {"model": "claude-route", "max_tokens": 50, "messages": [{"role": "user", "content": "hello there"}]}


@pytest.fixture
async def routes(configure, upstream_a, upstream_b, upstream_anthropic):
    await configure(
        {
            "providers": [
                provider("up-a", upstream_a.url + "/v1", breaker=QUIET, retry={"max_attempts": 1}),
                provider("up-b", upstream_b.url + "/v1", breaker=QUIET),
                provider("claude", upstream_anthropic.url, kind="anthropic", key=ANTHROPIC_KEY, breaker=QUIET),
            ],
            "routes": [
                {
                    "name": "chain",
                    "capability": "chat",
                    "targets": [{"provider": "up-a", "model": "gpt-4o-mini"}, {"provider": "up-b", "model": "gpt-4o"}],
                },
                {
                    "name": "claude-route",
                    "capability": "chat",
                    "targets": [{"provider": "claude", "model": "claude-sonnet-4-6"}],
                },
            ],
        }
    )


async def logged(request_id: str) -> RequestLog:
    await flush_all()
    return await sync_to_async(RequestLog.objects.get)(request_id=request_id)


def data_events(text: str) -> list[Any]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ") and line != "data: [DONE]"]


# -- request ids ---------------------------------------------------------------------------------


async def test_a_callers_request_id_is_kept_echoed_and_logged(gateway, routes, key):
    response = await gateway.post(COMPLETIONS, json=CHAT, headers={**auth(key), "X-Request-Id": "app-7.run:42_a-b"})

    assert response.status_code == 200 and response.headers["x-request-id"] == "app-7.run:42_a-b"
    row = await logged("app-7.run:42_a-b")
    assert (row.route, row.outcome) == ("chain", "success")


@pytest.mark.parametrize("path", [COMPLETIONS, "/v1/messages", "/v1/responses"])
async def test_every_client_api_echoes_the_callers_id_streamed_or_not(gateway, routes, key, path):
    bodies = {COMPLETIONS: CHAT, "/v1/messages": MESSAGE, "/v1/responses": {"model": "chain", "input": "hi"}}
    for stream in (False, True):
        response = await gateway.post(
            path, json={**bodies[path], "stream": stream}, headers={**auth(key), "X-Request-Id": f"id-{stream}"}
        )
        assert response.status_code == 200 and response.headers["x-request-id"] == f"id-{stream}"


async def test_a_refusal_carries_the_callers_request_id_too(gateway, routes):
    response = await gateway.post(COMPLETIONS, json=CHAT, headers={"X-Request-Id": "no-key-1"})

    assert response.status_code == 401 and response.headers["x-request-id"] == "no-key-1"


async def test_the_longest_id_allowed_is_echoed_whole(gateway, routes, key):
    longest = "r" * 64
    response = await gateway.post(COMPLETIONS, json=CHAT, headers={**auth(key), "X-Request-Id": longest})

    assert response.headers["x-request-id"] == longest


@pytest.mark.parametrize("said", ["r" * 65, "two words", "a/b", "café", "<script>", "id\t1", ""])
async def test_an_id_that_is_not_a_plain_token_is_replaced_by_a_new_one(gateway, routes, key, said):
    response = await gateway.post(COMPLETIONS, json=CHAT, headers={**auth(key), "X-Request-Id": said.encode()})

    made = response.headers["x-request-id"]
    assert made != said and len(made) == 16 and int(made, 16) >= 0
    assert (await logged(made)).route == "chain"


# -- upstream rate-limit headers -----------------------------------------------------------------


async def test_the_serving_providers_rate_limit_headers_are_passed_on(gateway, routes, key):
    response = await gateway.post(COMPLETIONS, json=CHAT, headers=auth(key))

    assert response.headers["x-gateway-upstream-ratelimit-remaining-requests"] == "9999"
    assert response.headers["x-gateway-upstream-ratelimit-limit-tokens"] == "30000000"
    assert response.headers["x-gateway-upstream-ratelimit-reset-requests"] == "6ms"
    assert "x-ratelimit-remaining-requests" not in response.headers  # only under the gateway's names


async def test_after_a_failover_the_headers_are_those_of_the_provider_that_served(gateway, routes, key, upstream_a):
    upstream_a.fault(status=500, headers={"x-ratelimit-remaining-requests": "7"})

    response = await gateway.post(COMPLETIONS, json=CHAT, headers=auth(key))

    assert response.headers["x-gateway-provider"] == "up-b"
    assert response.headers["x-gateway-upstream-ratelimit-remaining-requests"] == "9999"


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropics_rate_limit_headers_are_passed_on_under_their_own_names(gateway, routes, key, stream):
    response = await gateway.post("/v1/messages", json={**MESSAGE, "stream": stream}, headers=auth(key))

    assert response.status_code == 200
    assert int(response.headers["x-gateway-upstream-ratelimit-requests-remaining"]) >= 0
    assert response.headers["x-gateway-upstream-ratelimit-requests-limit"]


async def test_a_rate_limit_header_holding_a_provider_key_is_scrubbed(gateway, routes, key, upstream_a):
    upstream_a.fault(headers={"x-ratelimit-remaining-requests": f"left {OPENAI_KEY} x"})

    response = await gateway.post(COMPLETIONS, json=CHAT, headers=auth(key))

    value = response.headers["x-gateway-upstream-ratelimit-remaining-requests"]
    assert OPENAI_KEY not in value and value.startswith("left ")


# -- usage in streams ----------------------------------------------------------------------------


@pytest.mark.parametrize("options", [None, {"include_usage": False}])
async def test_a_stream_carries_no_usage_the_client_did_not_ask_for(gateway, routes, key, upstream_a, options):
    body: dict[str, Any] = {**CHAT, "stream": True}
    if options is not None:
        body["stream_options"] = options

    response = await gateway.post(COMPLETIONS, json=body, headers=auth(key))

    chunks = data_events(response.text)
    assert chunks and all(chunk["choices"] for chunk in chunks)
    assert all("usage" not in chunk for chunk in chunks)
    sent = upstream_a.requests_to(COMPLETIONS)[0].json()
    assert sent["stream_options"]["include_usage"] is True  # the gateway asked, for its own count
    row = await logged(response.headers["x-request-id"])
    assert (row.tokens_in, row.tokens_out) == (2, 3)


async def test_a_stream_carries_usage_when_the_client_asked(gateway, routes, key):
    response = await gateway.post(
        COMPLETIONS, json={**CHAT, "stream": True, "stream_options": {"include_usage": True}}, headers=auth(key)
    )

    chunks = data_events(response.text)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3


def test_usage_an_upstream_sends_unasked_is_left_out_of_what_is_relayed():
    quiet = openai_chat.StreamTranslator(request={"stream": True})
    asked = openai_chat.StreamTranslator(request={"stream_options": {"include_usage": True}})
    usage = {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    content = {"id": "c", "choices": [{"index": 0, "delta": {"content": "hi"}}], "usage": usage}
    usage_only = {"id": "c", "choices": [], "usage": usage}

    assert quiet.feed(content) == [(None, {"id": "c", "choices": [{"index": 0, "delta": {"content": "hi"}}]})]
    assert quiet.feed(usage_only) == []
    assert asked.feed(content) == [(None, content)] and asked.feed(usage_only) == [(None, usage_only)]

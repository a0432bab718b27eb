"""`/v1/messages` and `/v1/messages/count_tokens` end to end, with the official `anthropic` SDK
as the client of the real ASGI application, against an OpenAI-format upstream and an
Anthropic one (fakes on loopback); and `GET /v1/models/{id}` with the official `openai` SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest
from asgiref.sync import sync_to_async

from analytics.models import RequestLog
from analytics.recorder import flush_all
from tests.fakes.anthropic import API_KEY as ANTHROPIC_KEY

from .conftest import auth, provider

pytestmark = pytest.mark.django_db(transaction=True)

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGBgAAAABQABpfZFQAAAAABJRU5ErkJggg=="
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
QUIET = {"consecutive_failures": 100, "min_calls": 1000}
ROUTES = ["openai-route", "claude-route"]  # an OpenAI-format target, an Anthropic one


@pytest.fixture
async def routes(configure, upstream_a, upstream_b, upstream_anthropic):
    await configure(
        {
            "providers": [
                provider("up-a", upstream_a.url + "/v1", breaker=QUIET, models=["gpt-4o-mini"]),
                provider("up-b", upstream_b.url + "/v1", breaker=QUIET),
                provider("claude", upstream_anthropic.url, kind="anthropic", key=ANTHROPIC_KEY, breaker=QUIET),
            ],
            "routes": [
                {
                    "name": "openai-route",
                    "capability": "chat",
                    "targets": [{"provider": "up-a", "model": "gpt-4o-mini"}],
                },
                {
                    "name": "claude-route",
                    "capability": "chat",
                    "targets": [{"provider": "claude", "model": "claude-sonnet-4-6"}],
                },
                {
                    "name": "chain",
                    "capability": "chat",
                    "targets": [{"provider": "up-a", "model": "gpt-4o-mini"}, {"provider": "up-b", "model": "gpt-4o"}],
                },
            ],
        }
    )


def asgi_client() -> httpx2.AsyncClient:
    """An HTTP client for the anthropic SDK (which is built on httpx2) into the application."""
    from project.asgi import application

    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=application), timeout=30)


@pytest.fixture
async def claude(gateway, routes, key) -> AsyncIterator[anthropic.AsyncAnthropic]:
    """The anthropic SDK pointed at the gateway, as a user would (ANTHROPIC_BASE_URL), with no
    retries of its own so that what a test sees is the gateway's answer."""
    async with asgi_client() as http:
        yield anthropic.AsyncAnthropic(base_url="http://testserver", api_key=key, http_client=http, max_retries=0)


def hello(route: str, **fields: Any) -> dict[str, Any]:
    return {"model": route, "max_tokens": 64, "messages": [{"role": "user", "content": "hello there"}], **fields}


# -- answers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
async def test_a_message_is_answered_through_either_kind_of_upstream(claude, route):
    raw = await claude.messages.with_raw_response.create(**hello(route, system="Be brief."))
    message = await raw.parse()

    assert message.type == "message" and message.role == "assistant" and message.id.startswith("msg_")
    assert message.model == route
    assert [block.text for block in message.content if block.type == "text"] == ["Echo: hello there"]
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens == 3
    assert raw.headers["x-gateway-route"] == route and raw.headers["x-gateway-attempts"] == "1"
    assert raw.headers["x-request-id"]


async def test_an_openai_upstream_gets_the_system_prompt_and_stop_sequences_in_its_own_format(claude, upstream_a):
    message = await claude.messages.create(
        **hello(
            "openai-route", system="Be brief.", stop_sequences=["there"], extra_body={"temperature": 0.3, "top_k": 5}
        )
    )

    sent = upstream_a.requests_to("/v1/chat/completions")[0].json()
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}]
    assert sent["stop"] == ["there"] and sent["max_tokens"] == 64 and sent["temperature"] == 0.3
    assert "top_k" not in sent  # an OpenAI-format target does not take it
    assert message.content[0].text == "Echo: hello"


async def test_an_anthropic_upstream_gets_the_request_as_it_was_written(claude, upstream_anthropic):
    message = await claude.messages.create(
        **hello(
            "claude-route",
            system="Be brief.",
            stop_sequences=["there"],
            metadata={"user_id": "u-1"},
            extra_body={"top_k": 5},
        )
    )

    sent = upstream_anthropic.requests_to("/v1/messages")[0].json()
    assert sent["system"] == "Be brief." and sent["stop_sequences"] == ["there"] and sent["top_k"] == 5
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hello there"}]}]
    assert sent["metadata"] == {"user_id": "u-1"} and sent["model"] == "claude-sonnet-4-6"
    assert message.content[0].text == "Echo: hello"


@pytest.mark.parametrize("route", ROUTES)
async def test_a_stream_assembles_in_the_sdk_into_the_final_message(claude, route):
    async with claude.messages.stream(**hello(route)) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()

    assert text == "Echo: hello there"
    assert final.content[0].text == "Echo: hello there" and final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 3 and final.usage.input_tokens == 2


@pytest.mark.parametrize("route", ROUTES)
async def test_the_raw_stream_is_anthropics_event_sequence(gateway, routes, key, route):
    response = await gateway.post("/v1/messages", json=hello(route, stream=True), headers={"x-api-key": key})

    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-gateway-route"] == route
    names = [line[7:] for line in response.text.splitlines() if line.startswith("event: ")]
    assert names == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * 3,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert "[DONE]" not in response.text


@pytest.mark.parametrize("route", ROUTES)
async def test_a_tool_round_trip_works_through_either_upstream(claude, route):
    first = await claude.messages.create(
        **hello(
            route,
            tools=[WEATHER],
            messages=[{"role": "user", "content": 'What is the weather? call get_weather {"city": "Paris"}'}],
        )
    )

    assert first.stop_reason == "tool_use"
    call = next(block for block in first.content if block.type == "tool_use")
    assert call.name == "get_weather" and call.input == {"city": "Paris"}

    second = await claude.messages.create(
        **hello(
            route,
            tools=[WEATHER],
            messages=[
                {"role": "user", "content": 'What is the weather? call get_weather {"city": "Paris"}'},
                {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny, 21C"}]},
            ],
        )
    )

    assert second.stop_reason == "end_turn"
    assert second.content[0].text == "Tool result: sunny, 21C"


@pytest.mark.parametrize("route", ROUTES)
async def test_a_streamed_tool_call_arrives_with_its_input_parsed(claude, route):
    request = hello(
        route,
        tools=[WEATHER],
        tool_choice={"type": "any"},
        messages=[{"role": "user", "content": 'weather {"city": "Oslo"}'}],
    )
    async with claude.messages.stream(**request) as stream:
        final = await stream.get_final_message()

    calls = [block for block in final.content if block.type == "tool_use"]
    assert final.stop_reason == "tool_use"
    assert [(c.name, c.input) for c in calls] == [("get_weather", {"city": "Oslo"})]


async def test_an_image_reaches_each_upstream_in_its_own_format(claude, upstream_a, upstream_anthropic):
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "text", "text": "what is this?"},
    ]
    for route in ROUTES:
        await claude.messages.create(**hello(route, messages=[{"role": "user", "content": content}]))

    to_openai = upstream_a.requests_to("/v1/chat/completions")[0].json()["messages"][0]["content"]
    to_anthropic = upstream_anthropic.requests_to("/v1/messages")[0].json()["messages"][0]["content"]
    assert to_openai[0] == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    assert to_anthropic == content


# -- errors, in Anthropic's shape -----------------------------------------------------------------


async def test_a_bad_key_is_the_sdks_authentication_error(gateway, routes):
    async with asgi_client() as http:
        client = anthropic.AsyncAnthropic(
            base_url="http://testserver", api_key="gw_wrong", http_client=http, max_retries=0
        )
        with pytest.raises(anthropic.AuthenticationError) as info:
            await client.messages.create(**hello("openai-route"))

    assert info.value.status_code == 401
    assert info.value.body == {
        "type": "error",
        "error": {"type": "authentication_error", "message": "Invalid API key.", "code": "invalid_api_key"},
    }


async def test_a_key_without_the_gateway_scope_is_a_permission_error(gateway, routes, make_key):
    read_only = await make_key(["read"])
    async with asgi_client() as http:
        client = anthropic.AsyncAnthropic(
            base_url="http://testserver", api_key=read_only, http_client=http, max_retries=0
        )
        with pytest.raises(anthropic.PermissionDeniedError) as info:
            await client.messages.create(**hello("openai-route"))

    assert info.value.body["error"]["type"] == "permission_error"


async def test_a_missing_key_is_an_anthropic_401(gateway, routes):
    response = await gateway.post("/v1/messages", json=hello("openai-route"))

    assert response.status_code == 401
    assert response.json()["type"] == "error" and response.json()["error"]["type"] == "authentication_error"


async def test_a_key_over_its_request_limit_is_the_sdks_rate_limit_error(gateway, routes, make_key):
    limited = await make_key(["gateway"], rate_limit_per_minute=1)
    async with asgi_client() as http:
        client = anthropic.AsyncAnthropic(
            base_url="http://testserver", api_key=limited, http_client=http, max_retries=0
        )
        await client.messages.create(**hello("openai-route"))
        with pytest.raises(anthropic.RateLimitError) as info:
            await client.messages.create(**hello("openai-route"))

    assert info.value.body["error"]["type"] == "rate_limit_error"
    assert int(info.value.response.headers["retry-after"]) >= 1


async def test_an_unknown_model_is_the_sdks_not_found_error(claude):
    with pytest.raises(anthropic.NotFoundError) as info:
        await claude.messages.create(**hello("no-such-route"))

    assert info.value.body["type"] == "error" and info.value.body["error"]["type"] == "not_found_error"


async def test_bad_input_is_a_bad_request_naming_the_field(claude, upstream_a):
    with pytest.raises(anthropic.BadRequestError) as info:
        await claude.messages.create(
            **hello(
                "openai-route",
                messages=[
                    {
                        "role": "user",
                        "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png"}}],
                    }
                ],
            )
        )

    assert info.value.body["error"]["type"] == "invalid_request_error"
    assert "messages[0].content[0].source" in info.value.body["error"]["message"]
    assert upstream_a.requests == []


async def test_every_target_failing_is_an_api_error_and_every_target_skipped_overloaded(claude, upstream_a, upstream_b):
    from providers.runtime import runtime

    upstream_a.fault(status=500)
    upstream_b.fault(status=500)
    with pytest.raises(anthropic.APIStatusError) as failed:
        await claude.messages.create(**hello("chain"))
    engine = runtime().engine
    await engine.force_open("up-a", 60)
    await engine.force_open("up-b", 60)
    with pytest.raises(anthropic.APIStatusError) as skipped:
        await claude.messages.create(**hello("chain"))

    assert failed.value.status_code == 502
    assert failed.value.body["type"] == "error" and failed.value.body["error"]["type"] == "api_error"
    assert "every target failed" in failed.value.body["error"]["message"]
    assert failed.value.response.headers["x-gateway-route"] == "chain"
    assert skipped.value.status_code == 503 and skipped.value.body["error"]["type"] == "overloaded_error"


async def test_a_providers_refusal_reaches_the_caller_in_anthropics_shape(claude, upstream_a):
    upstream_a.fault(status=400, error_code="invalid_value")

    with pytest.raises(anthropic.BadRequestError) as info:
        await claude.messages.create(**hello("openai-route"))

    said = upstream_a.requests_to("/v1/chat/completions")
    assert len(said) == 1  # a caller's error: not retried, not failed over
    assert info.value.body["type"] == "error" and info.value.body["error"]["type"] == "invalid_request_error"
    assert info.value.body["error"]["message"]


async def test_an_anthropic_upstreams_refusal_reaches_an_openai_client_in_openais_shape(
    gateway, routes, key, upstream_anthropic
):
    upstream_anthropic.fault(status=400)  # Anthropic's own {"type": "error", "error": {...}}

    response = await gateway.post(
        "/v1/chat/completions",
        headers=auth(key),
        json={"model": "claude-route", "messages": [{"role": "user", "content": "hi"}]},
    )

    assert response.status_code == 400
    assert response.json() == {
        "error": {"type": "invalid_request_error", "message": "Invalid request.", "code": "upstream_error"}
    }


async def test_a_stream_that_breaks_mid_way_ends_with_an_error_event_the_sdk_raises(claude, upstream_a):
    upstream_a.fault(error_code="server_error")  # an error chunk after the first piece of text

    with pytest.raises(anthropic.APIStatusError) as info:
        async with claude.messages.stream(**hello("openai-route")) as stream:
            async for _ in stream:
                pass

    assert "stream broke" in str(info.value)


@pytest.mark.parametrize(
    ("method", "path", "status"), [("GET", "/v1/messages", 405), ("POST", "/v1/messages/nothing", 404)]
)
async def test_answers_made_outside_the_view_are_anthropic_shaped_too(gateway, key, method, path, status):
    response = await gateway.request(method, path, headers={"x-api-key": key})

    assert response.status_code == status
    assert response.json()["type"] == "error" and set(response.json()["error"]) == {"type", "message", "code"}


# -- the same routing as chat completions --------------------------------------------------------


async def test_a_failing_first_target_falls_over_and_the_request_is_recorded(claude, upstream_a, upstream_b):
    upstream_a.fault(status=500)

    raw = await claude.messages.with_raw_response.create(**hello("chain"))
    message = await raw.parse()
    await flush_all()

    assert message.content[0].text == "Echo: hello there"
    assert raw.headers["x-gateway-provider"] == "up-b" and raw.headers["x-gateway-model"] == "gpt-4o"
    assert raw.headers["x-gateway-failovers"] == "1" and raw.headers["x-gateway-attempts"] == "3"
    row = await sync_to_async(RequestLog.objects.get)(request_id=raw.headers["x-request-id"])
    assert (row.route, row.provider, row.outcome, row.status, row.failovers) == ("chain", "up-b", "success", 200, 1)
    assert row.tokens_in == 2 and row.tokens_out == 3


async def test_a_streamed_answer_is_recorded_with_its_usage(claude):
    async with claude.messages.stream(**hello("claude-route")) as stream:
        await stream.get_final_message()
    await flush_all()

    row = await sync_to_async(RequestLog.objects.get)(route="claude-route")
    assert row.stream and row.outcome == "success" and (row.tokens_in, row.tokens_out) == (2, 3)


async def test_the_key_may_come_as_a_bearer_token_or_x_api_key_on_every_gateway_api(gateway, routes, key):
    bearer = await gateway.post("/v1/messages", json=hello("openai-route"), headers=auth(key))
    chat = await gateway.post(
        "/v1/chat/completions",
        headers={"x-api-key": key},
        json={"model": "openai-route", "messages": [{"role": "user", "content": "hi"}]},
    )

    assert bearer.status_code == 200 and chat.status_code == 200


# -- count_tokens -------------------------------------------------------------------------------


async def test_count_tokens_is_an_estimate_and_says_so(claude, upstream_a):
    raw = await claude.messages.with_raw_response.count_tokens(
        model="openai-route", messages=[{"role": "user", "content": "x" * 400}], tools=[WEATHER]
    )
    count = await raw.parse()

    assert count.input_tokens > 100
    assert raw.headers["x-gateway-estimated"] == "true" and raw.headers["x-gateway-route"] == "openai-route"
    assert upstream_a.requests == []


async def test_count_tokens_for_an_unknown_model_is_not_found(claude):
    with pytest.raises(anthropic.NotFoundError):
        await claude.messages.count_tokens(model="nope", messages=[{"role": "user", "content": "hi"}])


# -- GET /v1/models/{id} --------------------------------------------------------------------------


async def test_the_openai_sdk_retrieves_a_route_or_a_provider_model_by_id(gateway, routes, key):
    from project.asgi import application

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application)) as http:
        client = openai.AsyncOpenAI(base_url="http://testserver/v1", api_key=key, http_client=http, max_retries=0)
        route = await client.models.retrieve("chain")
        model = await client.models.retrieve("up-a/gpt-4o-mini")
        listed = [m.id async for m in client.models.list()]
        with pytest.raises(openai.NotFoundError) as info:
            await client.models.retrieve("up-a/no-such-model")

    assert (route.id, route.owned_by) == ("chain", "gateway")
    assert (model.id, model.owned_by) == ("up-a/gpt-4o-mini", "up-a")
    assert {"chain", "up-a/gpt-4o-mini"} <= set(listed)
    assert info.value.code == "model_not_found"


def test_the_new_endpoints_are_in_the_openapi_document():
    from django.urls import get_resolver

    from providers.openapi import build_schema

    get_resolver().url_patterns  # noqa: B018  (imports every view)
    paths = build_schema()["paths"]

    assert paths["/v1/messages"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AnthropicMessageRequest"
    }
    assert paths["/v1/messages"]["post"]["responses"]["401"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AnthropicErrorBody"
    }
    assert paths["/v1/messages/count_tokens"]["post"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AnthropicTokenCount"
    }
    assert paths["/v1/models/{model}"]["get"]["parameters"][0]["name"] == "model"

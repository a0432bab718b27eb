"""`POST /v1/responses` end to end, with the official `openai` SDK as the client of the real ASGI
application, against an OpenAI-format upstream and an Anthropic one (fakes on loopback)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import openai
import pytest
from asgiref.sync import sync_to_async

from analytics.models import RequestLog
from analytics.recorder import flush_all
from tests.fakes.anthropic import API_KEY as ANTHROPIC_KEY

from .conftest import auth, provider

pytestmark = pytest.mark.django_db(transaction=True)

QUIET = {"consecutive_failures": 100, "min_calls": 1000}
ROUTES = ["openai-route", "claude-route"]  # an OpenAI-format target, an Anthropic one
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
ASK = 'What is the weather? call get_weather {"city": "Paris"}'


@pytest.fixture
async def routes(configure, upstream_a, upstream_anthropic):
    await configure(
        {
            "providers": [
                provider("up-a", upstream_a.url + "/v1", breaker=QUIET, models=["gpt-4o-mini"]),
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
            ],
        }
    )


def asgi_http() -> httpx.AsyncClient:
    from project.asgi import application

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=application), timeout=30)


@pytest.fixture
async def client(gateway, routes, key) -> AsyncIterator[openai.AsyncOpenAI]:
    """The openai SDK pointed at the gateway, as a user would, with no retries of its own."""
    async with asgi_http() as http:
        yield openai.AsyncOpenAI(base_url="http://testserver/v1", api_key=key, http_client=http, max_retries=0)


# -- answers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
async def test_a_response_is_created_through_either_kind_of_upstream(client, route):
    raw = await client.responses.with_raw_response.create(
        model=route, instructions="Be brief.", input="hello there", max_output_tokens=64
    )
    response = raw.parse()

    assert response.object == "response" and response.status == "completed" and response.id.startswith("resp_")
    assert response.model == route
    assert response.output_text == "Echo: hello there"
    assert response.instructions == "Be brief."
    assert response.usage is not None and response.usage.output_tokens == 3 and response.usage.input_tokens > 0
    assert raw.headers["x-gateway-route"] == route and raw.headers["x-gateway-attempts"] == "1"
    assert raw.headers["x-request-id"]


async def test_an_openai_upstream_gets_a_chat_request_with_the_instructions_first(client, upstream_a):
    await client.responses.create(
        model="openai-route", instructions="Be brief.", input="hello there", max_output_tokens=64, temperature=0.5
    )

    sent = upstream_a.requests_to("/v1/chat/completions")[0].json()
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}]
    assert sent["max_tokens"] == 64 and "max_completion_tokens" not in sent  # the name every server reads
    assert sent["temperature"] == 0.5 and sent["model"] == "gpt-4o-mini"


async def test_an_anthropic_upstream_gets_the_instructions_as_its_system_prompt(client, upstream_anthropic):
    await client.responses.create(
        model="claude-route", instructions="Be brief.", input="hello there", max_output_tokens=64
    )

    sent = upstream_anthropic.requests_to("/v1/messages")[0].json()
    assert sent["system"] == "Be brief." and sent["max_tokens"] == 64
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hello there"}]}]


@pytest.mark.parametrize("route", ROUTES)
async def test_a_stream_is_the_typed_event_sequence_the_sdk_assembles(client, route):
    events = [event async for event in await client.responses.create(model=route, input="hello there", stream=True)]

    types = [event.type for event in events]
    assert types[:2] == ["response.created", "response.in_progress"] and types[-1] == "response.completed"
    assert [event.delta for event in events if event.type == "response.output_text.delta"] == [
        "Echo:",
        " hello",
        " there",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    final = events[-1].response
    assert final.output_text == "Echo: hello there" and final.usage is not None
    assert final.usage.output_tokens == 3


@pytest.mark.parametrize("route", ROUTES)
async def test_the_sdks_stream_helper_gives_the_final_response(client, route):
    async with client.responses.stream(model=route, input="hello there") as stream:
        deltas = [event.delta async for event in stream if event.type == "response.output_text.delta"]
        final = await stream.get_final_response()

    assert "".join(deltas) == "Echo: hello there"
    assert final.output_text == "Echo: hello there" and final.status == "completed"


async def test_the_raw_stream_names_each_event_and_carries_no_chat_chunks(gateway, routes, key):
    response = await gateway.post(
        "/v1/responses", headers=auth(key), json={"model": "openai-route", "input": "hello there", "stream": True}
    )

    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    blocks = [block for block in response.text.split("\n\n") if block.strip()]
    for block in blocks:
        name, data = block.split("\n")
        assert name.startswith("event: ") and data.startswith("data: ")
        assert json.loads(data[6:])["type"] == name[7:]
    assert "[DONE]" not in response.text and "chat.completion.chunk" not in response.text


@pytest.mark.parametrize("route", ROUTES)
async def test_a_function_tool_round_trip_works_through_either_upstream(client, route):
    first = await client.responses.create(model=route, input=ASK, tools=[WEATHER])

    calls = [item for item in first.output if item.type == "function_call"]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "Paris"})]

    second = await client.responses.create(
        model=route,
        tools=[WEATHER],
        input=[
            {"role": "user", "content": ASK},
            *[item.model_dump(exclude_none=True) for item in first.output],
            {"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny, 21C"},
        ],
    )

    assert second.output_text == "Tool result: sunny, 21C"


@pytest.mark.parametrize("route", ROUTES)
async def test_a_streamed_function_call_arrives_whole(client, route):
    async with client.responses.stream(model=route, input=ASK, tools=[WEATHER], tool_choice="required") as stream:
        final = await stream.get_final_response()

    calls = [item for item in final.output if item.type == "function_call"]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "Paris"})]


async def test_a_response_is_recorded_with_its_usage(client):
    raw = await client.responses.with_raw_response.create(model="claude-route", input="hello there")
    await flush_all()

    row = await sync_to_async(RequestLog.objects.get)(request_id=raw.headers["x-request-id"])
    assert (row.route, row.provider, row.outcome, row.status) == ("claude-route", "claude", "success", 200)
    assert (row.tokens_in, row.tokens_out) == (2, 3)


# -- errors, in OpenAI's shape -------------------------------------------------------------------


async def test_a_bad_key_is_the_sdks_authentication_error(gateway, routes):
    async with asgi_http() as http:
        client = openai.AsyncOpenAI(
            base_url="http://testserver/v1", api_key="gw_wrong", http_client=http, max_retries=0
        )
        with pytest.raises(openai.AuthenticationError) as info:
            await client.responses.create(model="openai-route", input="hi")

    assert info.value.status_code == 401
    assert info.value.code == "invalid_api_key" and info.value.body["type"] == "authentication_error"


async def test_an_unknown_route_is_the_sdks_not_found_error(client):
    with pytest.raises(openai.NotFoundError) as info:
        await client.responses.create(model="no-such-route", input="hi")

    assert info.value.code == "model_not_found"


async def test_a_previous_response_id_is_a_bad_request_naming_the_field(client, upstream_a):
    with pytest.raises(openai.BadRequestError) as info:
        await client.responses.create(model="openai-route", input="and then?", previous_response_id="resp_123")

    assert info.value.status_code == 400 and info.value.param == "previous_response_id"
    assert "does not store responses" in info.value.message
    assert upstream_a.requests == []


async def test_a_built_in_tool_is_refused_naming_the_tool(client, upstream_a):
    with pytest.raises(openai.BadRequestError) as info:
        await client.responses.create(model="openai-route", input="search", tools=[{"type": "web_search"}])

    assert info.value.param == "tools[0].type"
    assert upstream_a.requests == []


async def test_every_target_failing_is_a_502_with_the_attempts(client, upstream_a):
    upstream_a.fault(status=500)

    with pytest.raises(openai.InternalServerError) as info:
        await client.responses.create(model="openai-route", input="hi")

    assert info.value.status_code == 502
    assert info.value.body["type"] == "all_targets_failed" and info.value.body["attempts"]


async def test_a_stream_that_breaks_ends_with_response_failed(client, upstream_a):
    upstream_a.fault(error_code="server_error")  # an error chunk after the first piece of text

    events = [
        event async for event in await client.responses.create(model="openai-route", input="hello there", stream=True)
    ]

    assert events[-1].type == "response.failed"
    assert "stream broke" in events[-1].response.error.message


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/v1/responses", 405), ("POST", "/v1/responses/resp_1/cancel", 404), ("GET", "/v1/responses/resp_1", 404)],
)
async def test_answers_made_outside_the_view_are_openai_shaped(gateway, key, method, path, status):
    response = await gateway.request(method, path, headers=auth(key))

    assert response.status_code == status
    assert set(response.json()) == {"error"} and response.json()["error"]["param"] is None


async def test_a_missing_key_and_a_body_too_large_are_openai_shaped(gateway, routes, settings):
    missing = await gateway.post("/v1/responses", json={"model": "openai-route", "input": "hi"})
    settings.GATEWAY_MAX_BODY_BYTES = 100
    large = await gateway.post(
        "/v1/responses", content=b'{"input": "' + b"x" * 200 + b'"}', headers={"content-type": "application/json"}
    )

    assert missing.status_code == 401 and missing.json()["error"]["type"] == "authentication_error"
    assert large.status_code == 413 and large.json()["error"]["code"] == "request_too_large"
    assert "param" in missing.json()["error"] and "param" in large.json()["error"]


def test_the_endpoint_is_in_the_openapi_document():
    from django.urls import get_resolver

    from providers.openapi import build_schema

    get_resolver().url_patterns  # noqa: B018  (imports every view)
    operation = build_schema()["paths"]["/v1/responses"]["post"]

    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ResponsesRequest"
    }
    ok = operation["responses"]["200"]["content"]
    assert ok["application/json"]["schema"] == {"$ref": "#/components/schemas/ResponsesObject"}
    assert "text/event-stream" in ok
    assert operation["responses"]["401"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }

"""AnthropicAdapter: structured output (`response_format`) through a forced tool, reasoning
effort as thinking, and the tool_choice forms Anthropic's schema allows."""

from __future__ import annotations

import json

import pytest

from providers.adapters.anthropic import AnthropicAdapter, to_anthropic
from providers.adapters.base import ProviderConfig, Unsupported
from tests.fakes.anthropic import API_KEY, FakeAnthropic

MODEL = "claude-sonnet-4-6"
MESSAGES = "/v1/messages"
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
    "required": ["city", "days"],
}
AS_SCHEMA = {"type": "json_schema", "json_schema": {"name": "forecast", "schema": SCHEMA, "strict": True}}
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}


def ask(text: str, **fields: object) -> dict:
    return {"messages": [{"role": "user", "content": text}], **fields}


@pytest.fixture(scope="module")
def fake():
    with FakeAnthropic() as server:
        yield server


@pytest.fixture
def adapter(fake, client):
    return AnthropicAdapter(ProviderConfig(name="claude", kind="anthropic", base_url=fake.url, api_key=API_KEY), client)


# -- structured output ------------------------------------------------------------------------


def test_a_json_schema_becomes_a_forced_tool_whose_input_schema_is_the_schema():
    body = to_anthropic(ask("Paris for 3 days", response_format=AS_SCHEMA), model=MODEL)

    assert body["tools"] == [
        {"name": "forecast", "description": body["tools"][0]["description"], "input_schema": SCHEMA}
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "forecast"}
    assert "response_format" not in body


def test_json_object_is_the_same_tool_with_any_object():
    body = to_anthropic(ask("hi", response_format={"type": "json_object"}), model=MODEL)

    assert body["tools"][0]["name"] == "json_response"
    assert body["tools"][0]["input_schema"] == {"type": "object", "additionalProperties": True}
    assert body["tool_choice"] == {"type": "tool", "name": "json_response"}


def test_beside_the_callers_tools_the_model_must_call_one_of_them_or_answer_in_the_schema():
    both = to_anthropic(
        ask("hi", tools=[WEATHER_TOOL], response_format=AS_SCHEMA, parallel_tool_calls=False), model=MODEL
    )
    named = to_anthropic(
        ask(
            "hi",
            tools=[WEATHER_TOOL],
            response_format=AS_SCHEMA,
            tool_choice={"type": "function", "function": {"name": "get_weather"}},
        ),
        model=MODEL,
    )

    assert [t["name"] for t in both["tools"]] == ["get_weather", "forecast"]
    assert both["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert named["tool_choice"] == {"type": "tool", "name": "get_weather"}


def test_a_schema_named_like_a_callers_tool_gets_a_name_of_its_own():
    clash = {"type": "json_schema", "json_schema": {"name": "get_weather", "schema": SCHEMA}}

    body = to_anthropic(ask("hi", tools=[WEATHER_TOOL], response_format=clash), model=MODEL)

    assert [t["name"] for t in body["tools"]] == ["get_weather", "get_weather_1"]


def test_a_schema_whose_root_is_not_an_object_is_unsupported():
    array = {"type": "json_schema", "json_schema": {"name": "list", "schema": {"type": "array"}}}

    with pytest.raises(Unsupported) as info:
        to_anthropic(ask("hi", response_format=array), model=MODEL)

    assert info.value.status == 400 and "root is not an object" in info.value.message


async def test_the_tool_input_comes_back_as_the_json_content(adapter, fake):
    result = await adapter.chat(
        ask('Paris {"city": "Paris", "days": 3}', response_format=AS_SCHEMA), model=MODEL, timeout=5
    )

    choice = result.data["choices"][0]
    assert json.loads(choice["message"]["content"]) == {"city": "Paris", "days": 3}
    assert "tool_calls" not in choice["message"]
    assert choice["finish_reason"] == "stop"
    sent = fake.requests_to(MESSAGES)[0].json()
    assert sent["tool_choice"] == {"type": "tool", "name": "forecast"}


async def test_json_object_answers_are_json_with_no_preamble(adapter):
    result = await adapter.chat(ask("anything", response_format={"type": "json_object"}), model=MODEL, timeout=5)

    assert json.loads(result.data["choices"][0]["message"]["content"]) == {}


async def test_a_streamed_structured_answer_is_the_json_in_content_deltas(adapter):
    stream = await adapter.chat_stream(
        ask('Rome {"city": "Rome", "days": 2}', response_format=AS_SCHEMA), model=MODEL, timeout=5
    )
    chunks = [c async for c in stream]

    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert not any("tool_calls" in d for d in deltas)
    assert json.loads("".join(d.get("content") or "" for d in deltas)) == {"city": "Rome", "days": 2}
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_a_call_to_a_callers_tool_beside_a_schema_is_still_a_tool_call(adapter):
    result = await adapter.chat(
        ask('call get_weather {"city": "Oslo"}', tools=[WEATHER_TOOL], response_format=AS_SCHEMA),
        model=MODEL,
        timeout=5,
    )

    choice = result.data["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "get_weather"


# -- tool_choice ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [None, {"type": "text"}])
def test_tool_choice_none_with_parallel_calls_off_builds_no_refused_field(fmt):
    request = ask("hi", tools=[WEATHER_TOOL], tool_choice="none", parallel_tool_calls=False)
    if fmt is not None:
        request["response_format"] = fmt

    assert to_anthropic(request, model=MODEL)["tool_choice"] == {"type": "none"}


# -- reasoning ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("effort", "max_tokens", "thinking"),
    [
        ("low", 8000, {"type": "enabled", "budget_tokens": 1024}),
        ("medium", 8000, {"type": "enabled", "budget_tokens": 4096}),
        ("high", 8000, {"type": "enabled", "budget_tokens": 7999}),  # kept below max_tokens
        ("high", 1024, None),  # no room for Anthropic's smallest budget
        ("minimal", 8000, None),
    ],
)
def test_reasoning_effort_becomes_a_thinking_budget(effort, max_tokens, thinking):
    body = to_anthropic(
        ask("hi", reasoning_effort=effort, max_tokens=max_tokens, temperature=0.2, top_p=0.5), model=MODEL
    )

    assert body.get("thinking") == thinking
    if thinking is not None:  # Anthropic refuses these beside thinking
        assert "temperature" not in body and "top_p" not in body
    else:
        assert body["temperature"] == 0.2


def test_thinking_is_left_out_with_a_forced_tool_and_in_a_tool_loop():
    forced = to_anthropic(ask("hi", reasoning_effort="high", max_tokens=30000, response_format=AS_SCHEMA), model=MODEL)
    loop = to_anthropic(
        {
            "max_tokens": 30000,
            "thinking": {"type": "enabled", "budget_tokens": 2000},
            "tools": [WEATHER_TOOL],
            "messages": [
                {"role": "user", "content": "weather?"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "t1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
                    ],
                },
                {"role": "tool", "tool_call_id": "t1", "content": "sunny"},
            ],
        },
        model=MODEL,
    )

    assert "thinking" not in forced and "thinking" not in loop


def test_an_explicit_thinking_object_wins_over_reasoning_effort():
    body = to_anthropic(
        ask("hi", max_tokens=9000, reasoning_effort="low", thinking={"type": "enabled", "budget_tokens": 5000}),
        model=MODEL,
    )

    assert body["thinking"] == {"type": "enabled", "budget_tokens": 5000}

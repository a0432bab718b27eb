"""The Responses API dialect (providers/gateway/dialects/responses.py), pure: Responses
requests in, chat bodies out; chat completions and chunks in, Response objects and typed
stream events out. The official `openai` SDK judges the shapes: its pydantic models parse every
object made here, and its own client drives the dialect through an httpx.MockTransport."""

from __future__ import annotations

import json
from itertools import pairwise
from typing import Any

import httpx
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from providers.gateway.dialects.responses import (
    DialectError,
    StreamTranslator,
    error_body,
    from_chat,
    to_chat,
)

EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": False,
}


def parsed_response(body: dict[str, Any]) -> Response:
    """The Response as the SDK reads it; nothing invented beyond OpenAI's own `store`."""
    response = Response.model_validate(body)
    assert set(response.model_extra or {}) <= {"store"}
    for item in response.output:
        assert not item.model_extra, item
    return response


def parsed_events(events: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    parsed = []
    for type_, payload in events:
        event = EVENTS.validate_python(payload)
        assert event.type == type_ == payload["type"]
        assert not event.model_extra, (type_, event.model_extra)
        if hasattr(event, "response"):
            parsed_response(payload["response"])
        parsed.append(event)
    return parsed


def completion(
    message: dict[str, Any], finish_reason: str = "stop", usage: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish_reason}],
        "usage": usage or {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
    }


def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def usage_chunk(prompt: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "m",
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt + completion_tokens,
        },
    }


def run_stream(
    chunks: list[dict[str, Any]], request: dict[str, Any] | None = None, usage: dict[str, Any] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    translator = StreamTranslator(model="m", request=request or {"input": "hi"})
    events = translator.start()
    for item in chunks:
        events += translator.feed(item)
    return events + translator.close(usage)


def call_chunks(index: int, call_id: str, name: str, pieces: list[str]) -> list[dict[str, Any]]:
    first = {"index": index, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
    return [chunk({"tool_calls": [first]})] + [
        chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}) for piece in pieces
    ]


# -- requests -----------------------------------------------------------------------------


def test_a_string_input_becomes_one_user_message() -> None:
    assert to_chat({"model": "gpt-x", "input": "Hello"}) == {
        "model": "gpt-x",
        "messages": [{"role": "user", "content": "Hello"}],
    }


def test_instructions_lead_the_conversation_as_a_system_message() -> None:
    chat = to_chat({"model": "m", "instructions": "Be brief.", "input": "Hello"})
    assert chat["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]


def test_message_items_keep_their_roles_and_their_parts_become_chat_parts() -> None:
    chat = to_chat(
        {
            "model": "m",
            "input": [
                {
                    "role": "developer",
                    "content": [
                        {"type": "input_text", "text": "Answer "},
                        {"type": "input_text", "text": "in French."},
                    ],
                },
                {
                    "type": "message",
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "What is this?"},
                        {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "low"},
                        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="},
                        {
                            "type": "input_file",
                            "filename": "a.pdf",
                            "file_data": "data:application/pdf;base64,JVBERi0=",
                        },
                    ],
                },
                {
                    "type": "message",
                    "role": "assistant",
                    "id": "msg_1",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": "Un chat.", "annotations": []}],
                },
                {"role": "user", "content": "Merci"},
            ],
        }
    )
    assert chat["messages"] == [
        {"role": "developer", "content": "Answer in French."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}},
            ],
        },
        {"role": "assistant", "content": "Un chat."},
        {"role": "user", "content": "Merci"},
    ]


def test_function_calls_and_their_outputs_become_assistant_tool_calls_and_tool_messages() -> None:
    chat = to_chat(
        {
            "model": "m",
            "tools": [WEATHER_TOOL],
            "input": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
                {
                    "type": "function_call",
                    "id": "fc_1",
                    "call_id": "call_a",
                    "name": "get_weather",
                    "arguments": '{"city":"Paris"}',
                    "status": "completed",
                },
                {"type": "function_call", "call_id": "call_b", "name": "get_weather", "arguments": '{"city":"Rome"}'},
                {"type": "function_call_output", "call_id": "call_a", "output": "18C"},
                {
                    "type": "function_call_output",
                    "call_id": "call_b",
                    "output": [{"type": "input_text", "text": "21"}, {"type": "input_text", "text": "C"}],
                },
            ],
        }
    )
    assert chat["messages"] == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_b", "content": "21C"},
    ]


def test_a_function_call_without_a_preceding_message_opens_an_assistant_turn() -> None:
    chat = to_chat(
        {
            "model": "m",
            "input": [
                {"role": "user", "content": "Weather?"},
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
            ],
        }
    )
    assert chat["messages"][1:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]


def test_tools_and_settings_translate_and_responses_only_fields_stay_behind() -> None:
    chat = to_chat(
        {
            "model": "m",
            "input": "hi",
            "stream": True,
            "temperature": 0.2,
            "top_p": 0.9,
            "max_output_tokens": 256,
            "parallel_tool_calls": False,
            "user": "u-1",
            "tools": [WEATHER_TOOL],
            "tool_choice": {"type": "function", "name": "get_weather"},
            "reasoning": {"effort": "low", "summary": "auto"},
            "metadata": {"ticket": "42"},
            "store": True,
            "include": ["message.output_text.logprobs"],
            "truncation": "auto",
            "seed": 7,  # not a Responses field: passed on like any extra
        }
    )
    assert chat == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "temperature": 0.2,
        "top_p": 0.9,
        "max_completion_tokens": 256,
        "parallel_tool_calls": False,
        "user": "u-1",
        "seed": 7,
        "reasoning_effort": "low",
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather in a city",
                    "parameters": WEATHER_TOOL["parameters"],
                    "strict": False,
                },
            }
        ],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            {
                "format": {
                    "type": "json_schema",
                    "name": "city",
                    "strict": True,
                    "schema": {"type": "object", "properties": {"name": {"type": "string"}}},
                }
            },
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {
                        "name": "city",
                        "strict": True,
                        "schema": {"type": "object", "properties": {"name": {"type": "string"}}},
                    },
                }
            },
        ),
        ({"format": {"type": "json_object"}}, {"response_format": {"type": "json_object"}}),
        ({"format": {"type": "text"}, "verbosity": "low"}, {"verbosity": "low"}),
    ],
)
def test_text_format_becomes_response_format(text: dict[str, Any], expected: dict[str, Any]) -> None:
    chat = to_chat({"model": "m", "input": "hi", "text": text})
    assert {key: chat[key] for key in chat if key not in ("model", "messages")} == expected


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"model": "m"}, "input", "required"),
        ({"input": 5}, "input", "string or a list"),
        ({"input": []}, "input", "empty"),
        ({"input": ["hi"]}, "input[0]", "object"),
        ({"input": [{"role": "robot", "content": "x"}]}, "input[0].role", "user, assistant"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "detail": "auto"}]}]},
            "input[0].content[0].image_url",
            "required",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}]},
            "input[0].content[0].file_id",
            "file store",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_text", "text": 3}]}]},
            "input[0].content[0].text",
            "string",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "input[0].content[0].type",
            "input_audio",
        ),
        (
            {"input": [{"role": "system", "content": [{"type": "input_image", "image_url": "https://x/y.png"}]}]},
            "input[0].content[0]",
            "text only",
        ),
        ({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}, "input[0].call_id", "string"),
        ({"input": [{"type": "function_call_output", "call_id": "c", "output": 1}]}, "input[0].output", "string"),
        ({"input": [{"type": "computer_call_output", "call_id": "c"}]}, "input[0].type", "computer_call_output"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]", "stored"),
        ({"input": "hi", "tools": [{"type": "web_search"}]}, "tools[0].type", "web_search"),
        ({"input": "hi", "tools": [WEATHER_TOOL, {"type": "function"}]}, "tools[1].name", "string"),
        ({"input": "hi", "tool_choice": {"type": "file_search"}}, "tool_choice.type", "file_search"),
        ({"input": "hi", "text": {"format": {"type": "json_schema", "schema": {}}}}, "text.format.name", "string"),
        ({"input": "hi", "text": {"format": {"type": "xml"}}}, "text.format.type", "json_schema"),
        ({"input": "hi", "max_output_tokens": 0}, "max_output_tokens", "at least 1"),
        ({"input": "hi", "temperature": "hot"}, "temperature", "number"),
        ({"input": "hi", "stream": "yes"}, "stream", "true or false"),
        ({"input": "hi", "reasoning": {"effort": "extreme"}}, "reasoning.effort", "one of"),
        ({"input": "hi", "metadata": {"ticket": 42}}, "metadata.ticket", "string"),
        ({"input": "hi", "background": True}, "background", "store"),
        ({"input": "hi", "conversation": "conv_1"}, "conversation", "store"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(body: dict[str, Any], param: str, words: str) -> None:
    with pytest.raises(DialectError) as caught:
        to_chat(body)
    error = caught.value
    assert (error.status, error.type, error.param) == (400, "invalid_request_error", param)
    assert f"`{param}" in str(error)
    assert words in str(error)
    assert error.body()["error"]["param"] == param


def test_previous_response_id_is_refused_because_no_response_is_kept() -> None:
    with pytest.raises(DialectError) as caught:
        to_chat({"model": "m", "input": "and then?", "previous_response_id": "resp_123", "store": True})
    error = caught.value
    assert (error.status, error.param, error.code) == (400, "previous_response_id", "unsupported_parameter")
    assert "does not store responses" in str(error)
    assert "`input`" in str(error)


def test_error_body_has_openais_shape() -> None:
    assert error_body(400, "invalid_request_error", "`input` is required.", "input") == {
        "error": {"message": "`input` is required.", "type": "invalid_request_error", "param": "input", "code": None}
    }
    assert error_body(502, "upstream_error", "No provider answered.") == {
        "error": {"message": "No provider answered.", "type": "upstream_error", "param": None, "code": None}
    }


# -- answers ------------------------------------------------------------------------------


def test_a_text_completion_becomes_a_completed_response_the_sdk_reads() -> None:
    request = {
        "model": "m",
        "instructions": "Be brief.",
        "input": "hi",
        "tools": [WEATHER_TOOL],
        "temperature": 0.3,
        "metadata": {"ticket": "42"},
        "text": {"format": {"type": "json_object"}},
    }
    body = from_chat(completion({"content": "Hello there"}), model="gpt-x", request=request)
    response = parsed_response(body)
    assert body["id"].startswith("resp_")
    assert (response.object, response.status, response.model) == ("response", "completed", "gpt-x")
    assert response.created_at == 1_700_000_000
    assert response.output_text == "Hello there"
    [message] = response.output
    assert message.type == "message" and message.id.startswith("msg_")
    assert (message.role, message.status) == ("assistant", "completed")
    assert body["output"][0]["content"] == [{"type": "output_text", "text": "Hello there", "annotations": []}]
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (12, 5, 17)
    assert (response.instructions, response.temperature, response.metadata) == ("Be brief.", 0.3, {"ticket": "42"})
    assert [tool.type for tool in response.tools] == ["function"]
    assert response.text is not None and response.text.format is not None
    assert response.text.format.type == "json_object"
    assert body["store"] is False


def test_tool_calls_become_function_call_items() -> None:
    body = from_chat(
        completion(
            {
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    },
                    {
                        "id": "call_b",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                    },
                ],
            },
            finish_reason="tool_calls",
        ),
        model="m",
        response_id="resp_given",
        created=1.0,
        request={"input": "hi", "tools": [WEATHER_TOOL], "tool_choice": "required"},
    )
    response = parsed_response(body)
    assert (response.id, response.status, response.tool_choice) == ("resp_given", "completed", "required")
    assert [(item.type, item.call_id, item.name, item.arguments, item.status) for item in response.output] == [
        ("function_call", "call_a", "get_weather", '{"city":"Paris"}', "completed"),
        ("function_call", "call_b", "get_weather", '{"city":"Rome"}', "completed"),
    ]
    assert all(item["id"].startswith("fc_") for item in body["output"])
    assert response.output_text == ""


def test_a_completion_cut_at_the_token_limit_is_incomplete() -> None:
    body = from_chat(
        completion({"content": "Once upon a"}, finish_reason="length"),
        model="m",
        request={"input": "story", "max_output_tokens": 3},
    )
    response = parsed_response(body)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output[0].status == "incomplete"
    assert (response.max_output_tokens, response.completed_at) == (3, None)


def test_usage_details_carry_cached_and_reasoning_tokens() -> None:
    usage = {
        "prompt_tokens": 100,
        "completion_tokens": 40,
        "total_tokens": 140,
        "prompt_tokens_details": {"cached_tokens": 64},
        "completion_tokens_details": {"reasoning_tokens": 30},
    }
    response = parsed_response(from_chat(completion({"content": "ok"}, usage=usage), model="m"))
    assert response.usage is not None
    assert response.usage.input_tokens_details.cached_tokens == 64
    assert response.usage.output_tokens_details.reasoning_tokens == 30
    assert response.usage.total_tokens == 140


def test_reasoning_content_and_a_refusal_have_items_and_parts_of_their_own() -> None:
    body = from_chat(
        completion(
            {"content": None, "refusal": "I can't help with that.", "reasoning_content": "The user asks for..."}
        ),
        model="m",
    )
    response = parsed_response(body)
    assert [item.type for item in response.output] == ["reasoning", "message"]
    assert body["output"][0]["content"] == [{"type": "reasoning_text", "text": "The user asks for..."}]
    assert body["output"][1]["content"] == [{"type": "refusal", "refusal": "I can't help with that."}]


def test_a_completion_without_usage_or_text_is_an_empty_message() -> None:
    body = from_chat(
        {"choices": [{"index": 0, "message": {"role": "assistant", "content": None}, "finish_reason": "stop"}]},
        model="m",
    )
    response = parsed_response(body)
    assert (response.output_text, response.usage) == ("", None)
    assert [item.type for item in response.output] == ["message"]


# -- streams ------------------------------------------------------------------------------


def test_a_streamed_answer_with_text_and_a_tool_call_becomes_typed_events() -> None:
    chunks = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Let me "}),
        chunk({"content": "check."}),
        *call_chunks(0, "call_a", "get_weather", ['{"ci', 'ty":', '"Paris"}']),
        chunk({}, "tool_calls"),
        usage_chunk(20, 9),
    ]
    events = run_stream(chunks, request={"input": "Weather?", "tools": [WEATHER_TOOL]})
    parsed = parsed_events(events)
    assert [payload["sequence_number"] for _, payload in events] == list(range(len(events)))
    assert [type_ for type_, _ in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    created, text_done, call_added, call_done = parsed[0], parsed[6], parsed[9], parsed[13]
    assert created.response.status == "in_progress" and created.response.output == []
    assert (text_done.text, text_done.output_index, text_done.content_index) == ("Let me check.", 0, 0)
    assert (call_added.output_index, call_added.item.call_id, call_added.item.name) == (1, "call_a", "get_weather")
    assert call_done.arguments == '{"city":"Paris"}' and call_done.item_id == call_added.item.id
    final = parsed[-1].response
    assert final.id == created.response.id and final.status == "completed"
    assert final.output_text == "Let me check."
    assert [item.type for item in final.output] == ["message", "function_call"]
    assert final.output[1].arguments == '{"city":"Paris"}'
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.total_tokens) == (20, 9, 29)
    assert [tool.name for tool in final.tools] == ["get_weather"]


def test_parallel_tool_calls_are_one_item_each_done_before_the_next_is_added() -> None:
    chunks = [
        *call_chunks(0, "call_a", "f", ['{"x":', "1}"]),
        *call_chunks(1, "call_b", "g", ["{}"]),
        chunk({}, "tool_calls"),
    ]
    events = run_stream(chunks)
    parsed_events(events)
    items = [(type_, payload["output_index"]) for type_, payload in events if "output_item" in type_]
    assert items == [
        ("response.output_item.added", 0),
        ("response.output_item.done", 0),
        ("response.output_item.added", 1),
        ("response.output_item.done", 1),
    ]
    final = events[-1][1]["response"]
    assert [(item["call_id"], item["name"], item["arguments"]) for item in final["output"]] == [
        ("call_a", "f", '{"x":1}'),
        ("call_b", "g", "{}"),
    ]


def test_usage_given_to_close_wins_over_the_chunks_own() -> None:
    events = run_stream(
        [chunk({"content": "hi"}), usage_chunk(1, 1)],
        usage={"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    )
    assert events[-1][1]["response"]["usage"]["total_tokens"] == 10


def test_a_stream_cut_at_the_token_limit_ends_incomplete() -> None:
    events = run_stream([chunk({"content": "Once upon"}), chunk({}, "length")])
    parsed = parsed_events(events)
    assert events[-1][0] == "response.incomplete"
    final = parsed[-1].response
    assert final.status == "incomplete" and final.incomplete_details.reason == "max_output_tokens"
    assert final.output[0].status == "incomplete"


def test_a_broken_stream_ends_with_response_failed_carrying_the_message() -> None:
    translator = StreamTranslator(model="m", request={"input": "hi"}, response_id="resp_x")
    events = translator.start() + translator.feed(chunk({"content": "Hel"}))
    events += translator.fail("The provider stopped answering.")
    parsed = parsed_events(events)
    assert [payload["sequence_number"] for _, payload in events] == list(range(len(events)))
    failed = parsed[-1]
    assert failed.type == "response.failed"
    assert (failed.response.id, failed.response.status) == ("resp_x", "failed")
    assert failed.response.error.message == "The provider stopped answering."
    assert failed.response.output[0].status == "incomplete"
    assert translator.close(None) == []  # the stream has ended: nothing more to say


def test_reasoning_deltas_stream_as_a_reasoning_item_before_the_message() -> None:
    events = run_stream(
        [
            chunk({"reasoning_content": "Think"}),
            chunk({"reasoning_content": "ing."}),
            chunk({"content": "Done."}),
            chunk({}, "stop"),
        ]
    )
    parsed = parsed_events(events)
    reasoning_done = next(event for event in parsed if event.type == "response.reasoning_text.done")
    assert reasoning_done.text == "Thinking."
    final = parsed[-1].response
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.output_text == "Done."


def test_an_empty_stream_still_completes_with_an_empty_message() -> None:
    events = run_stream([chunk({"role": "assistant"}), chunk({}, "stop")])
    parsed = parsed_events(events)
    assert parsed[-1].type == "response.completed"
    assert parsed[-1].response.output_text == ""
    assert [item.type for item in parsed[-1].response.output] == ["message"]


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=200), cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=12))
def test_any_text_in_any_chunks_streams_deltas_that_join_to_the_done_text(text: str, cuts: list[int]) -> None:
    bounds = sorted({0, len(text), *(cut for cut in cuts if cut <= len(text))})
    pieces = [text[a:b] for a, b in pairwise(bounds)]
    events = run_stream([chunk({"content": piece}) for piece in pieces] + [chunk({}, "stop")])
    assert [payload["sequence_number"] for _, payload in events] == list(range(len(events)))
    deltas = "".join(payload["delta"] for type_, payload in events if type_ == "response.output_text.delta")
    [done] = [payload["text"] for type_, payload in events if type_ == "response.output_text.done"]
    final = events[-1][1]["response"]
    assert deltas == done == text == final["output"][0]["content"][0]["text"]


# -- the official SDK, end to end through the dialect -------------------------------------


def sdk_client(answer: Any) -> tuple[openai.OpenAI, list[dict[str, Any]]]:
    """An `openai` client whose requests are translated by `to_chat` and answered by `answer`
    (chat body -> httpx.Response); returns the client and the chat bodies it produced."""
    seen: list[dict[str, Any]] = []

    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/responses"
        body = json.loads(request.content)
        seen.append(to_chat(body))
        return answer(body, seen[-1])

    client = openai.OpenAI(
        api_key="k",
        base_url="http://gateway.test/v1",
        max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(handle)),
    )
    return client, seen


def test_the_sdk_creates_a_response_and_reads_the_answer() -> None:
    def answer(body: dict[str, Any], chat: dict[str, Any]) -> httpx.Response:
        return httpx.Response(
            200, json=from_chat(completion({"content": "Bonjour"}), model=body["model"], request=body)
        )

    client, seen = sdk_client(answer)
    response = client.responses.create(model="gpt-x", instructions="French only.", input="Hello", max_output_tokens=64)
    assert response.output_text == "Bonjour"
    assert seen == [
        {
            "model": "gpt-x",
            "max_completion_tokens": 64,
            "messages": [{"role": "system", "content": "French only."}, {"role": "user", "content": "Hello"}],
        }
    ]


def test_the_sdk_streams_a_response_and_assembles_the_final_one() -> None:
    chunks = [
        chunk({"content": "It is "}),
        chunk({"content": "sunny."}),
        *call_chunks(0, "call_a", "get_weather", ['{"city":', '"Paris"}']),
        chunk({}, "tool_calls"),
        usage_chunk(30, 12),
    ]

    def answer(body: dict[str, Any], chat: dict[str, Any]) -> httpx.Response:
        assert chat["stream"] is True
        events = run_stream(chunks, request=body)
        sse = "".join(f"event: {type_}\ndata: {json.dumps(payload)}\n\n" for type_, payload in events)
        return httpx.Response(200, content=sse.encode(), headers={"content-type": "text/event-stream"})

    client, _ = sdk_client(answer)
    with client.responses.stream(model="gpt-x", input="Weather in Paris?", tools=[WEATHER_TOOL]) as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert deltas == ["It is ", "sunny."]
    assert final.output_text == "It is sunny."
    call = final.output[1]
    assert (call.type, call.call_id, call.name, call.arguments) == (
        "function_call",
        "call_a",
        "get_weather",
        '{"city":"Paris"}',
    )
    assert final.usage is not None and final.usage.total_tokens == 42

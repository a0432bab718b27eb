"""The dialects as pure functions: the Anthropic Messages translator both ways (request ->
chat -> Anthropic upstream round trips, answers, the event stream), its per-target shaping,
and the identity dialect's error shape. No server, no database."""

from __future__ import annotations

import json
from typing import Any

import anthropic.types as at
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from providers.adapters.anthropic import to_anthropic
from providers.gateway.dialects import anthropic_messages as am
from providers.gateway.dialects import openai_chat
from providers.gateway.dialects.dialect import for_path
from providers.gateway.errors import RequestError

MODEL = "claude-sonnet-4-6"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGBgAAAABQABpfZFQAAAAABJRU5ErkJggg=="
WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def ask(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": "chain", "max_tokens": 64, "messages": list(messages), **fields}


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def refusal(body: dict[str, Any]) -> RequestError:
    with pytest.raises(RequestError) as info:
        am.to_chat(body)
    assert info.value.status == 400
    return info.value


# -- request -> chat ------------------------------------------------------------------------------


def test_a_system_string_and_system_blocks_become_the_first_system_message():
    plain = am.to_chat(ask(user("hi"), system="Be brief."))
    blocks = am.to_chat(
        ask(
            user("hi"),
            system=[
                {"type": "text", "text": "Be brief."},
                {"type": "text", "text": "Cite.", "cache_control": {"type": "ephemeral"}},
            ],
        )
    )

    assert plain["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    assert blocks["messages"][0] == {
        "role": "system",
        "content": [
            {"type": "text", "text": "Be brief."},
            {"type": "text", "text": "Cite.", "cache_control": {"type": "ephemeral"}},
        ],
    }


def test_images_become_image_url_parts_from_base64_and_url_sources():
    chat = am.to_chat(
        ask(
            user(
                [
                    {"type": "text", "text": "What is in these?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                ]
            )
        )
    )

    assert chat["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in these?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            ],
        }
    ]


def test_a_pdf_document_becomes_a_file_part_and_a_text_document_text():
    chat = am.to_chat(
        ask(
            user(
                [
                    {
                        "type": "document",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
                        "title": "report.pdf",
                    },
                    {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain words"}},
                ]
            )
        )
    )

    assert chat["messages"][0]["content"] == [
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "report.pdf"}},
        {"type": "text", "text": "plain words"},
    ]


def test_tool_use_becomes_tool_calls_and_tool_results_become_tool_messages_before_the_rest():
    chat = am.to_chat(
        ask(
            user("weather in Paris?"),
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "...", "signature": "s"},
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                ],
            },
            user(
                [
                    {"type": "text", "text": "and quickly"},
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "12C"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_2",
                        "is_error": True,
                        "content": [{"type": "text", "text": "timed out"}],
                    },
                ]
            ),
            tools=[WEATHER],
        )
    )

    assert chat["messages"][1:] == [
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "12C"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "timed out", "is_error": True},
        {"role": "user", "content": "and quickly"},
    ]
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": WEATHER["input_schema"],
                "description": "Weather for a city",
            },
        }
    ]


@pytest.mark.parametrize(
    ("choice", "expected", "parallel"),
    [
        ({"type": "auto"}, "auto", None),
        ({"type": "any"}, "required", None),
        ({"type": "none"}, "none", None),
        ({"type": "tool", "name": "get_weather"}, {"type": "function", "function": {"name": "get_weather"}}, None),
        ({"type": "any", "disable_parallel_tool_use": True}, "required", False),
    ],
)
def test_tool_choice_takes_its_chat_form(choice, expected, parallel):
    chat = am.to_chat(ask(user("hi"), tools=[WEATHER], tool_choice=choice))

    assert chat["tool_choice"] == expected
    assert chat.get("parallel_tool_calls") is parallel


def test_tool_choice_without_tools_is_left_out_as_chat_requires():
    assert "tool_choice" not in am.to_chat(ask(user("hi"), tool_choice={"type": "auto"}))


def test_sampling_stop_sequences_user_and_stream_carry_over():
    chat = am.to_chat(
        ask(
            user("hi"),
            temperature=0.2,
            top_p=0.9,
            top_k=5,
            stop_sequences=["END", "STOP"],
            metadata={"user_id": "u-7"},
            stream=True,
            service_tier="auto",
        )
    )

    assert chat == {
        "model": "chain",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.2,
        "top_p": 0.9,
        "top_k": 5,
        "stop": ["END", "STOP"],
        "user": "u-7",
        "stream": True,
    }


@pytest.mark.parametrize(
    ("thinking", "effort"),
    [
        ({"type": "enabled", "budget_tokens": 1024}, "low"),
        ({"type": "enabled", "budget_tokens": 2048}, "low"),
        ({"type": "enabled", "budget_tokens": 8000}, "medium"),
        ({"type": "enabled", "budget_tokens": 32000}, "high"),
        ({"type": "adaptive"}, "medium"),
        ({"type": "disabled"}, None),
    ],
)
def test_thinking_is_carried_as_reasoning_effort_and_as_itself(thinking, effort):
    chat = am.to_chat(ask(user("hi"), thinking=thinking))

    assert chat.get("reasoning_effort") == effort
    assert chat["thinking"] == thinking


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (ask(), "messages"),
        ({"model": "chain", "messages": [user("hi")]}, "max_tokens"),
        (ask(user("hi"), max_tokens=0), "max_tokens"),
        (ask(user("hi"), temperature=1.5), "temperature"),
        (ask(user("hi"), temperature="0.5"), "temperature"),
        (ask({"role": "system", "content": "x"}), "messages[0].role"),
        (ask(user([{"type": "video", "url": "x"}])), "messages[0].content[0]"),
        (
            ask(user([{"type": "image", "source": {"type": "base64", "media_type": "image/png"}}])),
            "messages[0].content[0].source",
        ),
        (ask(user([{"type": "image", "source": {"type": "url"}}])), "messages[0].content[0].source"),
        (
            ask(user([{"type": "document", "source": {"type": "url", "url": "https://x/y.pdf"}}])),
            "messages[0].content[0].source",
        ),
        (ask(user([{"type": "tool_use", "id": "t", "name": "f", "input": {}}])), "messages[0].content[0].type"),
        (ask(user("hi"), tools=[{"name": "web_search", "type": "web_search_20250305"}]), "tools[0].type"),
        (ask(user("hi"), tools=[{"name": "f"}]), "tools[0].input_schema"),
        (ask(user("hi"), tools=[WEATHER], tool_choice={"type": "tool", "name": "nope"}), "tool_choice.name"),
        (ask(user("hi"), tool_choice={"type": "sometimes"}), "tool_choice.type"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(body, param):
    assert refusal(body).param == param


def test_count_requests_need_no_max_tokens():
    chat = am.count_request({"model": "chain", "messages": [user("hi")]})

    assert chat == {"model": "chain", "messages": [{"role": "user", "content": "hi"}]}


def test_the_estimate_counts_text_tools_and_images():
    text = am.to_chat(ask(user("x" * 400)))
    with_tools = am.to_chat(ask(user("x" * 400), tools=[WEATHER]))
    with_image = am.to_chat(
        ask(
            user(
                [
                    {"type": "text", "text": "x" * 400},
                    {"type": "image", "source": {"type": "url", "url": "https://e/x.png"}},
                ]
            )
        )
    )

    assert am.estimate_tokens(text) == 100
    assert am.estimate_tokens(with_tools) > 100
    assert am.estimate_tokens(with_image) == 100 + am.IMAGE_TOKENS


# -- round trips: Anthropic request -> chat -> Anthropic upstream -----------------------------


def test_a_conversation_survives_the_round_trip_to_an_anthropic_upstream():
    original = ask(
        user(
            [
                {"type": "text", "text": "Look:"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
            ]
        ),
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}],
        },
        user([{"type": "tool_result", "tool_use_id": "toolu_1", "content": "-3C", "is_error": True}]),
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        tools=[{**WEATHER, "cache_control": {"type": "ephemeral"}}],
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        stop_sequences=["END"],
        temperature=0.5,
        top_k=3,
        thinking={"type": "enabled", "budget_tokens": 2000},
    )

    upstream = to_anthropic(am.for_target(am.to_chat(original), "anthropic", MODEL), model=MODEL)

    assert upstream["system"] == original["system"]
    assert upstream["messages"] == original["messages"]
    assert upstream["tools"] == original["tools"]
    assert upstream["tool_choice"] == original["tool_choice"]
    assert upstream["stop_sequences"] == ["END"] and upstream["max_tokens"] == 64
    assert upstream["top_k"] == 3 and upstream["temperature"] == 0.5
    # a tool loop: thinking blocks are not carried, so thinking is left out, as Anthropic requires
    assert "thinking" not in upstream


def test_thinking_reaches_an_anthropic_upstream_with_its_own_budget():
    original = ask(user("hi"), max_tokens=4000, temperature=0.3, thinking={"type": "enabled", "budget_tokens": 2000})

    upstream = to_anthropic(am.for_target(am.to_chat(original), "anthropic", MODEL), model=MODEL)

    assert upstream["thinking"] == {"type": "enabled", "budget_tokens": 2000}
    assert "temperature" not in upstream  # Anthropic refuses the two together


def test_an_openai_target_gets_nothing_only_anthropic_takes():
    chat = am.to_chat(
        ask(
            user([{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]),
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "get_weather", "input": {}}]},
            user([{"type": "tool_result", "tool_use_id": "t1", "content": "x", "is_error": True}]),
            tools=[{**WEATHER, "cache_control": {"type": "ephemeral"}}],
            top_k=4,
            temperature=0.5,
            thinking={"type": "enabled", "budget_tokens": 3000},
        )
    )

    plain = am.for_target(chat, "openai", "gpt-4o")
    reasoning = am.for_target(chat, "openai", "openai/o4-mini")

    assert not {"thinking", "top_k", "reasoning_effort"} & set(plain)
    assert "cache_control" not in json.dumps(plain) and "is_error" not in json.dumps(plain)
    assert reasoning["reasoning_effort"] == "medium"
    assert reasoning["max_completion_tokens"] == 64 and "max_tokens" not in reasoning
    assert plain["temperature"] == 0.5 and "temperature" not in reasoning  # reasoning models refuse it
    assert chat["top_k"] == 4 and "cache_control" in json.dumps(chat)  # the shared body is left as it was


# Conversations Anthropic accepts: alternating turns of text and images, with tool round trips.
_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40)
_image = st.builds(
    lambda data: {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}},
    st.text(alphabet="ABCDEFGHIJ0123456789+/", min_size=4, max_size=12),
)
_user_blocks = st.lists(
    st.one_of(st.builds(lambda t: {"type": "text", "text": t}, _text), _image), min_size=1, max_size=3
)


@st.composite
def conversations(draw: st.DrawFn) -> dict[str, Any]:
    turns: list[dict[str, Any]] = []
    for n in range(draw(st.integers(1, 3))):
        turns.append(user(draw(_user_blocks)))
        if draw(st.booleans()):
            call = f"toolu_{n}"
            args = draw(
                st.dictionaries(
                    st.sampled_from(["city", "days", "unit"]), st.one_of(st.integers(-5, 5), _text), max_size=2
                )
            )
            turns.append(
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": draw(_text)},
                        {"type": "tool_use", "id": call, "name": "get_weather", "input": args},
                    ],
                }
            )
            turns.append(user([{"type": "tool_result", "tool_use_id": call, "content": draw(_text)}]))
        turns.append({"role": "assistant", "content": [{"type": "text", "text": draw(_text)}]})
    body = ask(*turns[:-1], tools=[WEATHER], stop_sequences=draw(st.lists(_text, max_size=3)))
    if draw(st.booleans()):
        body["system"] = draw(_text)
    return body


@settings(max_examples=150, deadline=None)
@given(conversations())
def test_any_conversation_reaches_an_anthropic_upstream_as_it_was_sent(original):
    upstream = to_anthropic(am.for_target(am.to_chat(original), "anthropic", MODEL), model=MODEL)

    assert upstream["messages"] == original["messages"]
    assert upstream.get("system") == original.get("system")
    assert upstream.get("stop_sequences", []) == original["stop_sequences"]
    assert upstream["tools"] == original["tools"]


# -- chat -> answer ----------------------------------------------------------------------------------


def completion(message: dict[str, Any], finish: str = "stop", **choice: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish, **choice}],
        "usage": {
            "prompt_tokens": 12,
            "completion_tokens": 5,
            "total_tokens": 17,
            "prompt_tokens_details": {"cached_tokens": 4},
        },
    }


def test_a_completion_becomes_a_message_the_sdk_reads():
    answer = am.from_chat(completion({"content": "Hello."}), model="chain")

    parsed = at.Message.model_validate(answer)
    assert parsed.id.startswith("msg_") and parsed.model == "chain" and parsed.role == "assistant"
    assert [b.model_dump(exclude_none=True) for b in parsed.content] == [{"type": "text", "text": "Hello."}]
    assert parsed.stop_reason == "end_turn" and parsed.stop_sequence is None
    assert (parsed.usage.input_tokens, parsed.usage.cache_read_input_tokens, parsed.usage.output_tokens) == (8, 4, 5)


@pytest.mark.parametrize(
    ("finish", "extra", "stop_reason", "sequence"),
    [
        ("stop", {}, "end_turn", None),
        ("length", {}, "max_tokens", None),
        ("tool_calls", {}, "tool_use", None),
        ("content_filter", {}, "refusal", None),
        ("stop", {"stop_reason": "END"}, "stop_sequence", "END"),  # vLLM says which sequence matched
    ],
)
def test_finish_reasons_become_stop_reasons(finish, extra, stop_reason, sequence):
    answer = am.from_chat(completion({"content": "x"}, finish, **extra), model="chain")

    assert (answer["stop_reason"], answer["stop_sequence"]) == (stop_reason, sequence)


def test_tool_calls_become_tool_use_blocks_with_parsed_input():
    answer = am.from_chat(
        completion(
            {
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                    },
                    {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{not json"}},
                ],
            },
            "stop",
        ),
        model="chain",
    )

    assert answer["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Oslo"}},
        {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"_arguments": "{not json"}},
    ]
    assert answer["stop_reason"] == "tool_use"  # a turn of tool calls, though the server said "stop"
    at.Message.model_validate(answer)


# -- chat chunks -> Anthropic events ---------------------------------------------------------------

EVENT_MODELS = {
    "message_start": at.RawMessageStartEvent,
    "content_block_start": at.RawContentBlockStartEvent,
    "content_block_delta": at.RawContentBlockDeltaEvent,
    "content_block_stop": at.RawContentBlockStopEvent,
    "message_delta": at.RawMessageDeltaEvent,
    "message_stop": at.RawMessageStopEvent,
}


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def call_chunk(index: int, arguments: str, *, first: bool = False) -> dict[str, Any]:
    call: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if first:
        call.update(id=f"call_{index}", type="function")
        call["function"]["name"] = "get_weather"
    return chunk({"tool_calls": [call]})


def run(chunks: list[dict[str, Any]], usage: dict[str, Any] | None = None) -> list[tuple[str, dict[str, Any]]]:
    translator = am.StreamTranslator(model="chain")
    events = translator.start()
    for item in chunks:
        events += translator.feed(item)
    events += translator.close(usage)
    for name, data in events:  # every event is one the SDK reads, named as its data's type
        assert isinstance(data, dict) and name == data["type"]
        EVENT_MODELS[name].model_validate(data)
    return events


def test_a_text_stream_is_anthropics_exact_event_sequence():
    events = run(
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Echo:"}),
            chunk({"content": " hi"}),
            chunk({}, "stop"),
        ],
        {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    )

    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[1][1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    assert events[2][1]["delta"] == {"type": "text_delta", "text": "Echo:"}
    assert events[5][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {
            "input_tokens": 3,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 2,
        },
    }


def test_text_then_tool_calls_are_blocks_one_after_another_with_input_json_deltas():
    events = run(
        [
            chunk({"content": "Calling."}),
            call_chunk(0, "", first=True),
            call_chunk(0, '{"city": '),
            call_chunk(0, '"Oslo"}'),
            call_chunk(1, '{"city": "Rome"}', first=True),
            chunk({}, "tool_calls"),
        ]
    )

    starts = [data for name, data in events if name == "content_block_start"]
    stops = [data["index"] for name, data in events if name == "content_block_stop"]
    assert [(s["index"], s["content_block"]["type"]) for s in starts] == [(0, "text"), (1, "tool_use"), (2, "tool_use")]
    assert starts[1]["content_block"] == {"type": "tool_use", "id": "call_0", "name": "get_weather", "input": {}}
    assert stops == [0, 1, 2]
    fragments: dict[int, str] = {}
    for name, data in events:
        if name == "content_block_delta" and data["delta"]["type"] == "input_json_delta":
            fragments[data["index"]] = fragments.get(data["index"], "") + data["delta"]["partial_json"]
    assert {i: json.loads(text) for i, text in fragments.items()} == {1: {"city": "Oslo"}, 2: {"city": "Rome"}}
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_a_broken_stream_ends_with_an_error_event_and_nothing_after():
    translator = am.StreamTranslator(model="chain")
    translator.start()
    translator.feed(chunk({"content": "Echo"}))

    failed = translator.fail("the provider's stream broke: reset")

    assert failed == [
        ("error", {"type": "error", "error": {"type": "api_error", "message": "the provider's stream broke: reset"}})
    ]
    assert translator.close() == [] and translator.feed(chunk({"content": "more"})) == []


_piece = st.one_of(
    st.tuples(st.just("text"), _text),
    st.tuples(st.just("call"), st.text(alphabet='{}":, abc123', min_size=1, max_size=10)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_piece, max_size=12), st.sampled_from(["stop", "length", "tool_calls"]))
def test_any_chunk_sequence_makes_a_well_formed_event_stream(pieces, finish):
    chunks = [chunk({"role": "assistant", "content": ""})]
    text, arguments, calls = "", {}, 0
    for kind, value in pieces:
        if kind == "text":
            chunks.append(chunk({"content": value}))
            text += value
        else:
            calls += 1
            chunks.append(call_chunk(calls, value, first=True))
            arguments[calls] = value
    chunks.append(chunk({}, finish))

    events = run(chunks)

    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    open_block = None
    said_text, said_json = "", {}
    for name, data in events:
        if name == "content_block_start":
            assert open_block is None
            open_block = data["index"]
        elif name == "content_block_stop":
            assert data["index"] == open_block
            open_block = None
        elif name == "content_block_delta":
            assert data["index"] == open_block
            if data["delta"]["type"] == "text_delta":
                said_text += data["delta"]["text"]
            else:
                said_json[data["index"]] = said_json.get(data["index"], "") + data["delta"]["partial_json"]
    assert open_block is None
    assert said_text == text
    assert list(said_json.values()) == list(arguments.values())


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "type_"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (504, "timeout_error"),
        (405, "invalid_request_error"),
    ],
)
def test_errors_take_anthropics_shape_and_type_by_status(status, type_):
    body = am.error_body(status, "all_targets_failed", "nobody could serve it", attempts=[], param="model")

    # the gateway's own word rides along as `code`; attempt lists and params do not
    assert body == {
        "type": "error",
        "error": {"type": type_, "message": "nobody could serve it", "code": "all_targets_failed"},
    }
    assert am.native_error(body) and not openai_chat.native_error(body)


def test_the_openai_shape_is_native_to_the_identity_dialect_only():
    body = openai_chat.error_body(400, "invalid_request_error", "bad", param="model")

    assert body == {
        "error": {"type": "invalid_request_error", "message": "bad", "code": "invalid_request_error", "param": "model"}
    }
    assert openai_chat.native_error(body) and not am.native_error(body)
    assert not openai_chat.native_error({"error": "model not found"})  # Ollama's


def test_each_api_path_answers_in_its_own_dialect():
    assert for_path("/v1/messages") is am.DIALECT
    assert for_path("/v1/messages/count_tokens") is am.DIALECT
    assert for_path("/v1/messagesx") is openai_chat.DIALECT
    assert for_path("/v1/chat/completions") is openai_chat.DIALECT

"""AnthropicAdapter: the OpenAI ↔ Messages translation, and the adapter against FakeAnthropic."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest

from providers.adapters import adapter_class
from providers.adapters.anthropic import AnthropicAdapter, to_anthropic, to_openai
from providers.adapters.base import Price, ProviderConfig, Unsupported
from providers.adapters.client import build_client
from providers.engine.errors import UpstreamError
from providers.engine.outcome import Outcome, classify_exception
from tests.fakes.anthropic import API_KEY, FakeAnthropic
from tests.fakes.base import free_port

MODEL = "claude-sonnet-4-6"
MESSAGES = "/v1/messages"
HELLO = {"messages": [{"role": "user", "content": "hello world"}]}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGBgAAAABQABpfZFQAAAAABJRU5ErkJggg=="
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture(scope="module")
def fake():
    with FakeAnthropic() as server:
        yield server


@pytest.fixture(params=["httpx", "aiohttp"])
async def http(request):
    client = build_client(request.param)
    yield client
    await client.aclose()


def make(base_url: str, client: httpx.AsyncClient, *, api_key: str | None = API_KEY, **kw) -> AnthropicAdapter:
    config = ProviderConfig(name="claude", kind="anthropic", base_url=base_url, api_key=api_key, **kw)
    return AnthropicAdapter(config, client)


@pytest.fixture
def adapter(fake, http):
    return make(fake.url, http)


async def failure_of(awaitable) -> BaseException:
    with pytest.raises(Exception) as info:
        await awaitable
    return info.value


async def drain(stream) -> list[dict]:
    return [chunk async for chunk in stream]


def deltas(chunks: list[dict]) -> list[dict]:
    return [c["choices"][0]["delta"] for c in chunks if c["choices"]]


# -- translation, request side ------------------------------------------------------------------


def test_system_and_developer_messages_become_the_top_level_system():
    body = to_anthropic(
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
                {"role": "user", "content": "hi"},
            ]
        },
        model=MODEL,
    )

    assert body["system"] == "Be brief.\n\nAnswer in French."
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]


def test_consecutive_turns_of_one_role_are_merged_into_one():
    body = to_anthropic(
        {
            "messages": [
                {"role": "user", "content": "one"},
                {"role": "user", "content": "two"},
                {"role": "assistant", "content": "three"},
            ]
        },
        model=MODEL,
    )

    assert [m["role"] for m in body["messages"]] == ["user", "assistant"]
    assert [b["text"] for b in body["messages"][0]["content"]] == ["one", "two"]


def test_image_parts_become_base64_or_url_sources():
    content = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}},
    ]
    blocks = to_anthropic({"messages": [{"role": "user", "content": content}]}, model=MODEL)["messages"][0]["content"]

    assert blocks[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
    }
    assert blocks[2] == {
        "type": "image",
        "source": {"type": "url", "url": "https://example.com/cat.jpg"},
    }


def test_tool_calls_become_tool_use_and_tool_messages_lead_the_next_user_turn():
    body = to_anthropic(
        {
            "messages": [
                {"role": "user", "content": "weather in Paris and Oslo?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "toolu_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                        },
                        {
                            "id": "toolu_2",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
                {
                    "role": "tool",
                    "tool_call_id": "toolu_2",
                    "content": [{"type": "text", "text": "snow"}],
                },
                {"role": "user", "content": "and tomorrow?"},
            ]
        },
        model=MODEL,
    )

    assistant, results = body["messages"][1], body["messages"][2]
    assert assistant == {
        "role": "assistant",
        "content": [
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "get_weather",
                "input": {"city": "Paris"},
            },
            {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Oslo"}},
        ],
    }
    assert results["role"] == "user" and len(body["messages"]) == 3
    assert results["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
        {
            "type": "tool_result",
            "tool_use_id": "toolu_2",
            "content": [{"type": "text", "text": "snow"}],
        },
        {"type": "text", "text": "and tomorrow?"},
    ]


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            None,
            {"type": "tool", "name": "get_weather"},
        ),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            False,
            {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
        ),
    ],
)
def test_tools_and_tool_choice_take_their_anthropic_forms(choice, parallel, expected):
    request = {
        **HELLO,
        "tools": [WEATHER_TOOL],
        "tool_choice": choice,
        "parallel_tool_calls": parallel,
    }
    body = to_anthropic(request, model=MODEL)

    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": WEATHER_TOOL["function"]["parameters"],
        }
    ]
    assert body["tool_choice"] == expected


@pytest.mark.parametrize("parallel", [False, True, None])
def test_tool_choice_none_never_carries_disable_parallel_tool_use(parallel):
    # Anthropic's schema allows disable_parallel_tool_use on auto, any and tool only.
    request = {**HELLO, "tools": [WEATHER_TOOL], "tool_choice": "none", "parallel_tool_calls": parallel}

    assert to_anthropic(request, model=MODEL)["tool_choice"] == {"type": "none"}


def test_sampling_settings_carry_over_and_max_tokens_defaults_to_1024():
    plain = to_anthropic(HELLO, model=MODEL)
    tuned = to_anthropic(
        {
            **HELLO,
            "max_completion_tokens": 50,
            "max_tokens": 9,
            "temperature": 1.6,
            "top_p": 0.9,
            "stop": "END",
            "seed": 3,
            "user": "u-1",
        },
        model=MODEL,
    )

    assert plain == {
        "model": MODEL,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hello world"}]}],
        "max_tokens": 1024,
    }
    assert tuned["max_tokens"] == 50 and tuned["temperature"] == 1.0 and tuned["top_p"] == 0.9
    assert tuned["stop_sequences"] == ["END"] and tuned["metadata"] == {"user_id": "u-1"}
    assert "seed" not in tuned


def test_what_anthropic_cannot_do_is_refused_as_a_caller_error():
    with pytest.raises(Unsupported) as several:
        to_anthropic({**HELLO, "n": 2}, model=MODEL)
    with pytest.raises(UpstreamError) as broken_arguments:
        to_anthropic(
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "t",
                                "type": "function",
                                "function": {"name": "f", "arguments": "{not json"},
                            }
                        ],
                    }
                ]
            },
            model=MODEL,
        )

    assert several.value.outcome == Outcome.CALLER_ERROR and several.value.status == 400
    assert broken_arguments.value.outcome == Outcome.CALLER_ERROR
    assert "arguments must be a JSON object" in broken_arguments.value.message


# -- translation, answer side -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
def test_stop_reasons_become_finish_reasons(stop_reason, finish_reason):
    message = {
        "id": "msg_1",
        "type": "message",
        "content": [{"type": "text", "text": "x"}],
        "stop_reason": stop_reason,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }

    assert to_openai(message, model=MODEL)["choices"][0]["finish_reason"] == finish_reason


def test_usage_counts_cached_prompt_tokens_in_the_prompt():
    message = {
        "id": "msg_1",
        "content": [],
        "stop_reason": "end_turn",
        "usage": {
            "input_tokens": 10,
            "cache_creation_input_tokens": 5,
            "cache_read_input_tokens": 100,
            "output_tokens": 7,
        },
    }

    usage = to_openai(message, model=MODEL)["usage"]

    assert usage == {
        "prompt_tokens": 115,
        "completion_tokens": 7,
        "total_tokens": 122,
        "prompt_tokens_details": {"cached_tokens": 100},
    }


# -- over HTTP ----------------------------------------------------------------------------------


def test_the_registry_names_this_adapter_for_kind_anthropic():
    assert adapter_class("anthropic") is AnthropicAdapter


async def test_chat_answers_an_openai_chat_completion(adapter, fake):
    result = await adapter.chat(HELLO, model=MODEL, timeout=5)

    assert result.data["object"] == "chat.completion" and result.data["id"].startswith("msg_")
    assert result.data["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Echo: hello world",
    }
    assert result.data["choices"][0]["finish_reason"] == "stop"
    assert result.data["usage"]["total_tokens"] == 5
    assert (result.usage.tokens_in, result.usage.tokens_out, result.model) == (2, 3, MODEL)
    assert json.loads(result.content) == result.data
    sent = fake.requests_to(MESSAGES)[0]
    assert sent.headers["x-api-key"] == API_KEY and sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.json()["max_tokens"] == 1024


async def test_the_version_option_and_a_base_url_ending_in_v1_are_honoured(fake, http):
    adapter = make(fake.url + "/v1", http, options={"version": "2026-10-21", "beta": ["a-2025", "b-2026"]})

    await adapter.chat(HELLO, model=MODEL, timeout=5)

    sent = fake.requests_to(MESSAGES)[0]
    assert sent.headers["anthropic-version"] == "2026-10-21"
    assert sent.headers["anthropic-beta"] == "a-2025,b-2026"


async def test_a_tool_call_round_trip_translates_both_ways(adapter, fake):
    ask = {
        "messages": [{"role": "user", "content": 'call get_weather {"city": "Paris"}'}],
        "tools": [WEATHER_TOOL],
    }
    first = await adapter.chat(ask, model=MODEL, timeout=5)

    message = first.data["choices"][0]["message"]
    assert first.data["choices"][0]["finish_reason"] == "tool_calls"
    assert message["content"] == "Calling get_weather."
    call = message["tool_calls"][0]
    assert call["id"].startswith("toolu_") and call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}

    follow_up = {
        **ask,
        "messages": [
            *ask["messages"],
            message,
            {"role": "tool", "tool_call_id": call["id"], "content": "sunny, 21C"},
        ],
    }
    second = await adapter.chat(follow_up, model=MODEL, timeout=5)

    # The fake refuses a tool_result without its tool_use, so this answer proves the pairing.
    assert second.data["choices"][0]["message"]["content"] == "Tool result: sunny, 21C"
    sent = fake.requests_to(MESSAGES)[1].json()["messages"]
    assert sent[1]["content"][1] == {
        "type": "tool_use",
        "id": call["id"],
        "name": "get_weather",
        "input": {"city": "Paris"},
    }
    assert sent[2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "sunny, 21C"}],
    }


async def test_stop_sequences_and_max_tokens_end_the_answer_as_openai_says(adapter):
    stopped = await adapter.chat({**HELLO, "stop": ["world"]}, model=MODEL, timeout=5)
    cut = await adapter.chat({**HELLO, "max_tokens": 1}, model=MODEL, timeout=5)

    assert stopped.data["choices"][0] == {
        "index": 0,
        "logprobs": None,
        "finish_reason": "stop",
        "message": {"role": "assistant", "content": "Echo: hello"},
    }
    assert cut.data["choices"][0]["finish_reason"] == "length"
    assert cut.data["choices"][0]["message"]["content"] == "Echo:"


async def test_usage_prices_into_a_cost(adapter):
    result = await adapter.chat(HELLO, model=MODEL, timeout=5)

    assert result.usage.cost(Price(input_per_mtok=Decimal(3), output_per_mtok=Decimal(15))) == Decimal("0.000051")


async def test_what_the_messages_api_lacks_is_unsupported(adapter):
    for call in (
        adapter.embeddings({"input": "x"}, model=MODEL, timeout=5),
        adapter.images({"prompt": "x"}, model=MODEL, timeout=5),
        adapter.speech({"input": "x"}, model=MODEL, timeout=5),
    ):
        error = await failure_of(call)
        assert isinstance(error, Unsupported) and error.outcome == Outcome.CALLER_ERROR


# -- streaming ----------------------------------------------------------------------------------


async def test_a_stream_becomes_openai_chunks_with_usage(adapter, fake):
    stream = await adapter.chat_stream(HELLO, model=MODEL, timeout=5)
    chunks = await drain(stream)

    assert all(c["object"] == "chat.completion.chunk" and c["id"].startswith("msg_") for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "".join(d.get("content") or "" for d in deltas(chunks)) == "Echo: hello world"
    assert chunks[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert (stream.usage.tokens_in, stream.usage.tokens_out) == (2, 3)
    assert fake.requests_to(MESSAGES)[0].json()["stream"] is True


async def test_a_stream_ends_with_the_usage_chunk_when_the_caller_asks(adapter):
    request = {**HELLO, "stream_options": {"include_usage": True}}
    chunks = await drain(await adapter.chat_stream(request, model=MODEL, timeout=5))

    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == 2 and chunks[-1]["usage"]["completion_tokens"] == 3
    assert all(c["usage"] is None for c in chunks[:-1])


async def test_a_streamed_tool_call_arrives_as_indexed_fragments(adapter):
    ask = {
        "messages": [{"role": "user", "content": 'call get_weather {"city": "Oslo"}'}],
        "tools": [WEATHER_TOOL],
    }
    chunks = await drain(await adapter.chat_stream(ask, model=MODEL, timeout=5))

    calls = [d["tool_calls"][0] for d in deltas(chunks) if d.get("tool_calls")]
    # The text block is Anthropic's block 0; the tool call is still OpenAI's tool index 0.
    assert {c["index"] for c in calls} == {0}
    assert calls[0]["id"].startswith("toolu_") and calls[0]["function"]["name"] == "get_weather"
    assert json.loads("".join(c["function"]["arguments"] for c in calls)) == {"city": "Oslo"}
    assert "".join(d.get("content") or "" for d in deltas(chunks)) == "Calling get_weather."
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_a_stream_cut_mid_answer_raises_a_failure_while_iterating(adapter, fake):
    fake.fault(path=MESSAGES, cut_stream_after=4)  # message_start, block start, ping, one delta
    stream = await adapter.chat_stream(HELLO, model=MODEL, timeout=5)
    received = []

    with pytest.raises(Exception) as info:
        async for chunk in stream:
            received.append(chunk)

    assert [d for d in deltas(received)] == [
        {"role": "assistant", "content": ""},
        {"content": "Echo:"},
    ]
    assert classify_exception(info.value).outcome == Outcome.FAILURE
    await stream.aclose()


async def test_an_overloaded_error_event_mid_stream_raises_a_failure(adapter, fake):
    fake.fault(path=MESSAGES, error_code="overloaded_error")
    stream = await adapter.chat_stream(HELLO, model=MODEL, timeout=5)

    error = await failure_of(drain(stream))

    assert isinstance(error, UpstreamError) and error.outcome == Outcome.FAILURE
    assert error.classification.reason == "stream_overloaded_error"
    assert json.loads(error.body)["error"]["type"] == "overloaded_error"


async def test_a_stream_that_ends_before_message_stop_is_stream_broken():
    def handler(request):
        body = (
            b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","usage":{}}}\n\n'
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
            b'"delta":{"type":"text_delta","text":"hi"}}\n\n'
        )
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        stream = await make("http://upstream", client).chat_stream(HELLO, model=MODEL, timeout=5)
        error = await failure_of(drain(stream))

    assert isinstance(error, UpstreamError) and error.classification.reason == "stream_broken"


async def test_an_unreadable_event_is_a_malformed_response_failure():
    def handler(request):
        body = b'event: message_start\ndata: {"type":"message_start","mess\n\n'
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        stream = await make("http://upstream", client).chat_stream(HELLO, model=MODEL, timeout=5)
        error = await failure_of(drain(stream))

    assert isinstance(error, UpstreamError) and error.outcome == Outcome.FAILURE
    assert error.classification.reason == "malformed_response"


async def test_closing_a_stream_before_reading_it_releases_the_connection():
    closed = []

    class Body(httpx.AsyncByteStream):
        async def __aiter__(self):
            yield b'event: message_stop\ndata: {"type":"message_stop"}\n\n'

        async def aclose(self) -> None:
            closed.append(True)

    def handler(request):
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Body())

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        stream = await make("http://upstream", client).chat_stream(HELLO, model=MODEL, timeout=5)
        await stream.aclose()

    assert closed == [True]


async def test_a_stream_refused_as_overloaded_raises_before_iteration(adapter, fake):
    fake.fault(path=MESSAGES, status=529)

    error = await failure_of(adapter.chat_stream(HELLO, model=MODEL, timeout=5))

    assert isinstance(error, UpstreamError) and (error.status, error.outcome) == (
        529,
        Outcome.FAILURE,
    )


# -- errors (resilience.md §2) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (500, "api_error"),
        (502, "api_error"),
        (503, "api_error"),
        (504, "api_error"),
        (529, "overloaded_error"),
    ],
)
async def test_server_errors_and_overload_are_failures(adapter, fake, status, kind):
    fake.fault(path=MESSAGES, status=status)

    error = await failure_of(adapter.chat(HELLO, model=MODEL, timeout=5))

    assert isinstance(error, UpstreamError) and (error.status, error.outcome) == (
        status,
        Outcome.FAILURE,
    )
    assert json.loads(error.body)["error"]["type"] == kind


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
    ],
)
async def test_caller_errors_keep_anthropics_own_body(adapter, fake, status, kind):
    fake.fault(path=MESSAGES, status=status)

    error = await failure_of(adapter.chat(HELLO, model=MODEL, timeout=5))

    assert isinstance(error, UpstreamError) and (error.status, error.outcome) == (
        status,
        Outcome.CALLER_ERROR,
    )
    body = json.loads(error.body)
    assert body["type"] == "error" and body["error"]["type"] == kind
    assert error.headers["request-id"] == body["request_id"]


async def test_a_wrong_key_gets_anthropics_real_401(fake, http):
    error = await failure_of(make(fake.url, http, api_key="sk-ant-wrong").chat(HELLO, model=MODEL, timeout=5))

    assert isinstance(error, UpstreamError) and error.status == 401 and error.outcome == Outcome.CALLER_ERROR
    assert error.message == "invalid x-api-key"


async def test_unknown_and_retired_models_are_404_caller_errors(adapter):
    for model in ("claude-nonexistent", "claude-3-haiku-20240307"):
        error = await failure_of(adapter.chat(HELLO, model=model, timeout=5))
        assert isinstance(error, UpstreamError) and error.status == 404
        assert error.outcome == Outcome.CALLER_ERROR and error.message == f"model: {model}"


async def test_a_rate_limit_error_is_rate_limited_for_its_retry_after(adapter, fake):
    fake.fault(path=MESSAGES, status=429, retry_after="12")

    error = await failure_of(adapter.chat(HELLO, model=MODEL, timeout=5))

    assert error.outcome == Outcome.RATE_LIMITED and error.classification.retry_after == 12.0
    assert json.loads(error.body)["error"]["type"] == "rate_limit_error"


async def test_retry_after_ms_wins_for_anthropic_too(adapter, fake):
    fake.fault(path=MESSAGES, status=429, headers={"retry-after-ms": "250"})

    error = await failure_of(adapter.chat(HELLO, model=MODEL, timeout=5))

    assert error.outcome == Outcome.RATE_LIMITED and error.classification.retry_after == 0.25


async def test_a_plain_429_carries_anthropics_default_retry_after(adapter, fake):
    fake.fault(path=MESSAGES, status=429)

    error = await failure_of(adapter.chat(HELLO, model=MODEL, timeout=5))

    assert error.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert error.outcome == Outcome.RATE_LIMITED and error.classification.retry_after == 1.0


@pytest.mark.parametrize(("status", "code"), [(400, "credit_balance_too_low"), (429, "enforced_spend_limit_reached")])
async def test_an_empty_credit_balance_or_spend_cap_is_exhausted(adapter, fake, status, code):
    fake.fault(path=MESSAGES, status=status, error_code=code)

    error = await failure_of(adapter.chat(HELLO, model=MODEL, timeout=5))

    assert error.status == status and error.outcome == Outcome.EXHAUSTED


async def test_malformed_json_in_a_200_is_a_malformed_response_failure(adapter, fake):
    fake.fault(path=MESSAGES, body='{"type": "message", "content": [')

    error = await failure_of(adapter.chat(HELLO, model=MODEL, timeout=5))

    assert isinstance(error, UpstreamError)
    assert (error.outcome, error.classification.reason) == (Outcome.FAILURE, "malformed_response")


async def test_a_refused_connection_is_classified_failure(http):
    error = await failure_of(make(f"http://127.0.0.1:{free_port()}", http).chat(HELLO, model=MODEL, timeout=2))

    assert isinstance(error, httpx.TransportError)
    assert classify_exception(error).outcome == Outcome.FAILURE


# -- models and probes --------------------------------------------------------------------------


async def test_list_models_skips_retired_models_and_reads_the_context_window(adapter, fake):
    models = await adapter.list_models(timeout=5)

    names = [m.name for m in models]
    assert names[:2] == ["claude-opus-4-6", "claude-sonnet-4-6"] and "claude-3-haiku-20240307" not in names
    assert all(m.capabilities == {"chat"} for m in models)
    assert models[0].context_window == 1_000_000 and models[0].details["display_name"] == "Claude Opus 4.6"
    assert fake.requests_to("/v1/models")[0].query == {"limit": "1000"}


async def test_list_models_follows_pages():
    pages = {
        None: {
            "data": [{"type": "model", "id": "a", "display_name": "A"}],
            "has_more": True,
            "last_id": "a",
        },
        "a": {
            "data": [{"type": "model", "id": "b", "display_name": "B"}],
            "has_more": False,
            "last_id": "b",
        },
    }

    def handler(request):
        return httpx.Response(200, json=pages[request.url.params.get("after_id")])

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        models = await make("http://upstream", client).list_models(timeout=5)

    assert [m.name for m in models] == ["a", "b"]


async def test_a_probe_lists_models_and_a_deep_probe_sends_one_token(adapter, fake):
    shallow = await adapter.probe(timeout=5)
    deep = await adapter.probe(timeout=5, deep=True, model=MODEL)

    assert shallow == {"models": 5}
    assert deep["finish_reason"] == "length" and deep["tokens_out"] == 1
    assert fake.requests_to(MESSAGES)[0].json()["max_tokens"] == 1

"""OllamaAdapter against FakeOllama: OpenAI shapes in and out, streams, management, errors."""

from __future__ import annotations

import base64
import json
import struct
from decimal import Decimal

import httpx
import pytest

from providers.adapters.base import Price, ProviderConfig
from providers.adapters.client import build_client
from providers.adapters.ollama import OllamaAdapter
from providers.engine.errors import UpstreamError
from providers.engine.outcome import Outcome, classify_exception
from tests.fakes.base import free_port
from tests.fakes.ollama import FakeOllama

from .expect import raised

PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGBgAAAABQABpfZFQAAAAABJRU5ErkJggg=="
HELLO = {"messages": [{"role": "user", "content": "why is the sky blue?"}]}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture(scope="module")
def fake():
    with FakeOllama() as server:
        yield server


def make(url: str, client: httpx.AsyncClient, **kw) -> OllamaAdapter:
    return OllamaAdapter(ProviderConfig(name="local-ollama", kind="ollama", base_url=url, **kw), client)


@pytest.fixture
def adapter(fake, client):
    return make(fake.url, client)


# -- chat ---------------------------------------------------------------------------------------


async def test_chat_answers_an_openai_chat_completion_with_usage_from_the_eval_counts(adapter):
    result = await adapter.chat(HELLO, model="llama3.2", timeout=5)

    body = json.loads(result.content)
    assert body["object"] == "chat.completion"
    assert body["model"] == "llama3.2:latest"
    choice = body["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "Hello from llama3.2! You said: why is the sky blue?"}
    assert choice["finish_reason"] == "stop"
    assert result.usage.tokens_in == 9 and result.usage.tokens_out == 10
    assert body["usage"] == {"prompt_tokens": 9, "completion_tokens": 10, "total_tokens": 19}
    assert result.data == body


async def test_chat_translates_messages_images_and_sampling_options_into_ollama_shape(adapter, fake):
    request = {
        "messages": [
            {"role": "developer", "content": "be brief"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
                ],
            },
        ],
        "temperature": 0.2,
        "top_p": 0.9,
        "seed": 7,
        "max_tokens": 50,
        "stop": "END",
    }
    await adapter.chat(request, model="llava", timeout=5)

    sent = fake.requests_to("/api/chat")[-1].json()
    assert sent["stream"] is False
    assert sent["messages"][0] == {"role": "system", "content": "be brief"}
    assert sent["messages"][1] == {"role": "user", "content": "what is this?", "images": [PNG_B64]}
    assert sent["options"] == {"temperature": 0.2, "top_p": 0.9, "seed": 7, "num_predict": 50, "stop": ["END"]}


async def test_a_json_response_format_becomes_ollamas_format_field(adapter, fake):
    result = await adapter.chat({**HELLO, "response_format": {"type": "json_object"}}, model="llama3.2", timeout=5)

    assert fake.requests_to("/api/chat")[-1].json()["format"] == "json"
    assert json.loads(result.data["choices"][0]["message"]["content"])["answer"].startswith("Hello")


async def test_max_tokens_reached_gives_finish_reason_length(adapter):
    result = await adapter.chat({**HELLO, "max_tokens": 3}, model="llama3.2", timeout=5)

    assert result.data["choices"][0]["finish_reason"] == "length"
    assert result.data["choices"][0]["message"]["content"] == "Hello from llama3.2!"
    assert result.usage.tokens_out == 3


async def test_tool_calls_come_back_as_openai_tool_calls_with_json_string_arguments(adapter, fake):
    result = await adapter.chat(
        {"messages": [{"role": "user", "content": "Paris"}], "tools": [WEATHER_TOOL]}, model="llama3.2", timeout=5
    )

    assert fake.requests_to("/api/chat")[-1].json()["tools"] == [WEATHER_TOOL]
    choice = result.data["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    call = choice["message"]["tool_calls"][0]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}


async def test_a_tool_result_is_sent_with_the_tool_name_and_object_arguments(adapter, fake):
    request = {
        "messages": [
            {"role": "user", "content": "Paris"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18 degrees"},
        ],
        "tools": [WEATHER_TOOL],
    }
    result = await adapter.chat(request, model="llama3.2", timeout=5)

    sent = fake.requests_to("/api/chat")[-1].json()["messages"]
    assert sent[1]["tool_calls"] == [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]
    assert sent[2] == {"role": "tool", "content": "18 degrees", "tool_name": "get_weather"}
    assert result.data["choices"][0]["message"]["content"] == "The tool answered: 18 degrees"


async def test_usage_prices_into_cost(adapter):
    result = await adapter.chat(HELLO, model="llama3.2", timeout=5)

    price = Price(input_per_mtok=Decimal("1.00"), output_per_mtok=Decimal("2.00"))
    assert result.usage.cost(price) == Decimal(9) / 1_000_000 + Decimal(20) / 1_000_000


# -- streaming ----------------------------------------------------------------------------------


async def test_a_stream_yields_openai_chunks_and_takes_usage_from_the_done_line(adapter, fake):
    stream = await adapter.chat_stream(HELLO, model="llama3.2", timeout=5)
    chunks = [c async for c in stream]

    assert fake.requests_to("/api/chat")[-1].json()["stream"] is True
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == "Hello from llama3.2! You said: why is the sky blue?"
    assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop", "logprobs": None}
    assert (stream.usage.tokens_in, stream.usage.tokens_out) == (9, 10)
    assert stream.model == "llama3.2:latest"


async def test_a_stream_asked_to_include_usage_ends_with_a_usage_chunk(adapter):
    stream = await adapter.chat_stream(
        {**HELLO, "stream_options": {"include_usage": True}}, model="llama3.2", timeout=5
    )
    chunks = [c async for c in stream]

    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 9, "completion_tokens": 10, "total_tokens": 19}


async def test_a_streamed_tool_call_arrives_as_a_tool_call_delta(adapter):
    stream = await adapter.chat_stream(
        {"messages": [{"role": "user", "content": "Oslo"}], "tools": [WEATHER_TOOL]}, model="llama3.2", timeout=5
    )
    chunks = [c async for c in stream]

    calls = [c["choices"][0]["delta"]["tool_calls"] for c in chunks if c["choices"][0]["delta"].get("tool_calls")]
    assert calls[0][0]["index"] == 0
    assert calls[0][0]["function"] == {"name": "get_weather", "arguments": '{"city": "Oslo"}'}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_closing_a_stream_before_reading_it_gives_the_connection_back(fake):
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(5, pool=1)) as one:
        adapter = make(fake.url, one)
        stream = await adapter.chat_stream(HELLO, model="llama3.2", timeout=5)
        await stream.aclose()
        await stream.aclose()  # twice is safe

        result = await adapter.chat(HELLO, model="llama3.2", timeout=5)
    assert result.data["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("transport", ["httpx", "aiohttp"])
async def test_a_stream_cut_mid_way_raises_a_failure(fake, transport):
    fake.fault(path="/api/chat", cut_stream_after=3)
    async with build_client(transport) as http:
        stream = await make(fake.url, http).chat_stream(HELLO, model="llama3.2", timeout=5)
        got = []

        async def read():
            async for chunk in stream:
                got.append(chunk)

        error = await raised(read())
    assert classify_exception(error).outcome is Outcome.FAILURE
    assert len(got) == 3


async def test_an_error_line_inside_a_stream_raises_a_failure_with_ollamas_message():
    lines = (
        b'{"model":"llama3.2","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":"Hi"},"done":false}\n'
        b'{"error":"an error was encountered while running the model: unexpected EOF"}\n'
    )
    transport = httpx.MockTransport(
        lambda request: httpx.Response(200, content=lines, headers={"Content-Type": "application/x-ndjson"})
    )
    async with httpx.AsyncClient(transport=transport) as http:
        stream = await make("http://ollama.test", http).chat_stream(HELLO, model="llama3.2", timeout=5)
        first = await anext(aiter(stream))
        error = await raised(anext(aiter(stream)))

    assert first["choices"][0]["delta"]["content"] == "Hi"
    assert isinstance(error, UpstreamError)
    assert classify_exception(error).outcome is Outcome.FAILURE
    assert "unexpected EOF" in error.message


async def test_a_stream_that_ends_without_done_is_a_failure():
    line = b'{"model":"llama3.2","message":{"role":"assistant","content":"Hi"},"done":false}\n'
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=line))
    async with httpx.AsyncClient(transport=transport) as http:
        stream = await make("http://ollama.test", http).chat_stream(HELLO, model="llama3.2", timeout=5)
        error = await raised(_drain(stream))

    assert classify_exception(error).reason == "incomplete_stream"
    assert classify_exception(error).outcome is Outcome.FAILURE


async def _drain(stream):
    return [c async for c in stream]


# -- embeddings ---------------------------------------------------------------------------------


async def test_embeddings_answer_in_openai_shape_with_prompt_tokens(adapter, fake):
    result = await adapter.embeddings({"input": ["the sky", "the grass is green"]}, model="nomic-embed-text", timeout=5)

    assert fake.requests_to("/api/embed")[-1].json() == {
        "model": "nomic-embed-text",
        "input": ["the sky", "the grass is green"],
    }
    body = result.data
    assert body["object"] == "list"
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert len(body["data"][0]["embedding"]) == 768
    assert body["usage"] == {"prompt_tokens": 6, "total_tokens": 6}
    assert result.usage.tokens_in == 6


async def test_embeddings_in_base64_decode_to_the_same_floats(adapter):
    plain = await adapter.embeddings({"input": "hi", "dimensions": 4}, model="nomic-embed-text", timeout=5)
    packed = await adapter.embeddings(
        {"input": "hi", "dimensions": 4, "encoding_format": "base64"}, model="nomic-embed-text", timeout=5
    )

    floats = struct.unpack("<4f", base64.b64decode(packed.data["data"][0]["embedding"]))
    assert floats == pytest.approx(plain.data["data"][0]["embedding"], rel=1e-6)


async def test_token_array_inputs_are_refused_as_a_caller_error_without_a_call(adapter, fake):
    error = await raised(adapter.embeddings({"input": [[1, 2, 3]]}, model="nomic-embed-text", timeout=5))

    assert classify_exception(error).outcome is Outcome.CALLER_ERROR
    assert error.status == 400
    assert fake.requests_to("/api/embed") == []


# -- management ---------------------------------------------------------------------------------


async def test_version_and_probe_report_the_server_version_and_model_count(adapter):
    assert await adapter.version(timeout=5) == "0.12.6"
    assert await adapter.probe(timeout=5) == {"version": "0.12.6", "models": 3, "loaded": []}


async def test_the_probe_says_which_models_are_loaded_in_memory(adapter):
    await adapter.chat({"messages": [{"role": "user", "content": "hi"}]}, model="llama3.2", timeout=5)
    await adapter.embeddings({"input": "hi"}, model="nomic-embed-text", timeout=5)
    details = await adapter.probe(timeout=5)
    assert [m["name"] for m in details["loaded"]] == ["llama3.2:latest", "nomic-embed-text:latest"]
    assert all(m["size_vram"] > 0 for m in details["loaded"])  # the fake holds them all on the GPU


async def test_a_server_too_old_for_api_ps_is_probed_without_loaded_models(client):
    with FakeOllama(has_ps=False) as old:
        details = await make(old.url, client).probe(timeout=5)
    assert details == {"version": "0.12.6", "models": 3}


async def test_a_deep_probe_makes_a_one_token_chat(adapter, fake):
    details = await adapter.probe(timeout=5, deep=True, model="llama3.2")

    assert fake.requests_to("/api/chat")[-1].json()["options"] == {"num_predict": 1}
    assert details["tokens"] > 0


async def test_listed_models_carry_capabilities_and_context_window_from_show(adapter):
    models = {m.name: m for m in await adapter.list_models(timeout=5)}

    assert models["llama3.2:latest"].capabilities == frozenset({"chat"})
    assert models["llama3.2:latest"].context_window == 131072
    assert models["nomic-embed-text:latest"].capabilities == frozenset({"embeddings"})
    assert models["nomic-embed-text:latest"].context_window == 2048
    assert models["llava:latest"].capabilities == frozenset({"chat", "vision"})
    assert models["llava:latest"].details["num_ctx"] == 4096
    assert models["llava:latest"].details["parameter_size"] == "7B"


async def test_without_show_capabilities_the_family_decides(client):
    with FakeOllama(show_capabilities=False) as old:
        models = {m.name: m for m in await make(old.url, client).list_models(timeout=5)}

    assert models["nomic-embed-text:latest"].capabilities == frozenset({"embeddings"})
    assert models["llava:latest"].capabilities == frozenset({"chat", "vision"})
    assert models["llama3.2:latest"].capabilities == frozenset({"chat"})


async def test_a_model_whose_show_fails_is_still_listed_with_the_error(adapter, fake):
    fake.fault(path="/api/show", status=500, times=1)

    models = await adapter.list_models(timeout=5)

    assert len(models) == 3
    failed = [m for m in models if "show_error" in m.details]
    assert len(failed) == 1 and failed[0].context_window is None


async def test_show_returns_ollamas_model_info(adapter):
    shown = await adapter.show("llama3.2", timeout=5)

    assert shown["model_info"]["llama.context_length"] == 131072
    assert shown["details"]["family"] == "llama"


async def test_pull_streams_progress_to_success_and_the_model_is_then_listed(adapter):
    progress = [p async for p in adapter.pull("qwen2.5:0.5b", timeout=5)]

    assert progress[0]["status"] == "pulling manifest"
    layer = [p for p in progress if p["status"].startswith("pulling ") and p["digest"]]
    assert layer[0]["digest"].startswith("sha256:") and layer[0]["total"] == 397_821_319
    percents = [p["percent"] for p in progress]
    assert percents == sorted(percents)
    assert [p["status"] for p in progress[-3:]] == ["verifying sha256 digest", "writing manifest", "success"]
    assert progress[-1]["percent"] == 100.0
    assert "qwen2.5:0.5b" in {m.name for m in await adapter.list_models(timeout=5)}


async def test_pulling_an_unknown_model_raises_the_error_line_as_a_caller_error(adapter):
    seen = []

    async def pull():
        async for p in adapter.pull("no-such-model", timeout=5):
            seen.append(p["status"])

    error = await raised(pull())

    assert seen == ["pulling manifest"]
    assert classify_exception(error).outcome is Outcome.CALLER_ERROR
    assert error.message == "pull model manifest: file does not exist"


# -- errors -------------------------------------------------------------------------------------


async def test_an_unknown_model_is_a_caller_error_that_keeps_ollamas_body(adapter):
    error = await raised(adapter.chat(HELLO, model="mistral", timeout=5))

    assert classify_exception(error).outcome is Outcome.CALLER_ERROR
    assert error.status == 404
    assert json.loads(error.body) == {"error": 'model "mistral" not found, try pulling it first'}
    assert error.message == 'model "mistral" not found, try pulling it first'


async def test_chat_with_an_embedding_model_is_a_caller_error(adapter):
    error = await raised(adapter.chat(HELLO, model="nomic-embed-text", timeout=5))

    assert error.status == 400
    assert classify_exception(error).outcome is Outcome.CALLER_ERROR


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_failures(adapter, fake, status):
    fake.fault(path="/api/chat", status=status)

    error = await raised(adapter.chat(HELLO, model="llama3.2", timeout=5))

    assert classify_exception(error).outcome is Outcome.FAILURE
    assert error.status == status
    assert "error" in json.loads(error.body)


async def test_a_429_from_a_proxy_is_rate_limited_with_its_retry_after(adapter, fake):
    fake.fault(path="/api/chat", status=429, retry_after="7")

    error = await raised(adapter.chat(HELLO, model="llama3.2", timeout=5))

    classification = classify_exception(error)
    assert classification.outcome is Outcome.RATE_LIMITED
    assert classification.retry_after == 7


async def test_a_malformed_answer_is_a_failure(adapter, fake):
    fake.fault(path="/api/chat", body="<html>bad gateway</html>")

    error = await raised(adapter.chat(HELLO, model="llama3.2", timeout=5))

    assert classify_exception(error).outcome is Outcome.FAILURE
    assert classify_exception(error).reason == "malformed_response"


async def test_a_dropped_connection_is_a_failure(adapter, fake):
    fake.fault(path="/api/chat", drop=True)

    error = await raised(adapter.chat(HELLO, model="llama3.2", timeout=5))

    assert classify_exception(error).outcome is Outcome.FAILURE


async def test_a_hanging_server_times_out_as_a_failure(adapter, fake):
    fake.fault(path="/api/chat", hang=True)

    error = await raised(adapter.chat(HELLO, model="llama3.2", timeout=0.2))

    assert classify_exception(error).outcome is Outcome.FAILURE
    assert classify_exception(error).reason == "read_timeout"


async def test_a_refused_connection_is_a_failure(client):
    error = await raised(make(f"http://127.0.0.1:{free_port()}", client).chat(HELLO, model="llama3.2", timeout=2))

    assert classify_exception(error).outcome is Outcome.FAILURE
    assert classify_exception(error).reason == "connect_error"


async def test_an_api_key_is_sent_as_a_bearer_token_and_a_wrong_one_is_a_caller_error(client):
    with FakeOllama(api_key="s3cret") as guarded:
        ok = await make(guarded.url, client, api_key="s3cret").version(timeout=5)
        error = await raised(make(guarded.url, client, api_key="wrong").version(timeout=5))

    assert ok == "0.12.6"
    assert error.status == 401
    assert classify_exception(error).outcome is Outcome.CALLER_ERROR

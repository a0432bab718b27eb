"""OpenAIAdapter against FakeOpenAI over real HTTP: pass-through, streams, every error class."""

from __future__ import annotations

import base64
import email.utils
import json
import time
from decimal import Decimal

import httpx
import pytest

from providers.adapters import adapter_class
from providers.adapters.base import Price, ProviderConfig, Usage
from providers.adapters.client import build_client
from providers.adapters.openai import OpenAIAdapter, infer_capabilities
from providers.engine.errors import UpstreamError
from providers.engine.outcome import Outcome, classify_exception
from tests.fakes.base import free_port
from tests.fakes.openai import API_KEY, FakeOpenAI

HELLO = {"messages": [{"role": "user", "content": "hello world"}]}
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
CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI() as server:
        yield server


# Both transports the gateway can run on: httpx's own pool and httpx over aiohttp.
@pytest.fixture(params=["httpx", "aiohttp"])
async def http(request):
    client = build_client(request.param)
    yield client
    await client.aclose()


def make(base_url: str, client: httpx.AsyncClient, *, api_key: str | None = API_KEY, **kw) -> OpenAIAdapter:
    config = ProviderConfig(name="openai-test", kind="openai", base_url=base_url, api_key=api_key, **kw)
    return OpenAIAdapter(config, client)


@pytest.fixture
def adapter(fake, http):
    return make(fake.url + "/v1", http)


async def failure_of(awaitable) -> BaseException:
    with pytest.raises(Exception) as info:
        await awaitable
    return info.value


async def drain(stream) -> list[dict]:
    return [chunk async for chunk in stream]


def mock_client(handler) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


# -- chat ---------------------------------------------------------------------------------------


def test_the_registry_names_this_adapter_for_kind_openai():
    assert adapter_class("openai") is OpenAIAdapter


async def test_chat_returns_the_providers_own_bytes_with_data_and_usage(adapter):
    result = await adapter.chat(HELLO, model="gpt-4o-mini", timeout=5)

    # aiohttp's json_response writes ", " and ": "; a re-serialisation would be compact.
    assert b'"object": "chat.completion"' in result.content
    assert result.data == json.loads(result.content)
    assert result.data["choices"][0]["message"]["content"] == "Echo: hello world"
    assert result.usage.tokens_in == 2 and result.usage.tokens_out == 3
    assert result.model == "gpt-4o-mini" and result.media_type == "application/json"


async def test_chat_sends_the_request_through_with_only_the_model_replaced(adapter, fake):
    request = {
        "model": "my-route",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        "temperature": 0.2,
        "response_format": {"type": "json_object"},
        "tools": [WEATHER_TOOL],
        "tool_choice": "none",
        "seed": 7,
        "stream": False,
    }

    await adapter.chat(request, model="gpt-4o-mini", timeout=5)

    sent = fake.requests_to(CHAT)[0]
    expected = {k: v for k, v in request.items() if k != "stream"} | {"model": "gpt-4o-mini"}
    assert sent.json() == expected
    assert sent.headers["Authorization"] == f"Bearer {API_KEY}"


async def test_a_server_without_a_key_gets_no_authorization_header(http):
    with FakeOpenAI(api_key=None, models=None) as llama_cpp:
        adapter = make(llama_cpp.url + "/v1", http, api_key=None)
        result = await adapter.chat(HELLO, model="anything-goes.gguf", timeout=5)

        assert result.data["choices"][0]["message"]["content"] == "Echo: hello world"
        assert "Authorization" not in llama_cpp.requests_to(CHAT)[0].headers


async def test_a_tool_call_comes_back_and_its_result_goes_up_unchanged(adapter, fake):
    ask = {
        "messages": [{"role": "user", "content": 'call get_weather {"city": "Paris"}'}],
        "tools": [WEATHER_TOOL],
    }
    first = await adapter.chat(ask, model="gpt-4o-mini", timeout=5)

    message = first.data["choices"][0]["message"]
    assert first.data["choices"][0]["finish_reason"] == "tool_calls"
    call = message["tool_calls"][0]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}

    follow_up = {
        "messages": [
            *ask["messages"],
            message,
            {"role": "tool", "tool_call_id": call["id"], "content": "sunny, 21C"},
        ],
        "tools": [WEATHER_TOOL],
    }
    second = await adapter.chat(follow_up, model="gpt-4o-mini", timeout=5)

    assert second.data["choices"][0]["message"]["content"] == "Tool result: sunny, 21C"
    assert fake.requests_to(CHAT)[1].json()["messages"][1]["tool_calls"] == [call]


async def test_usage_prices_into_a_cost(adapter):
    result = await adapter.chat(HELLO, model="gpt-4o-mini", timeout=5)
    price = Price(input_per_mtok=Decimal("0.15"), output_per_mtok=Decimal("0.60"))

    assert result.usage.cost(price) == Decimal("0.15") * 2 / 10**6 + Decimal("0.60") * 3 / 10**6
    assert Usage().cost(None) == Decimal(0)


# -- streaming ----------------------------------------------------------------------------------


async def test_a_stream_yields_chunks_and_captures_usage_it_asked_for_itself(adapter, fake):
    stream = await adapter.chat_stream(HELLO, model="gpt-4o-mini", timeout=5)
    chunks = await drain(stream)

    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == "Echo: hello world"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    # The caller did not ask for the usage chunk, so it is not forwarded, but it was read.
    assert all(c["choices"] for c in chunks) and all("usage" not in c for c in chunks)
    assert (stream.usage.tokens_in, stream.usage.tokens_out) == (2, 3)
    sent = fake.requests_to(CHAT)[0].json()
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


async def test_a_stream_keeps_the_callers_stream_options_and_forwards_the_usage_chunk(adapter, fake):
    request = {**HELLO, "stream_options": {"include_usage": True}}
    stream = await adapter.chat_stream(request, model="gpt-4o-mini", timeout=5)
    chunks = await drain(stream)

    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 5
    assert stream.usage.tokens_out == 3
    assert fake.requests_to(CHAT)[0].json()["stream_options"] == {"include_usage": True}


async def test_a_caller_that_turns_usage_off_is_obeyed(adapter, fake):
    request = {**HELLO, "stream_options": {"include_usage": False}}
    stream = await adapter.chat_stream(request, model="gpt-4o-mini", timeout=5)
    await drain(stream)

    assert fake.requests_to(CHAT)[0].json()["stream_options"] == {"include_usage": False}
    assert stream.usage.tokens_in == 0


async def test_the_stream_include_usage_option_off_sends_no_stream_options(fake, http):
    adapter = make(fake.url + "/v1", http, options={"stream_include_usage": False})
    await drain(await adapter.chat_stream(HELLO, model="gpt-4o-mini", timeout=5))

    assert "stream_options" not in fake.requests_to(CHAT)[0].json()


async def test_a_streamed_tool_call_arrives_as_argument_fragments(adapter):
    ask = {
        "messages": [{"role": "user", "content": 'call get_weather {"city": "Oslo"}'}],
        "tools": [WEATHER_TOOL],
    }
    chunks = await drain(await adapter.chat_stream(ask, model="gpt-4o-mini", timeout=5))

    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if c["choices"][0]["delta"].get("tool_calls")]
    assert calls[0]["function"]["name"] == "get_weather" and calls[0]["id"].startswith("call_")
    assert len(calls) > 2
    assert json.loads("".join(c["function"]["arguments"] for c in calls)) == {"city": "Oslo"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_a_stream_cut_after_three_chunks_raises_a_failure_while_iterating(adapter, fake):
    fake.fault(path=CHAT, cut_stream_after=3)
    stream = await adapter.chat_stream(HELLO, model="gpt-4o-mini", timeout=5)
    received = []

    with pytest.raises(Exception) as info:
        async for chunk in stream:
            received.append(chunk)

    assert len(received) == 3
    assert isinstance(info.value, httpx.TransportError | UpstreamError)
    assert classify_exception(info.value).outcome == Outcome.FAILURE
    await stream.aclose()
    await stream.aclose()  # safe more than once


async def test_a_stream_that_ends_without_done_is_stream_broken():
    def handler(request):
        body = b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    async with mock_client(handler) as client:
        stream = await make("http://upstream/v1", client).chat_stream(HELLO, model="m", timeout=5)
        error = await failure_of(drain(stream))

    assert isinstance(error, UpstreamError)
    assert error.outcome == Outcome.FAILURE and error.classification.reason == "stream_broken"


async def test_an_error_chunk_mid_stream_raises_a_failure(adapter, fake):
    fake.fault(path=CHAT, error_code="server_error")
    stream = await adapter.chat_stream(HELLO, model="gpt-4o-mini", timeout=5)

    error = await failure_of(drain(stream))

    assert isinstance(error, UpstreamError) and error.outcome == Outcome.FAILURE
    assert error.classification.reason == "stream_error"


async def test_an_unreadable_chunk_is_a_malformed_response_failure():
    def handler(request):
        body = b'data: {"choices": [{"index": 0, "del\n\ndata: [DONE]\n\n'
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    async with mock_client(handler) as client:
        stream = await make("http://upstream/v1", client).chat_stream(HELLO, model="m", timeout=5)
        error = await failure_of(drain(stream))

    assert isinstance(error, UpstreamError) and error.outcome == Outcome.FAILURE
    assert error.classification.reason == "malformed_response"


class TrackedBody(httpx.AsyncByteStream):
    """A response body that records whether the adapter released it."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.closed = False

    async def __aiter__(self):
        yield self.data

    async def aclose(self) -> None:
        self.closed = True


async def test_closing_a_stream_before_reading_it_releases_the_connection():
    body = TrackedBody(b"data: [DONE]\n\n")

    def handler(request):
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=body)

    async with mock_client(handler) as client:
        stream = await make("http://upstream/v1", client).chat_stream(HELLO, model="m", timeout=5)
        assert not body.closed
        await stream.aclose()

    assert body.closed


async def test_sse_comments_and_multi_line_data_are_read_as_sse():
    def handler(request):
        body = (
            b": OPENROUTER PROCESSING\n\n"
            b'data: {"choices":[{"index":0,\ndata: "delta":{"content":"hi"}}]}\n\n'
            b"data: [DONE]\n\n"
        )
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    async with mock_client(handler) as client:
        stream = await make("http://upstream/v1", client).chat_stream(HELLO, model="m", timeout=5)
        chunks = await drain(stream)

    assert chunks == [{"choices": [{"index": 0, "delta": {"content": "hi"}}]}]


async def test_a_stream_refused_with_429_raises_before_iteration(adapter, fake):
    fake.fault(path=CHAT, status=429, retry_after="3")

    error = await failure_of(adapter.chat_stream(HELLO, model="gpt-4o-mini", timeout=5))

    assert isinstance(error, UpstreamError) and error.outcome == Outcome.RATE_LIMITED
    assert error.classification.retry_after == 3.0
    assert b"rate_limit_exceeded" in error.body


# -- errors (resilience.md §2) ------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504, 529])
async def test_server_errors_are_failures(adapter, fake, status):
    fake.fault(path=CHAT, status=status)

    error = await failure_of(adapter.chat(HELLO, model="gpt-4o-mini", timeout=5))

    assert isinstance(error, UpstreamError)
    assert (error.status, error.outcome) == (status, Outcome.FAILURE)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, None),
        (401, "invalid_api_key"),
        (403, "unsupported_country_region_territory"),
        (404, "model_not_found"),
        (413, None),
        (422, None),
    ],
)
async def test_caller_errors_keep_openais_own_body(adapter, fake, status, code):
    fake.fault(path=CHAT, status=status)

    error = await failure_of(adapter.chat(HELLO, model="gpt-4o-mini", timeout=5))

    assert isinstance(error, UpstreamError)
    assert (error.status, error.outcome) == (status, Outcome.CALLER_ERROR)
    body = json.loads(error.body)
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == code
    assert error.media_type == "application/json"
    assert error.headers["x-request-id"].startswith("req_")


async def test_a_wrong_key_gets_openais_real_401(fake, http):
    adapter = make(fake.url + "/v1", http, api_key="sk-not-the-right-key")

    error = await failure_of(adapter.chat(HELLO, model="gpt-4o-mini", timeout=5))

    assert isinstance(error, UpstreamError) and error.outcome == Outcome.CALLER_ERROR
    assert error.status == 401 and json.loads(error.body)["error"]["code"] == "invalid_api_key"
    assert error.message.startswith("Incorrect API key provided: sk-")


async def test_an_unknown_model_is_a_404_caller_error(adapter):
    error = await failure_of(adapter.chat(HELLO, model="gpt-9", timeout=5))

    assert isinstance(error, UpstreamError) and error.status == 404
    assert error.outcome == Outcome.CALLER_ERROR
    assert error.message == "The model `gpt-9` does not exist or you do not have access to it."


async def test_a_429_with_retry_after_seconds_is_rate_limited(adapter, fake):
    fake.fault(path=CHAT, status=429, retry_after="7")

    error = await failure_of(adapter.chat(HELLO, model="gpt-4o-mini", timeout=5))

    assert error.outcome == Outcome.RATE_LIMITED and error.classification.retry_after == 7.0


async def test_a_429_with_an_http_date_is_rate_limited_until_that_date(adapter, fake):
    date = int(time.time()) + 30  # an HTTP date has whole seconds
    fake.fault(path=CHAT, status=429, retry_after=email.utils.formatdate(date, usegmt=True))

    before = time.time()
    error = await failure_of(adapter.chat(HELLO, model="gpt-4o-mini", timeout=5))
    after = time.time()

    assert error.outcome == Outcome.RATE_LIMITED
    # seconds from the moment of the answer, which lies between `before` and `after`
    assert date - after <= error.classification.retry_after <= date - before


async def test_retry_after_ms_wins_over_retry_after(adapter, fake):
    fake.fault(path=CHAT, status=429, retry_after="9", headers={"retry-after-ms": "1500"})

    error = await failure_of(adapter.chat(HELLO, model="gpt-4o-mini", timeout=5))

    assert error.outcome == Outcome.RATE_LIMITED and error.classification.retry_after == 1.5


async def test_a_plain_429_waits_for_the_exhausted_ratelimit_reset(adapter, fake):
    fake.fault(path=CHAT, status=429, headers={"x-ratelimit-reset-requests": "6m0s"})

    error = await failure_of(adapter.chat(HELLO, model="gpt-4o-mini", timeout=5))

    assert error.headers["x-ratelimit-remaining-requests"] == "0"
    assert error.outcome == Outcome.RATE_LIMITED and error.classification.retry_after == 360.0


async def test_insufficient_quota_is_exhausted_not_rate_limited(adapter, fake):
    fake.fault(path=CHAT, status=429, error_code="insufficient_quota")

    error = await failure_of(adapter.chat(HELLO, model="gpt-4o-mini", timeout=5))

    assert error.outcome == Outcome.EXHAUSTED
    assert error.classification.reason == "insufficient_quota"
    assert json.loads(error.body)["error"]["type"] == "insufficient_quota"


async def test_a_refused_connection_is_a_transport_error_classified_failure(http):
    adapter = make(f"http://127.0.0.1:{free_port()}/v1", http)

    error = await failure_of(adapter.chat(HELLO, model="gpt-4o-mini", timeout=2))

    # httpx says ConnectError; httpx-aiohttp maps aiohttp's connector error to ConnectTimeout.
    assert isinstance(error, httpx.ConnectError | httpx.ConnectTimeout)
    assert classify_exception(error).outcome == Outcome.FAILURE


async def test_a_refused_connection_over_httpx_is_a_connect_error():
    async with httpx.AsyncClient() as client:
        adapter = make(f"http://127.0.0.1:{free_port()}/v1", client)
        error = await failure_of(adapter.chat(HELLO, model="gpt-4o-mini", timeout=2))

    assert isinstance(error, httpx.ConnectError)
    assert classify_exception(error).reason == "connect_error"


async def test_a_hung_upstream_times_out_as_a_failure(adapter, fake):
    fake.fault(path=CHAT, hang=True)

    error = await failure_of(adapter.chat(HELLO, model="gpt-4o-mini", timeout=0.3))

    assert isinstance(error, httpx.TimeoutException)
    assert classify_exception(error).outcome == Outcome.FAILURE


async def test_malformed_json_in_a_200_is_a_malformed_response_failure(adapter, fake):
    fake.fault(path=CHAT, body='{"id": "chatcmpl-1", "choices": [')

    error = await failure_of(adapter.chat(HELLO, model="gpt-4o-mini", timeout=5))

    assert isinstance(error, UpstreamError)
    assert (error.outcome, error.classification.reason) == (Outcome.FAILURE, "malformed_response")
    assert error.body == b'{"id": "chatcmpl-1", "choices": ['


async def test_an_error_inside_a_200_is_raised_with_its_own_status():
    def handler(request):
        return httpx.Response(200, json={"error": {"code": 502, "message": "provider returned error"}})

    async with mock_client(handler) as client:
        error = await failure_of(make("http://upstream/v1", client).chat(HELLO, model="m", timeout=5))

    assert isinstance(error, UpstreamError)
    assert (error.status, error.outcome, error.message) == (
        502,
        Outcome.FAILURE,
        "provider returned error",
    )


# -- embeddings, images, audio ------------------------------------------------------------------


async def test_embeddings_come_back_as_sent_with_token_usage(adapter, fake):
    request = {"model": "route", "input": ["one two", "three"], "dimensions": 8}
    result = await adapter.embeddings(request, model="text-embedding-3-small", timeout=5)

    assert [len(item["embedding"]) for item in result.data["data"]] == [8, 8]
    assert result.usage.tokens_in == 3
    assert fake.requests_to("/v1/embeddings")[0].json() == {
        **request,
        "model": "text-embedding-3-small",
    }


async def test_base64_embeddings_pass_through_undecoded(adapter):
    request = {"input": "hello", "encoding_format": "base64"}
    result = await adapter.embeddings(request, model="text-embedding-3-small", timeout=5)

    raw = base64.b64decode(result.data["data"][0]["embedding"])
    assert len(raw) == 1536 * 4


async def test_images_count_as_images_in_usage(adapter):
    result = await adapter.images(
        {"prompt": "a red fox", "n": 2, "response_format": "b64_json"}, model="dall-e-2", timeout=5
    )

    assert result.usage.images == 2
    assert base64.b64decode(result.data["data"][0]["b64_json"]).startswith(b"\x89PNG")


async def test_image_urls_pass_through(adapter, http):
    result = await adapter.images({"prompt": "a red fox"}, model="dall-e-3", timeout=5)

    url = result.data["data"][0]["url"]
    assert result.data["data"][0]["revised_prompt"] == "a red fox"
    assert (await http.get(url)).content.startswith(b"\x89PNG")


async def test_gpt_image_usage_includes_tokens(adapter):
    result = await adapter.images({"prompt": "a red fox"}, model="gpt-image-1", timeout=5)

    assert result.usage.images == 1 and result.usage.tokens_in == 3 and result.usage.tokens_out == 272


async def test_speech_returns_audio_bytes_with_the_upstream_content_type(adapter):
    request = {"input": "hello there", "voice": "alloy"}
    mp3 = await adapter.speech(request, model="tts-1", timeout=5)
    wav = await adapter.speech({**request, "response_format": "wav"}, model="tts-1", timeout=5)

    assert mp3.media_type == "audio/mpeg" and mp3.content.startswith(b"ID3")
    assert mp3.usage.characters == len("hello there") and mp3.data is None
    assert wav.media_type == "audio/wav" and wav.content[:4] == b"RIFF"


async def test_transcription_uploads_multipart_and_reads_the_text(adapter, fake):
    result = await adapter.transcription(
        {"language": "en", "temperature": 0},
        b"testing one two",
        "note.txt",
        model="whisper-1",
        timeout=5,
    )

    assert result.data["text"] == "testing one two"
    assert result.usage.audio_seconds == 2.0
    sent = fake.requests_to("/v1/audio/transcriptions")[0]
    assert sent.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert b'name="language"' in sent.body and b'filename="note.txt"' in sent.body


async def test_a_text_transcription_keeps_its_media_type(adapter):
    result = await adapter.transcription(
        {"response_format": "text"}, b"plain words", "a.wav", model="whisper-1", timeout=5
    )

    assert (result.media_type, result.content, result.data) == (
        "text/plain",
        b"plain words\n",
        None,
    )


async def test_a_caller_error_on_speech_keeps_the_body(adapter):
    error = await failure_of(adapter.speech({"input": "hi"}, model="tts-1", timeout=5))

    assert isinstance(error, UpstreamError) and error.outcome == Outcome.CALLER_ERROR
    assert json.loads(error.body)["error"]["param"] == "voice"


@pytest.mark.parametrize(
    ("path", "call"),
    [
        (
            "/v1/embeddings",
            lambda a: a.embeddings({"input": "x"}, model="text-embedding-3-small", timeout=5),
        ),
        (
            "/v1/images/generations",
            lambda a: a.images({"prompt": "x"}, model="dall-e-2", timeout=5),
        ),
        (
            "/v1/audio/speech",
            lambda a: a.speech({"input": "x", "voice": "alloy"}, model="tts-1", timeout=5),
        ),
        (
            "/v1/audio/transcriptions",
            lambda a: a.transcription({}, b"x", "a.wav", model="whisper-1", timeout=5),
        ),
        ("/v1/models", lambda a: a.list_models(timeout=5)),
    ],
)
async def test_faults_reach_every_endpoint(adapter, fake, path, call):
    fake.fault(path=path, status=503, times=1)

    error = await failure_of(call(adapter))
    await call(adapter)  # the fault was used up; the endpoint answers again

    assert isinstance(error, UpstreamError) and (error.status, error.outcome) == (
        503,
        Outcome.FAILURE,
    )
    assert json.loads(error.body)["error"]["type"] == "server_error"


# -- discovery and probes -----------------------------------------------------------------------


async def test_list_models_infers_capabilities_from_ids(adapter):
    models = {m.name: m for m in await adapter.list_models(timeout=5)}

    assert models["gpt-4o-mini"].capabilities == {"chat"}
    assert models["text-embedding-3-small"].capabilities == {"embeddings"}
    assert models["dall-e-3"].capabilities == {"image"}
    assert models["gpt-image-1"].capabilities == {"image"}
    assert models["tts-1"].capabilities == {"tts"}
    assert models["gpt-4o-mini-tts"].capabilities == {"tts"}
    assert models["whisper-1"].capabilities == {"stt"}
    assert models["gpt-4o-transcribe"].capabilities == {"stt"}
    assert models["gpt-4o-mini"].details["owned_by"] == "openai"


@pytest.mark.parametrize(
    ("model_id", "capabilities"),
    [
        ("nomic-embed-text", {"embeddings"}),
        ("BAAI/bge-m3", {"embeddings"}),
        ("stable-diffusion-xl", {"image"}),
        ("black-forest-labs/FLUX.1-schnell", {"image"}),
        ("omni-moderation-latest", set()),
        ("meta-llama/Llama-3.1-8B-Instruct", {"chat"}),
    ],
)
def test_capabilities_are_guessed_from_common_model_names(model_id, capabilities):
    assert infer_capabilities(model_id) == capabilities


async def test_context_windows_are_read_from_each_servers_own_field():
    listing = {
        "object": "list",
        "data": [
            {"id": "openrouter/model", "context_length": 128000},
            {"id": "vllm-model", "object": "model", "max_model_len": 32768},
            {"id": "llama.gguf", "meta": {"n_ctx_train": 8192, "n_params": 8000000000}},
            {"id": "lmstudio-model", "max_context_length": 4096},
            {"id": "groq-model", "context_window": 131072},
            {"id": "plain-model"},
        ],
    }

    async with mock_client(lambda request: httpx.Response(200, json=listing)) as client:
        models = await make("http://upstream/v1", client).list_models(timeout=5)

    assert [m.context_window for m in models] == [128000, 32768, 8192, 4096, 131072, None]
    assert models[2].details["meta"]["n_params"] == 8000000000


async def test_a_probe_lists_models_by_default(adapter, fake):
    details = await adapter.probe(timeout=5)

    assert details == {"models": len(fake.models)}
    assert [r.path for r in fake.requests] == ["/v1/models"]


async def test_a_deep_probe_sends_a_one_token_chat(adapter, fake):
    details = await adapter.probe(timeout=5, deep=True, model="gpt-4o-mini")

    assert details["finish_reason"] == "length" and details["tokens_out"] == 1
    assert fake.requests_to(CHAT)[0].json() == {
        "messages": [{"role": "user", "content": "ping"}],
        "max_tokens": 1,
        "model": "gpt-4o-mini",
    }


async def test_a_deep_probe_retries_with_max_completion_tokens_when_told_to(adapter, fake):
    refusal = {
        "error": {
            "message": "Unsupported parameter: 'max_tokens' is not supported with this model. "
            "Use 'max_completion_tokens' instead.",
            "type": "invalid_request_error",
            "param": "max_tokens",
            "code": "unsupported_parameter",
        }
    }
    fake.fault(path=CHAT, status=400, body=json.dumps(refusal), times=1)

    details = await adapter.probe(timeout=5, deep=True, model="o3-mini")

    assert details["tokens_out"] == 1
    assert fake.requests_to(CHAT)[1].json()["max_completion_tokens"] == 1


async def test_a_failing_probe_raises(adapter, fake):
    fake.fault(path="/v1/models", status=503)

    error = await failure_of(adapter.probe(timeout=5))

    assert isinstance(error, UpstreamError) and error.outcome == Outcome.FAILURE

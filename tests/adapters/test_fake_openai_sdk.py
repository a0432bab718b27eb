"""FakeOpenAI is faithful: the official `openai` SDK drives it without noticing it is a fake."""

from __future__ import annotations

import math

import httpx
import openai
import pytest
from pydantic import BaseModel

from tests.fakes.openai import API_KEY, FakeOpenAI

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
HELLO = [{"role": "user", "content": "hello world"}]


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def sdk(fake):
    with openai.OpenAI(base_url=fake.url + "/v1", api_key=API_KEY, max_retries=0) as client:
        yield client


@pytest.fixture
async def async_sdk(fake):
    async with openai.AsyncOpenAI(base_url=fake.url + "/v1", api_key=API_KEY, max_retries=0) as client:
        yield client


# -- chat ---------------------------------------------------------------------------------------


def test_a_chat_completion_parses_into_the_sdks_model(sdk):
    completion = sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO)

    assert completion.choices[0].message.content == "Echo: hello world"
    assert completion.choices[0].finish_reason == "stop"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (2, 3)
    assert completion.id.startswith("chatcmpl-") and completion._request_id.startswith("req_")


def test_raw_responses_carry_openais_headers(sdk):
    raw = sdk.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO)

    assert raw.headers["openai-version"] == "2020-10-01"
    assert int(raw.headers["x-ratelimit-remaining-requests"]) > 0
    assert raw.parse().object == "chat.completion"


def test_a_raw_stream_with_usage_ends_with_the_usage_chunk(sdk):
    chunks = list(
        sdk.chat.completions.create(
            model="gpt-4o-mini", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
    )

    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: hello world"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 5
    assert all(c.usage is None for c in chunks[:-1])


def test_the_sdks_stream_helper_assembles_the_final_completion(sdk):
    with sdk.chat.completions.stream(model="gpt-4o-mini", messages=HELLO) as stream:
        deltas = [event.delta for event in stream if event.type == "content.delta"]
        final = stream.get_final_completion()

    assert "".join(deltas) == "Echo: hello world"
    assert final.choices[0].message.content == "Echo: hello world"


def test_a_tool_call_parses_with_its_arguments(sdk):
    completion = sdk.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": 'call get_weather {"city": "Paris"}'}],
        tools=[WEATHER_TOOL],
    )

    call = completion.choices[0].message.tool_calls[0]
    assert completion.choices[0].finish_reason == "tool_calls"
    assert (call.function.name, call.function.arguments) == ("get_weather", '{"city": "Paris"}')


def test_the_stream_helper_assembles_a_streamed_tool_call(sdk):
    with sdk.chat.completions.stream(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "what is the weather?"}],
        tools=[WEATHER_TOOL],
        tool_choice="required",
    ) as stream:
        final = stream.get_final_completion()

    call = final.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and call.function.arguments == '{"city": "sample"}'


def test_structured_output_parses_into_the_callers_model(sdk):
    class Weather(BaseModel):
        city: str
        degrees: int

    completion = sdk.chat.completions.parse(model="gpt-4o-mini", messages=HELLO, response_format=Weather)

    assert completion.choices[0].message.parsed == Weather(city="sample", degrees=1)


async def test_the_async_client_streams_too(async_sdk):
    stream = await async_sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    assert text == "Echo: hello world"


# -- other endpoints ----------------------------------------------------------------------------


def test_embeddings_decode_from_the_sdks_default_base64(sdk, fake):
    response = sdk.embeddings.create(model="text-embedding-3-small", input=["one", "two words"])

    assert fake.requests_to("/v1/embeddings")[0].json()["encoding_format"] == "base64"
    vectors = [item.embedding for item in response.data]
    assert [len(v) for v in vectors] == [1536, 1536]
    assert math.isclose(sum(x * x for x in vectors[0]), 1.0, rel_tol=1e-4)
    assert response.usage.prompt_tokens == 3


def test_float_embeddings_are_deterministic(sdk):
    first = sdk.embeddings.create(model="text-embedding-3-large", input="same", encoding_format="float", dimensions=4)
    second = sdk.embeddings.create(model="text-embedding-3-large", input="same", encoding_format="float", dimensions=4)

    assert first.data[0].embedding == second.data[0].embedding and len(first.data[0].embedding) == 4


def test_images_come_as_b64_json_or_urls(sdk):
    b64 = sdk.images.generate(model="gpt-image-1", prompt="a lighthouse")
    url = sdk.images.generate(model="dall-e-3", prompt="a lighthouse", response_format="url")

    assert b64.data[0].b64_json and b64.usage.input_tokens == 2
    assert url.data[0].url.endswith(".png") and url.data[0].revised_prompt == "a lighthouse"
    assert httpx.get(url.data[0].url).headers["content-type"] == "image/png"


def test_speech_returns_mpeg_audio(sdk):
    response = sdk.audio.speech.create(model="tts-1", voice="alloy", input="hello there")

    assert response.response.headers["content-type"] == "audio/mpeg"
    assert response.content.startswith(b"ID3") and len(response.content) > 1000


def test_a_transcription_reads_the_uploaded_file(sdk):
    transcript = sdk.audio.transcriptions.create(model="whisper-1", file=("note.txt", b"testing one two"))
    verbose = sdk.audio.transcriptions.create(
        model="whisper-1", file=("note.txt", b"testing one two"), response_format="verbose_json"
    )

    assert transcript.text == "testing one two"
    assert verbose.duration == 1.2 and verbose.segments[0].text == "testing one two"


def test_models_list_and_retrieve(sdk):
    ids = [m.id for m in sdk.models.list()]

    assert "gpt-4o-mini" in ids and "whisper-1" in ids
    assert sdk.models.retrieve("gpt-4o").owned_by == "openai"
    with pytest.raises(openai.NotFoundError) as info:
        sdk.models.retrieve("gpt-9")
    assert info.value.code == "model_not_found"


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "exception", "kind"),
    [
        (400, openai.BadRequestError, "invalid_request_error"),
        (401, openai.AuthenticationError, "invalid_request_error"),
        (403, openai.PermissionDeniedError, "request_forbidden"),
        (404, openai.NotFoundError, "invalid_request_error"),
        (409, openai.ConflictError, "invalid_request_error"),
        (422, openai.UnprocessableEntityError, "invalid_request_error"),
        (429, openai.RateLimitError, "requests"),
        (500, openai.InternalServerError, "server_error"),
        (503, openai.InternalServerError, "server_error"),
    ],
)
def test_every_error_status_parses_into_the_sdks_own_exception(sdk, fake, status, exception, kind):
    fake.fault(status=status)

    with pytest.raises(exception) as info:
        sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO)

    assert info.value.status_code == status and info.value.type == kind
    assert info.value.request_id.startswith("req_")
    assert len(fake.requests_to("/v1/chat/completions")) == 1  # max_retries=0: one request


def test_insufficient_quota_is_a_rate_limit_error_with_its_code(sdk, fake):
    fake.fault(status=429, error_code="insufficient_quota")

    with pytest.raises(openai.RateLimitError) as info:
        sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO)

    assert info.value.code == "insufficient_quota" and "exceeded your current quota" in info.value.message


def test_a_wrong_key_is_an_authentication_error(fake):
    with (
        openai.OpenAI(base_url=fake.url + "/v1", api_key="sk-wrong-key-1234", max_retries=0) as client,
        pytest.raises(openai.AuthenticationError) as info,
    ):
        client.models.list()

    assert info.value.code == "invalid_api_key"
    assert "sk-**********1234." in info.value.message and "wrong" not in info.value.message


def test_validation_errors_name_the_parameter(sdk):
    with pytest.raises(openai.BadRequestError) as empty:
        sdk.chat.completions.create(model="gpt-4o-mini", messages=[])
    with pytest.raises(openai.BadRequestError) as voiceless:
        sdk.audio.speech.create(model="tts-1", voice="", input="hi")

    assert empty.value.param == "messages"
    assert (voiceless.value.param, voiceless.value.code) == ("voice", "missing_required_parameter")


def test_a_cut_stream_breaks_the_sdks_iteration(sdk, fake):
    fake.fault(cut_stream_after=2)
    received = []

    with pytest.raises(openai.APIConnectionError):
        for chunk in sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True):
            received.append(chunk)

    assert len(received) == 2


def test_an_error_chunk_mid_stream_raises_the_sdks_api_error(sdk, fake):
    fake.fault(error_code="server_error")

    with pytest.raises(openai.APIError) as info:
        list(sdk.chat.completions.create(model="gpt-4o-mini", messages=HELLO, stream=True))

    assert "error while processing" in info.value.message

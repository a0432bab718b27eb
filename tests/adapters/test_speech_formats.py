"""Speech formats per adapter: each declares what it makes, refuses the rest before sending,
and serves the answer under the asked format's Content-Type only if the audio is in it. And
the openai kind on a local OpenAI-compatible TTS server (Kokoro, Chatterbox): speech and the
probe, with and without `GET /v1/models`."""

from __future__ import annotations

import httpx
import pytest

from providers.adapters import validate_options
from providers.adapters.base import SPEECH_FORMATS, ProviderConfig
from providers.adapters.elevenlabs import ElevenLabsAdapter
from providers.adapters.openai import OpenAIAdapter
from providers.adapters.piper import PiperAdapter
from providers.engine import UnsupportedRequest, UpstreamError
from providers.engine.outcome import Outcome, classify_exception
from tests.fakes.elevenlabs import FakeElevenLabs
from tests.fakes.openai import API_KEY, FakeOpenAI
from tests.fakes.speech_server import CHATTERBOX_FORMATS, FakeSpeechServer

from .expect import raised

TEXT = {"input": "Hello there, operator.", "voice": "alloy"}


def openai_adapter(url: str, client: httpx.AsyncClient, api_key: str | None = None, **options) -> OpenAIAdapter:
    config = ProviderConfig(name="speaker", kind="openai", base_url=url, api_key=api_key, options=options)
    return OpenAIAdapter(config, client)


@pytest.fixture(scope="module")
def openai_fake():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def kokoro():
    """Kokoro-FastAPI-style: every OpenAI format, and a model list."""
    with FakeSpeechServer(models=["kokoro", "tts-1", "tts-1-hd"]) as server:
        yield server


@pytest.fixture(scope="module")
def chatterbox():
    """Chatterbox-style: WAV whatever is asked, and no model list."""
    with FakeSpeechServer(formats=CHATTERBOX_FORMATS, default_format="wav", ignores_format=True) as server:
        yield server


def test_every_speech_adapter_declares_its_formats_in_openai_s_names():
    assert OpenAIAdapter.speech_formats == frozenset(SPEECH_FORMATS)
    assert PiperAdapter.speech_formats == frozenset({"wav"})
    assert ElevenLabsAdapter.speech_formats == frozenset({"mp3", "pcm", "wav", "opus"})


@pytest.mark.parametrize("response_format", SPEECH_FORMATS)
async def test_openai_answers_each_format_under_its_own_content_type(openai_fake, client, response_format):
    adapter = openai_adapter(openai_fake.url + "/v1", client, API_KEY)
    result = await adapter.speech({**TEXT, "response_format": response_format}, model="tts-1", timeout=5)

    expected = {"mp3": "audio/mpeg", "opus": "audio/opus", "aac": "audio/aac", "flac": "audio/flac"}
    expected |= {"wav": "audio/wav", "pcm": "audio/pcm"}
    assert result.media_type == expected[response_format]


async def test_a_server_that_answers_another_format_than_asked_is_a_failure(chatterbox, client):
    adapter = openai_adapter(chatterbox.url + "/v1", client)
    error = await raised(adapter.speech({**TEXT, "response_format": "mp3"}, model="chatterbox", timeout=5))

    assert isinstance(error, UpstreamError)
    assert classify_exception(error).outcome is Outcome.FAILURE
    assert error.classification.reason == "wrong_audio_format"
    assert "wav audio, not the mp3" in error.message


async def test_declared_formats_refuse_the_others_before_sending(chatterbox, client):
    adapter = openai_adapter(chatterbox.url + "/v1", client, speech_formats=["wav"])
    before = len(chatterbox.requests_to("/v1/audio/speech"))
    error = await raised(adapter.speech({**TEXT, "response_format": "mp3"}, model="chatterbox", timeout=5))
    wav = await adapter.speech({**TEXT, "response_format": "wav"}, model="chatterbox", timeout=5)

    assert isinstance(error, UnsupportedRequest) and error.classification.reason == "unsupported_format"
    assert "'mp3'" in error.message and "(it makes wav)" in error.message
    assert len(chatterbox.requests_to("/v1/audio/speech")) == before + 1  # only the wav one
    assert wav.media_type == "audio/wav" and wav.content[:4] == b"RIFF"


async def test_with_no_format_asked_the_content_type_says_what_the_bytes_are(chatterbox, client):
    result = await openai_adapter(chatterbox.url + "/v1", client).speech(TEXT, model="chatterbox", timeout=5)

    assert result.media_type == "audio/wav"


async def test_raw_pcm_labelled_octet_stream_is_served_as_audio_pcm(client):
    def answer(request: httpx.Request) -> httpx.Response:
        # OpenAI labels raw PCM application/octet-stream; samples may start like an MPEG frame.
        return httpx.Response(
            200, content=b"\xff\xfb" + bytes(4800), headers={"content-type": "application/octet-stream"}
        )

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as mocked:
        result = await openai_adapter("https://api.example/v1", mocked).speech(
            {**TEXT, "response_format": "pcm"}, model="tts-1", timeout=5
        )

    assert result.media_type == "audio/pcm"


async def test_a_json_200_is_no_audio(client):
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"status": "queued"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as mocked:
        error = await raised(openai_adapter("https://api.example/v1", mocked).speech(TEXT, model="tts-1", timeout=5))

    assert classify_exception(error).outcome is Outcome.FAILURE


def test_speech_options_are_checked_when_saved():
    validate_options("openai", {"speech_formats": ["wav"], "probe": "speech", "probe_voice": "af_heart"})
    for bad in ({"speech_formats": ["ogg"]}, {"speech_formats": []}, {"probe": "chat"}, {"probe_voice": ""}):
        with pytest.raises(ValueError):
            validate_options("openai", bad)


# -- ElevenLabs -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def elevenlabs():
    with FakeElevenLabs() as server:
        yield server


def eleven(url: str, client: httpx.AsyncClient) -> ElevenLabsAdapter:
    config = ProviderConfig(name="eleven", kind="elevenlabs", base_url=url, api_key="el-test-key")
    return ElevenLabsAdapter(config, client)


@pytest.mark.parametrize("response_format", ["aac", "flac"])
async def test_elevenlabs_refuses_formats_it_does_not_make_before_sending(elevenlabs, client, response_format):
    before = len(elevenlabs.requests)
    error = await raised(
        eleven(elevenlabs.url, client).speech(
            {**TEXT, "voice": "21m00Tcm4TlvDq8ikWAM", "response_format": response_format}, model="", timeout=5
        )
    )

    assert isinstance(error, UnsupportedRequest) and error.classification.reason == "unsupported_format"
    assert len(elevenlabs.requests) == before


@pytest.mark.parametrize(
    ("response_format", "output_format", "content_type"),
    [
        ("opus", "opus_48000_128", "audio/opus"),
        ("pcm", "pcm_24000", "audio/pcm"),
        ("pcm_16000", "pcm_16000", "audio/pcm"),
    ],
)
async def test_elevenlabs_maps_the_format_and_serves_its_content_type(
    elevenlabs, client, response_format, output_format, content_type
):
    result = await eleven(elevenlabs.url, client).speech(
        {**TEXT, "voice": "21m00Tcm4TlvDq8ikWAM", "response_format": response_format}, model="", timeout=5
    )

    assert elevenlabs.requests_to("/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM")[-1].query["output_format"] == output_format
    assert result.media_type == content_type


# -- local OpenAI-compatible TTS servers: the probe ------------------------------------------


async def test_the_probe_lists_the_models_of_a_server_that_has_them(kokoro, client):
    spoken = len(kokoro.requests_to("/v1/audio/speech"))
    detail = await openai_adapter(kokoro.url + "/v1", client).probe(timeout=5)

    assert detail == {"models": 3}
    assert len(kokoro.requests_to("/v1/audio/speech")) == spoken


async def test_the_probe_speaks_one_word_to_a_server_without_a_model_list(chatterbox, client):
    detail = await openai_adapter(chatterbox.url + "/v1", client).probe(timeout=5)

    assert detail == {"speech": True, "audio_format": "wav", "audio_bytes": detail["audio_bytes"]}
    assert detail["audio_bytes"] > 44
    assert chatterbox.requests_to("/v1/audio/speech")[-1].json() == {"input": "ok", "voice": "alloy", "model": "tts-1"}


async def test_the_probe_of_a_wrong_base_url_still_fails(chatterbox, client):
    error = await raised(openai_adapter(chatterbox.url, client).probe(timeout=5))  # no /v1

    assert isinstance(error, UpstreamError) and error.status == 404


async def test_a_speech_probe_can_be_chosen_with_its_voice_and_the_provider_s_model(kokoro, client):
    adapter = openai_adapter(kokoro.url + "/v1", client, probe="speech", probe_voice="af_heart")
    detail = await adapter.probe(timeout=5, deep=True, model="kokoro")

    assert detail["speech"] is True and detail["audio_format"] == "mp3"
    assert kokoro.requests_to("/v1/audio/speech")[-1].json() == {"input": "ok", "voice": "af_heart", "model": "kokoro"}


async def test_a_deep_probe_of_a_tts_model_speaks_instead_of_chatting(kokoro, client):
    detail = await openai_adapter(kokoro.url + "/v1", client).probe(timeout=5, deep=True, model="tts-1")

    assert detail["speech"] is True
    assert kokoro.requests_to("/v1/chat/completions") == []

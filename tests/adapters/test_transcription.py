"""Speech to text through the `openai` kind: OpenAIAdapter.transcription against a Whisper
server (faster-whisper-server style, FakeWhisper) and against OpenAI itself (FakeOpenAI)."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest

from providers.adapters.base import Price, ProviderConfig
from providers.adapters.openai import OpenAIAdapter
from providers.engine.outcome import Outcome, classify_exception
from tests.fakes.openai import API_KEY, FakeOpenAI
from tests.fakes.piper import speak
from tests.fakes.whisper import FakeWhisper

from .expect import raised

SMALL = "Systran/faster-whisper-small"
SENTENCE = "the quick brown fox jumps over the lazy dog"


@pytest.fixture(scope="module")
def whisper():
    with FakeWhisper() as server:
        yield server


@pytest.fixture(scope="module")
def openai_fake():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(whisper, openai_fake):
    whisper.reset()
    openai_fake.reset()


def make(url: str, client: httpx.AsyncClient, api_key: str | None = None) -> OpenAIAdapter:
    return OpenAIAdapter(ProviderConfig(name="stt", kind="openai", base_url=f"{url}/v1", api_key=api_key), client)


@pytest.fixture
def adapter(whisper, client):
    return make(whisper.url, client)


@pytest.fixture
def spoken(whisper) -> bytes:
    audio = speak(SENTENCE)  # a real WAV, as Piper would make it
    whisper.learn(audio, SENTENCE)
    return audio


# -- a Whisper server -------------------------------------------------------------------------


async def test_a_wav_upload_is_transcribed_by_a_whisper_server_without_a_key(adapter, whisper, spoken):
    result = await adapter.transcription(
        {"model": "listen", "language": "en"}, spoken, "clip.wav", model=SMALL, timeout=5
    )

    assert result.media_type == "application/json" and result.data == {"text": SENTENCE}
    sent = whisper.requests_to("/v1/audio/transcriptions")[0]
    assert "Authorization" not in sent.headers
    assert sent.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert b'name="model"\r\n\r\nSystran/faster-whisper-small' in sent.body  # the route name is replaced
    assert b'filename="clip.wav"' in sent.body and spoken in sent.body
    # its json answer is the text alone: the seconds are read from the WAV itself
    from providers.adapters.base import wav_seconds

    assert result.usage.audio_seconds == pytest.approx(wav_seconds(spoken)) and result.usage.audio_seconds > 0


async def test_verbose_json_gives_the_duration_and_so_the_cost(adapter, spoken):
    result = await adapter.transcription(
        {"response_format": "verbose_json", "temperature": 0.2}, spoken, "a.wav", model=SMALL, timeout=5
    )

    assert result.data["duration"] == 2.58 and result.usage.audio_seconds == 2.58  # 43 characters spoken
    assert result.data["segments"][0]["temperature"] == 0.2
    assert result.usage.cost(Price(per_minute=Decimal("0.006"))) == Decimal("0.000258")


@pytest.mark.parametrize(
    ("fmt", "starts"), [("text", SENTENCE), ("srt", "1\n00:00:00,000 --> "), ("vtt", "WEBVTT\n\n00:00:00.000 --> ")]
)
async def test_text_subtitle_formats_keep_their_media_type(adapter, spoken, fmt, starts):
    result = await adapter.transcription({"response_format": fmt}, spoken, "a.wav", model=SMALL, timeout=5)

    assert result.media_type == "text/plain" and result.data is None
    assert result.content.decode().startswith(starts) and SENTENCE in result.content.decode()


async def test_list_fields_go_as_repeated_form_fields(adapter, whisper, spoken):
    await adapter.transcription(
        {"response_format": "verbose_json", "timestamp_granularities": ["word", "segment"]},
        spoken,
        "a.wav",
        model=SMALL,
        timeout=5,
    )

    body = whisper.requests_to("/v1/audio/transcriptions")[0].body
    assert body.count(b'name="timestamp_granularities[]"') == 2


async def test_a_model_the_server_lacks_is_a_caller_error(adapter, spoken):
    error = await raised(adapter.transcription({}, spoken, "a.wav", model="whisper-huge", timeout=5))

    assert classify_exception(error).outcome is Outcome.CALLER_ERROR and error.status == 404
    assert error.message.startswith("Model 'whisper-huge' is not installed locally.")


async def test_a_file_that_is_not_audio_is_a_caller_error(adapter):
    error = await raised(adapter.transcription({}, b"\xff\xfe\x00garbage\x80", "a.bin", model=SMALL, timeout=5))

    assert classify_exception(error).outcome is Outcome.CALLER_ERROR and error.status == 400


@pytest.mark.parametrize(
    ("status", "outcome"), [(503, Outcome.FAILURE), (500, Outcome.FAILURE), (429, Outcome.RATE_LIMITED)]
)
async def test_server_trouble_is_classified(adapter, whisper, spoken, status, outcome):
    whisper.fault(path="/v1/audio/transcriptions", status=status, retry_after="1")

    error = await raised(adapter.transcription({}, spoken, "a.wav", model=SMALL, timeout=5))

    assert classify_exception(error).outcome is outcome and classify_exception(error).retry_after == 1


async def test_a_hung_whisper_server_is_a_failure(adapter, whisper, spoken):
    whisper.fault(path="/v1/audio/transcriptions", hang=True)

    error = await raised(adapter.transcription({}, spoken, "a.wav", model=SMALL, timeout=0.3))

    assert classify_exception(error).outcome is Outcome.FAILURE


async def test_a_whisper_server_with_a_key_checks_it(client, spoken):
    with FakeWhisper(api_key="local-secret") as guarded:
        guarded.learn(spoken, SENTENCE)
        ok = await make(guarded.url, client, "local-secret").transcription({}, spoken, "a.wav", model=SMALL, timeout=5)
        error = await raised(
            make(guarded.url, client, "nope").transcription({}, spoken, "a.wav", model=SMALL, timeout=5)
        )

    assert ok.data["text"] == SENTENCE
    assert classify_exception(error).outcome is Outcome.CALLER_ERROR and error.status == 401


async def test_the_whisper_servers_models_are_speech_to_text(adapter):
    models = await adapter.list_models(timeout=5)

    assert {m.name: m.capabilities for m in models} == {
        SMALL: {"stt"},
        "Systran/faster-distil-whisper-large-v3": {"stt"},
    }


# -- OpenAI itself ----------------------------------------------------------------------------


async def test_openai_reports_whisper_usage_in_seconds_and_it_is_billed_per_minute(openai_fake, client):
    result = await make(openai_fake.url, client, API_KEY).transcription(
        {}, SENTENCE.encode(), "note.txt", model="whisper-1", timeout=5
    )

    assert result.data["text"] == SENTENCE
    assert result.data["usage"] == {"type": "duration", "seconds": 4}
    assert result.usage.audio_seconds == 4.0
    assert result.usage.cost(Price(per_minute=Decimal("0.006"))) == Decimal("0.0004")


async def test_openai_gpt_4o_transcribe_reports_tokens(openai_fake, client):
    result = await make(openai_fake.url, client, API_KEY).transcription(
        {}, SENTENCE.encode(), "note.txt", model="gpt-4o-transcribe", timeout=5
    )

    assert (result.usage.tokens_in, result.usage.tokens_out) == (9, 9)


async def test_openai_errors_keep_their_classes(openai_fake, client):
    adapter = make(openai_fake.url, client, API_KEY)
    openai_fake.fault(path="/v1/audio/transcriptions", status=429, error_code="insufficient_quota", times=1)
    exhausted = await raised(adapter.transcription({}, b"x", "a.wav", model="whisper-1", timeout=5))
    bad_key = await raised(
        make(openai_fake.url, client, "sk-wrong").transcription({}, b"x", "a.wav", model="whisper-1", timeout=5)
    )

    assert classify_exception(exhausted).outcome is Outcome.EXHAUSTED
    assert classify_exception(bad_key).outcome is Outcome.CALLER_ERROR and bad_key.status == 401
    assert json.loads(bad_key.body)["error"]["code"] == "invalid_api_key"


async def test_a_wav_upload_gives_the_audio_seconds_when_the_server_reports_none():
    import io
    import wave

    import httpx

    from providers.adapters import ProviderConfig
    from providers.adapters.openai import OpenAIAdapter
    from tests.fakes.whisper import FakeWhisper

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\x00\x00" * 16000 * 3)  # 3 seconds
    with FakeWhisper() as server:
        async with httpx.AsyncClient() as client:
            adapter = OpenAIAdapter(ProviderConfig(name="w", kind="openai", base_url=server.url + "/v1"), client)
            result = await adapter.transcription(
                {}, buffer.getvalue(), "a.wav", model="Systran/faster-whisper-small", timeout=5
            )
    assert result.usage.audio_seconds == 3.0

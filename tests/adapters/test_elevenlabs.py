"""ElevenLabsAdapter against FakeElevenLabs: OpenAI speech in, audio out, and every error class."""

from __future__ import annotations

import io
import json
import wave
from decimal import Decimal

import httpx
import pytest

from providers.adapters.base import Price, ProviderConfig
from providers.adapters.elevenlabs import ElevenLabsAdapter
from providers.engine.outcome import Outcome, classify_exception
from tests.fakes.base import free_port
from tests.fakes.elevenlabs import FakeElevenLabs

from .expect import raised

RACHEL = "21m00Tcm4TlvDq8ikWAM"
SPEECH = {"model": "tts-1", "input": "Hello there, operator.", "voice": RACHEL}


@pytest.fixture(scope="module")
def fake():
    with FakeElevenLabs(character_limit=500) as server:
        yield server


def make(url: str, client: httpx.AsyncClient, api_key: str = "el-test-key", **options) -> ElevenLabsAdapter:
    config = ProviderConfig(name="eleven", kind="elevenlabs", base_url=url, api_key=api_key, options=options)
    return ElevenLabsAdapter(config, client)


@pytest.fixture
def adapter(fake, client):
    return make(fake.url, client)


async def test_speech_answers_mp3_bytes_with_the_upstream_type_and_character_usage(adapter, fake):
    result = await adapter.speech(SPEECH, model="eleven_multilingual_v2", timeout=5)

    sent = fake.requests_to(f"/v1/text-to-speech/{RACHEL}")[-1]
    assert sent.headers["xi-api-key"] == "el-test-key"
    assert sent.query == {"output_format": "mp3_44100_128"}
    assert sent.json() == {"text": "Hello there, operator.", "model_id": "eleven_multilingual_v2"}
    assert result.media_type == "audio/mpeg"
    assert result.content[:2] == b"\xff\xfb"
    assert result.usage.characters == len("Hello there, operator.")
    assert result.usage.audio_seconds > 0
    assert result.model == "eleven_multilingual_v2"


async def test_characters_price_per_thousand(adapter):
    result = await adapter.speech({**SPEECH, "input": "x" * 250}, model="eleven_flash_v2_5", timeout=5)

    assert result.usage.cost(Price(per_kchar=Decimal("0.30"))) == Decimal("0.075")


async def test_wav_speed_and_a_named_voice_map_to_elevenlabs_fields(fake, client):
    adapter = make(fake.url, client, voices={"alloy": RACHEL})
    result = await adapter.speech(
        {**SPEECH, "voice": "alloy", "response_format": "wav", "speed": 1.1}, model="eleven_flash_v2_5", timeout=5
    )

    sent = fake.requests_to(f"/v1/text-to-speech/{RACHEL}")[-1]
    assert sent.query["output_format"] == "wav_44100"
    assert sent.json()["voice_settings"] == {"speed": 1.1}
    assert result.media_type == "audio/wav"
    with wave.open(io.BytesIO(result.content)) as audio:
        assert audio.getframerate() == 44100


async def test_an_unavailable_format_is_a_caller_error_without_a_call(adapter, fake):
    error = await raised(adapter.speech({**SPEECH, "response_format": "flac"}, model="", timeout=5))

    assert classify_exception(error).outcome is Outcome.CALLER_ERROR
    assert fake.requests == []


async def test_voices_and_tts_models_are_listed(adapter):
    voices = await adapter.voices(timeout=5)
    models = await adapter.list_models(timeout=5)

    assert voices[0] == {
        "voice_id": RACHEL,
        "name": "Rachel",
        "category": "premade",
        "labels": {"accent": "american", "gender": "female", "age": "young", "use_case": "narration"},
    }
    assert [m.name for m in models] == ["eleven_multilingual_v2", "eleven_flash_v2_5", "eleven_turbo_v2_5"]
    assert all(m.capabilities == frozenset({"tts"}) for m in models)
    assert models[0].details["max_characters"] == 10_000


async def test_the_probe_reports_the_character_balance(adapter):
    await adapter.speech({**SPEECH, "input": "x" * 100}, model="", timeout=5)

    details = await adapter.probe(timeout=5)

    assert details == {"tier": "starter", "characters_used": 100, "character_limit": 500, "characters_left": 400}


async def test_a_key_without_user_read_probes_the_voices_instead(fake, client):
    fake.restricted_keys.add("el-restricted")

    details = await make(fake.url, client, api_key="el-restricted").probe(timeout=5)

    assert details == {"voices": 3}


async def test_an_exhausted_quota_401_is_exhausted_not_a_caller_error(adapter):
    await adapter.speech({**SPEECH, "input": "x" * 450}, model="", timeout=5)

    error = await raised(adapter.speech({**SPEECH, "input": "y" * 100}, model="", timeout=5))

    assert error.status == 401
    assert classify_exception(error).outcome is Outcome.EXHAUSTED
    assert classify_exception(error).reason == "quota_exceeded"
    assert json.loads(error.body)["detail"]["status"] == "quota_exceeded"
    assert "You have 50 credits remaining" in error.message


async def test_an_invalid_key_is_a_caller_error_with_elevenlabs_body(fake, client):
    error = await raised(make(fake.url, client, api_key="wrong").speech(SPEECH, model="", timeout=5))

    assert error.status == 401
    assert classify_exception(error).outcome is Outcome.CALLER_ERROR
    assert json.loads(error.body) == {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}


@pytest.mark.parametrize("code", ["too_many_concurrent_requests", "system_busy"])
async def test_a_429_is_rate_limited_with_its_retry_after(adapter, fake, code):
    fake.fault(path="/v1/text-to-speech", status=429, error_code=code, retry_after="4")

    error = await raised(adapter.speech(SPEECH, model="", timeout=5))

    classification = classify_exception(error)
    assert classification.outcome is Outcome.RATE_LIMITED
    assert classification.retry_after == 4
    assert json.loads(error.body)["detail"]["status"] == code


async def test_an_unknown_voice_is_a_caller_error(adapter):
    error = await raised(adapter.speech({**SPEECH, "voice": "nobody"}, model="", timeout=5))

    assert error.status == 404
    assert classify_exception(error).outcome is Outcome.CALLER_ERROR
    assert error.message == "A voice with the voice_id nobody was not found."


async def test_text_over_the_models_limit_is_a_caller_error(adapter, fake):
    fake.character_limit = 100_000
    error = await raised(adapter.speech({**SPEECH, "input": "x" * 10_001}, model="eleven_multilingual_v2", timeout=5))

    assert error.status == 400
    assert classify_exception(error).outcome is Outcome.CALLER_ERROR


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_failures(adapter, fake, status):
    fake.fault(path="/v1/text-to-speech", status=status)

    error = await raised(adapter.speech(SPEECH, model="", timeout=5))

    assert classify_exception(error).outcome is Outcome.FAILURE


async def test_a_json_200_instead_of_audio_is_a_malformed_failure(adapter, fake):
    fake.fault(path="/v1/text-to-speech", body='{"ok": true}')

    error = await raised(adapter.speech(SPEECH, model="", timeout=5))

    assert classify_exception(error).reason == "malformed_response"


async def test_a_dropped_connection_a_hang_and_a_refused_port_are_failures(adapter, fake, client):
    fake.fault(path="/v1/text-to-speech", drop=True, times=1)
    dropped = await raised(adapter.speech(SPEECH, model="", timeout=5))
    fake.fault(path="/v1/voices", hang=True, times=1)
    hung = await raised(adapter.voices(timeout=0.2))
    refused = await raised(make(f"http://127.0.0.1:{free_port()}", client).voices(timeout=2))

    assert [classify_exception(e).outcome for e in (dropped, hung, refused)] == [Outcome.FAILURE] * 3

"""WhisperASRAdapter against FakeWhisperASR: OpenAI transcription requests as `POST /asr`, each
response_format the service can make translated, the rest refused with the reason; errors; probe."""

from __future__ import annotations

import httpx
import pytest

from providers.adapters.base import ProviderConfig, wav_seconds
from providers.adapters.whisper_asr import WhisperASRAdapter, silence
from providers.engine import UnsupportedRequest, UpstreamError
from providers.engine.outcome import Outcome, at_fault, classify_exception
from tests.fakes.base import free_port
from tests.fakes.piper import speak
from tests.fakes.whisper_asr import VERSION, FakeWhisperASR

from .expect import raised

SENTENCES = "The quick brown fox jumps over the lazy dog. It barked twice!"


@pytest.fixture(scope="module")
def fake():
    with FakeWhisperASR() as server:
        yield server


def make(url: str, client: httpx.AsyncClient, *, api_key: str | None = None, **options) -> WhisperASRAdapter:
    return WhisperASRAdapter(
        ProviderConfig(name="stt", kind="whisper", base_url=url, api_key=api_key, options=options), client
    )


@pytest.fixture
def adapter(fake, client):
    return make(fake.url, client)


@pytest.fixture
def spoken(fake) -> bytes:
    audio = speak(SENTENCES)  # a real WAV, as Piper makes one
    fake.learn(audio, SENTENCES)
    return audio


def sent(fake):
    return fake.requests_to("/asr")[-1]


# -- the formats it can make ------------------------------------------------------------------


async def test_json_is_openais_text_alone_from_the_services_json_output(adapter, fake, spoken):
    result = await adapter.transcription(
        {"model": "whisper-1", "language": "en"}, spoken, "clip.wav", model="whisper", timeout=5
    )

    assert result.media_type == "application/json" and result.data == {"text": SENTENCES}
    request = sent(fake)
    assert request.query == {"task": "transcribe", "output": "json", "encode": "true", "language": "en"}
    assert request.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert b'name="audio_file"; filename="clip.wav"' in request.body and spoken in request.body
    assert b"whisper-1" not in request.body and "Authorization" not in request.headers
    assert result.usage.audio_seconds == pytest.approx(wav_seconds(spoken), abs=0.01)
    assert result.model == "whisper"


async def test_verbose_json_has_openais_segments_language_and_duration(adapter, spoken):
    result = await adapter.transcription({"response_format": "verbose_json"}, spoken, "a.wav", model="w", timeout=5)

    data = result.data
    assert set(data) == {"task", "language", "duration", "text", "segments"}
    assert (data["task"], data["language"], data["text"]) == ("transcribe", "en", SENTENCES)
    assert data["duration"] == pytest.approx(wav_seconds(spoken), abs=0.01)
    assert [s["text"].strip() for s in data["segments"]] == [
        "The quick brown fox jumps over the lazy dog.",
        "It barked twice!",
    ]
    assert [s["id"] for s in data["segments"]] == [0, 1] and data["segments"][1]["end"] == data["duration"]
    assert set(data["segments"][0]) == {
        "id",
        "seek",
        "start",
        "end",
        "text",
        "tokens",
        "temperature",
        "avg_logprob",
        "compression_ratio",
        "no_speech_prob",
    }


async def test_word_timestamps_are_asked_for_and_flattened_into_words(adapter, fake, spoken):
    result = await adapter.transcription(
        {"response_format": "verbose_json", "timestamp_granularities[]": "word"}, spoken, "a.wav", model="w", timeout=5
    )

    assert sent(fake).query["word_timestamps"] == "true"
    words = result.data["words"]
    assert [w["word"] for w in words][:3] == ["The", "quick", "brown"] and len(words) == 12
    assert set(words[0]) == {"word", "start", "end"} and words[0]["start"] == 0


@pytest.mark.parametrize(
    ("response_format", "output", "expected"),
    [
        ("text", "txt", "The quick brown fox jumps over the lazy dog.\nIt barked twice!\n"),
        ("srt", "srt", "1\n00:00:00,000 --> 00:00:"),
        ("vtt", "vtt", "WEBVTT\n\n00:00.000 --> 00:"),
    ],
)
async def test_text_srt_and_vtt_come_back_as_plain_text(adapter, fake, spoken, response_format, output, expected):
    result = await adapter.transcription({"response_format": response_format}, spoken, "a.wav", model="w", timeout=5)

    assert sent(fake).query["output"] == output
    assert result.media_type == "text/plain" and result.content.decode().startswith(expected)
    assert result.usage.audio_seconds == pytest.approx(wav_seconds(spoken), abs=0.01)


async def test_the_prompt_becomes_the_initial_prompt(adapter, fake, spoken):
    await adapter.transcription({"prompt": "Fox, dog.", "temperature": "0"}, spoken, "a.wav", model="w", timeout=5)

    assert sent(fake).query["initial_prompt"] == "Fox, dog." and "temperature" not in sent(fake).query


async def test_an_unknown_language_is_the_callers_422_with_the_field_named(adapter, spoken):
    error = await raised(adapter.transcription({"language": "xx"}, spoken, "a.wav", model="w", timeout=5))

    assert classify_exception(error).outcome is Outcome.CALLER_ERROR and error.status == 422
    assert error.message.startswith("language: Input should be 'de', 'en'")


# -- what it cannot do: refused with the reason, before sending -------------------------------


@pytest.mark.parametrize("response_format", ["diarized_json", "tsv", "xml"])
async def test_a_format_the_service_cannot_make_is_refused_with_the_reason(adapter, fake, spoken, response_format):
    error = await raised(
        adapter.transcription({"response_format": response_format}, spoken, "a.wav", model="w", timeout=5)
    )

    assert isinstance(error, UnsupportedRequest) and error.classification.reason == "unsupported_format"
    assert f"cannot answer response_format {response_format!r}" in error.message
    assert fake.requests == []


@pytest.mark.parametrize(
    "request_", [{"temperature": "0.2"}, {"include[]": "logprobs"}, {"stream": "true"}, {"chunking_strategy": "auto"}]
)
async def test_what_it_would_silently_drop_is_refused_instead(adapter, fake, spoken, request_):
    error = await raised(adapter.transcription(request_, spoken, "a.wav", model="w", timeout=5))

    assert isinstance(error, UnsupportedRequest) and fake.requests == []


async def test_settings_at_their_defaults_are_not_refusals(adapter, fake, spoken):
    result = await adapter.transcription(
        {"stream": "false", "temperature": 0, "include[]": ""}, spoken, "a.wav", model="w", timeout=5
    )

    assert result.data == {"text": SENTENCES}


async def test_word_timestamps_without_verbose_json_are_a_caller_error(adapter, fake, spoken):
    error = await raised(
        adapter.transcription({"timestamp_granularities[]": "word"}, spoken, "a.wav", model="w", timeout=5)
    )

    assert classify_exception(error).outcome is Outcome.CALLER_ERROR and error.status == 400
    assert fake.requests == []


# -- errors -----------------------------------------------------------------------------------


async def test_audio_ffmpeg_cannot_decode_is_the_services_500_a_failure(adapter):
    error = await raised(
        adapter.transcription({}, b"\xff\xd8\xff\xe0 not audio \x00\x81", "a.wav", model="w", timeout=5)
    )

    assert classify_exception(error).outcome is Outcome.FAILURE and error.status == 500
    assert error.message == "Internal Server Error"


async def test_an_overloaded_service_is_a_failure_and_throttling_rate_limited(adapter, fake, spoken):
    fake.fault(path="/asr", status=503, times=1)
    fake.fault(path="/asr", status=429, retry_after="3", times=1)

    down = await raised(adapter.transcription({}, spoken, "a.wav", model="w", timeout=5))
    throttled = await raised(adapter.transcription({}, spoken, "a.wav", model="w", timeout=5))

    assert classify_exception(down).outcome is Outcome.FAILURE
    assert (classify_exception(throttled).outcome, classify_exception(throttled).retry_after) == (
        Outcome.RATE_LIMITED,
        3,
    )


async def test_a_json_answer_that_is_not_json_is_malformed(adapter, fake, spoken):
    fake.fault(path="/asr", body="Please select an output method!", times=1)

    error = await raised(adapter.transcription({}, spoken, "a.wav", model="w", timeout=5))

    assert classify_exception(error).reason == "malformed_response"


async def test_behind_a_proxy_the_key_is_sent_and_a_missing_one_is_our_credential_refused(client):
    with FakeWhisperASR(api_key="proxy-secret") as guarded:
        audio = b"hello there"
        ok = await make(guarded.url, client, api_key="proxy-secret").transcription(
            {}, audio, "a.txt", model="w", timeout=5
        )
        error = await raised(make(guarded.url, client).transcription({}, audio, "a.txt", model="w", timeout=5))

    assert ok.data == {"text": "hello there"}
    assert isinstance(error, UpstreamError) and error.status == 401
    assert (
        at_fault(error.classification, 401, error.body, error.message, "w", caller_named=False).outcome
        is Outcome.CREDENTIAL_REJECTED
    )


async def test_a_refused_port_is_a_connect_failure(client):
    error = await raised(
        make(f"http://127.0.0.1:{free_port()}", client).transcription({}, b"x", "a", model="w", timeout=2)
    )

    assert classify_exception(error).reason == "connect_error"


# -- language detection, models and probes ----------------------------------------------------


async def test_language_detection_reads_the_first_seconds(adapter, fake):
    audio = speak("Guten Morgen")
    fake.learn(audio, "Guten Morgen", "de")

    detected = await adapter.detect_language(audio, timeout=5)

    assert detected == {"detected_language": "german", "language_code": "de", "confidence": 0.9731}
    assert fake.requests_to("/detect-language")[0].query == {"encode": "true"}


async def test_models_are_the_configured_names_or_one_default(fake, client):
    assert [m.name for m in await make(fake.url, client).list_models(timeout=5)] == ["whisper"]
    named = await make(fake.url, client, models=["large-v3", "small"]).list_models(timeout=5)
    assert [(m.name, m.capabilities) for m in named] == [("large-v3", {"stt"}), ("small", {"stt"})]
    assert fake.requests == []


async def test_the_cheap_probe_reads_the_openapi_document_and_runs_no_model(adapter, fake):
    details = await adapter.probe(timeout=5)

    assert details == {"service": "Whisper Asr Webservice", "version": VERSION, "language_detection": True}
    assert [r.path for r in fake.requests] == ["/openapi.json"]


async def test_the_deep_probe_detects_the_language_of_a_little_silence(adapter, fake):
    details = await adapter.probe(timeout=5, deep=True)

    assert details["detected_language"] == "en"
    assert fake.requests_to("/detect-language")[0].body.count(silence(0.5)) == 1


async def test_a_server_that_is_not_the_service_fails_the_probe(adapter, fake):
    fake.fault(path="/openapi.json", body='{"openapi": "3.1.0", "paths": {"/v1/models": {}}}')

    error = await raised(adapter.probe(timeout=5))

    assert classify_exception(error).reason == "not_whisper_asr"


@pytest.mark.parametrize(
    ("options", "named"),
    [({"model": "x"}, "model is not an option"), ({"encode": "yes"}, "encode"), ({"models": "large"}, "models")],
)
def test_options_it_cannot_run_with_are_refused_naming_the_option(options, named):
    with pytest.raises(ValueError) as info:
        WhisperASRAdapter.validate_options(options)

    assert str(info.value).startswith(named)


async def test_encode_and_vad_filter_options_reach_the_query(fake, client, spoken):
    await make(fake.url, client, encode=False, vad_filter=True).transcription({}, spoken, "a.wav", model="w", timeout=5)

    assert sent(fake).query["encode"] == "false" and sent(fake).query["vad_filter"] == "true"

"""PiperAdapter against FakePiper in each of Piper's request forms: WAV back, voices, errors."""

from __future__ import annotations

import io
import wave
from decimal import Decimal

import httpx
import pytest

from providers.adapters.base import Price, ProviderConfig
from providers.adapters.piper import PiperAdapter, wav_seconds
from providers.engine import UnsupportedRequest
from providers.engine.outcome import Outcome, classify_exception
from tests.fakes.base import free_port
from tests.fakes.piper import FakePiper

from .expect import raised


@pytest.fixture(scope="module")
def fake():
    with FakePiper() as server:
        yield server


def make(url: str, client: httpx.AsyncClient, **options) -> PiperAdapter:
    return PiperAdapter(ProviderConfig(name="piper", kind="piper", base_url=url, options=options), client)


@pytest.fixture
def adapter(fake, client):
    return make(fake.url, client)


def wav_info(data: bytes) -> tuple[int, int, int, int]:
    with wave.open(io.BytesIO(data)) as audio:
        return audio.getnchannels(), audio.getsampwidth(), audio.getframerate(), audio.getnframes()


# -- success ----------------------------------------------------------------------------------


async def test_speech_posts_json_to_synthesize_and_answers_labelled_wav(adapter, fake):
    result = await adapter.speech(
        {"model": "talk", "input": "Hello there, world.", "voice": "alloy"}, model="en_US-lessac-medium", timeout=5
    )

    sent = fake.requests_to("/synthesize")[0]
    assert sent.json() == {"text": "Hello there, world.", "voice": "en_US-lessac-medium"}  # "alloy" means nothing here
    assert result.media_type == "audio/wav"  # though Piper's Flask labels it text/html
    assert result.content[:4] == b"RIFF" and wav_info(result.content)[:3] == (1, 2, 22050)
    assert result.usage.characters == len("Hello there, world.")
    assert result.usage.audio_seconds == round(wav_seconds(result.content), 2) > 1
    assert result.model == "en_US-lessac-medium"


async def test_the_wav_grows_with_the_text(adapter):
    short = await adapter.speech({"input": "Hi."}, model="", timeout=5)
    long = await adapter.speech({"input": "Hi. " * 20}, model="", timeout=5)

    assert wav_info(long.content)[3] > 10 * wav_info(short.content)[3]


async def test_a_multi_speaker_voice_takes_a_speaker_by_name_by_map_or_by_id(fake, client):
    adapter = make(fake.url, client, speakers={"nova": "p227", "onyx": 3})

    await adapter.speech({"input": "a", "voice": "p226"}, model="en_GB-vctk-medium", timeout=5)
    assert fake.last["speaker_id"] == 1
    await adapter.speech({"input": "a", "voice": "nova"}, model="en_GB-vctk-medium", timeout=5)
    assert fake.last["speaker_id"] == 2
    await adapter.speech({"input": "a", "voice": "onyx"}, model="en_GB-vctk-medium", timeout=5)
    assert fake.last["speaker_id"] == 3

    sent = [r.json() for r in fake.requests_to("/synthesize")]
    assert [{k: s.get(k) for k in ("speaker", "speaker_id")} for s in sent] == [
        {"speaker": "p226", "speaker_id": None},
        {"speaker": "p227", "speaker_id": None},
        {"speaker": None, "speaker_id": 3},
    ]


async def test_speed_becomes_length_scale(adapter, fake):
    normal = await adapter.speech({"input": "steady pace"}, model="", timeout=5)
    fast = await adapter.speech({"input": "steady pace", "speed": 2.0}, model="", timeout=5)

    assert fake.requests_to("/synthesize")[1].json()["length_scale"] == 0.5
    assert fast.usage.audio_seconds == pytest.approx(normal.usage.audio_seconds / 2, abs=0.02)


async def test_wav_asked_or_no_format_named_is_answered_with_wav_labelled_as_such(adapter):
    asked = await adapter.speech({"input": "as wav please", "response_format": "wav"}, model="", timeout=5)
    unnamed = await adapter.speech({"input": "any format"}, model="", timeout=5)

    assert asked.media_type == unnamed.media_type == "audio/wav"
    assert asked.content[:4] == unnamed.content[:4] == b"RIFF"


async def test_another_format_is_refused_before_anything_is_sent(adapter, fake):
    before = len(fake.requests)
    error = await raised(adapter.speech({"input": "as mp3 please", "response_format": "mp3"}, model="", timeout=5))

    assert isinstance(error, UnsupportedRequest)
    assert error.classification.reason == "unsupported_format"
    assert "'mp3'" in error.message and "wav" in error.message
    assert len(fake.requests) == before


async def test_characters_cost_per_thousand(adapter):
    result = await adapter.speech({"input": "x" * 250}, model="", timeout=5)

    assert result.usage.cost(Price(per_kchar=Decimal("0.02"))) == Decimal("0.005")


@pytest.mark.parametrize("api", ["json", "text"])
async def test_the_older_servers_request_forms(client, api):
    with FakePiper(api=api) as old:
        result = await make(old.url, client, api=api).speech(
            {"input": "Old server.", "voice": "echo"}, model="en_US-lessac-medium", timeout=5
        )
        sent = old.requests_to("/")[0]

    assert result.content[:4] == b"RIFF" and result.usage.characters == len("Old server.")
    if api == "json":
        assert sent.json() == {"text": "Old server.", "voice": "en_US-lessac-medium"}
    else:
        assert sent.body == b"Old server." and sent.headers["Content-Type"].startswith("text/plain")


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("request_", [{"input": ""}, {"input": "   "}, {"voice": "x"}, {"input": "x", "speed": 9}])
async def test_bad_requests_are_caller_errors_without_a_call(adapter, fake, request_):
    error = await raised(adapter.speech(request_, model="", timeout=5))

    assert classify_exception(error).outcome is Outcome.CALLER_ERROR and error.status == 400
    assert fake.requests == []


async def test_a_crash_in_piper_is_a_failure_with_werkzeugs_text(adapter, fake):
    fake.fault(path="/synthesize", status=500)

    error = await raised(adapter.speech({"input": "x"}, model="", timeout=5))

    assert classify_exception(error).outcome is Outcome.FAILURE and error.status == 500
    assert error.message.startswith("The server encountered an internal error")
    assert error.media_type == "text/html" and error.body.startswith(b"<!doctype html>")


async def test_an_overloaded_proxy_in_front_is_a_failure(adapter, fake):
    fake.fault(path="/synthesize", status=503, retry_after="2")

    error = await raised(adapter.speech({"input": "x"}, model="", timeout=5))

    assert classify_exception(error).outcome is Outcome.FAILURE and classify_exception(error).retry_after == 2


async def test_a_rate_limiting_proxy_is_rate_limited(adapter, fake):
    fake.fault(path="/synthesize", status=429, retry_after="1")

    error = await raised(adapter.speech({"input": "x"}, model="", timeout=5))

    assert classify_exception(error).outcome is Outcome.RATE_LIMITED


async def test_the_wrong_api_option_is_a_caller_error_that_says_so(client):
    with FakePiper(api="text") as old:
        error = await raised(make(old.url, client).speech({"input": "x"}, model="", timeout=5))

    assert classify_exception(error).outcome is Outcome.CALLER_ERROR and error.status == 404
    assert "is options['api'] right?" in error.message
    assert error.message.startswith("The requested URL was not found on the server.")


async def test_an_unknown_api_option_is_a_caller_error(fake, client):
    error = await raised(make(fake.url, client, api="grpc").speech({"input": "x"}, model="", timeout=5))

    assert classify_exception(error).outcome is Outcome.CALLER_ERROR and fake.requests == []


async def test_a_200_that_is_not_a_wav_is_malformed(adapter, fake):
    fake.fault(path="/synthesize", body='{"queued": true}')

    error = await raised(adapter.speech({"input": "x"}, model="", timeout=5))

    assert classify_exception(error).reason == "malformed_response"


async def test_a_hang_and_a_refused_port_are_failures(adapter, fake, client):
    fake.fault(path="/synthesize", hang=True)

    hung = await raised(adapter.speech({"input": "x"}, model="", timeout=0.3))
    refused = await raised(make(f"http://127.0.0.1:{free_port()}", client).probe(timeout=2))

    assert classify_exception(hung).outcome is Outcome.FAILURE
    assert classify_exception(refused).reason == "connect_error"


# -- voices and probes ------------------------------------------------------------------------


async def test_voices_are_listed_from_the_server_with_their_details(adapter):
    models = {m.name: m for m in await adapter.list_models(timeout=5)}

    assert set(models) == {"en_US-lessac-medium", "en_GB-vctk-medium", "de_DE-thorsten-low"}
    assert all(m.capabilities == {"tts"} for m in models.values())
    assert dict(models["en_GB-vctk-medium"].details) == {
        "language": "en_GB",
        "quality": "medium",
        "sample_rate": 22050,
        "speakers": ["p225", "p226", "p227", "p228"],
    }


async def test_configured_voices_win_and_older_servers_have_one_default(fake, client):
    configured = await make(fake.url, client, voices=["de_DE-thorsten-low"]).list_models(timeout=5)
    old = await make(fake.url, client, api="text").list_models(timeout=5)

    assert [m.name for m in configured] == ["de_DE-thorsten-low"] and [m.name for m in old] == ["default"]
    assert fake.requests == []


async def test_the_cheap_probe_reads_info_and_synthesizes_nothing(adapter, fake):
    details = await adapter.probe(timeout=5)

    assert details == {"voice": "en_US-lessac-medium", "language": "en-us", "speakers": 1}
    assert fake.requests_to("/synthesize") == []


async def test_the_deep_probe_and_older_servers_probe_with_one_word(fake, client):
    deep = await make(fake.url, client).probe(timeout=5, deep=True)
    with FakePiper(api="text") as old:
        legacy = await make(old.url, client, api="text").probe(timeout=5)
        spoken = old.requests_to("/")[0].body

    assert deep["audio_seconds"] > 0 and fake.last["text"] == "ok"
    assert legacy["audio_seconds"] > 0 and spoken == b"ok"


async def test_info_that_is_not_json_is_malformed(adapter, fake):
    fake.fault(path="/info", body="<html>proxy login</html>")

    error = await raised(adapter.probe(timeout=5))

    assert classify_exception(error).reason == "malformed_response"


def test_wav_seconds_reads_the_header_and_refuses_other_bytes():
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(bytes(2 * 8000))

    assert wav_seconds(buffer.getvalue()) == 0.5
    assert wav_seconds(b"ID3\x04" + bytes(100)) is None
    assert wav_seconds(b"RIFF\x00\x00\x00\x00WAVEjunk") is None
    assert wav_seconds(b"") is None

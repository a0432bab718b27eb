"""The newer provider kinds through the real gateway app: an image chain SD WebUI → Replicate →
stock photos, Pollinations, TTS ElevenLabs → Piper, and speech to text on Whisper servers."""

from __future__ import annotations

import base64
import io
import wave
from collections.abc import Iterator

import pytest

from tests.fakes.elevenlabs import FakeElevenLabs
from tests.fakes.piper import FakePiper, speak
from tests.fakes.pollinations import FakePollinations
from tests.fakes.replicate import API_TOKEN as REPLICATE_TOKEN
from tests.fakes.replicate import FakeReplicate
from tests.fakes.sdwebui import FakeSDWebUI
from tests.fakes.stock import API_KEY as PEXELS_KEY
from tests.fakes.stock import FakeStockPhotos
from tests.fakes.whisper import FakeWhisper

from .conftest import auth

pytestmark = pytest.mark.django_db(transaction=True)

FLUX = "black-forest-labs/flux-schnell"
WHISPER = "Systran/faster-whisper-small"


def entry(name: str, kind: str, url: str, key: str | None = None, **extra: object) -> dict:
    """A provider as the configuration file has it; short timeouts and backoff for tests."""
    provider = {
        "name": name,
        "kind": kind,
        "base_url": url,
        "timeout_s": 2,
        "retry": {"max_attempts": 2, "base_delay_s": 0.01, "max_delay_s": 0.05},
    }
    if key is not None:
        provider["api_key"] = key
    provider.update(extra)
    return provider


@pytest.fixture
def sdwebui() -> Iterator[FakeSDWebUI]:
    with FakeSDWebUI() as server:
        yield server


@pytest.fixture
def replicate() -> Iterator[FakeReplicate]:
    with FakeReplicate() as server:
        yield server


@pytest.fixture
def stock() -> Iterator[FakeStockPhotos]:
    with FakeStockPhotos() as server:
        yield server


@pytest.fixture
def image_chain(configure, sdwebui, replicate, stock):
    async def setup(replicate_extra: dict | None = None) -> None:
        await configure(
            {
                "providers": [
                    entry("local-sd", "sdwebui", sdwebui.url),
                    entry(
                        "replicate",
                        "replicate",
                        replicate.url,
                        REPLICATE_TOKEN,
                        options={"poll_interval_s": 0.01},
                        **(replicate_extra or {}),
                    ),
                    entry("pexels", "stock", stock.url, PEXELS_KEY),
                ],
                "routes": [
                    {
                        "name": "pictures",
                        "capability": "image",
                        "max_attempts": 6,
                        "targets": [
                            {"provider": "local-sd", "model": "v1-5-pruned-emaonly"},
                            {"provider": "replicate", "model": FLUX},
                            {"provider": "pexels", "model": "search"},
                        ],
                    }
                ],
            }
        )

    return setup


def is_png(data: bytes) -> bool:
    return data[:8] == b"\x89PNG\r\n\x1a\n"


# -- images -----------------------------------------------------------------------------------


async def test_the_image_chain_is_served_by_sd_webui_while_it_works(gateway, image_chain, key, replicate):
    await image_chain()

    response = await gateway.post(
        "/v1/images/generations",
        headers=auth(key),
        json={"model": "pictures", "prompt": "a lighthouse", "size": "64x64"},
    )

    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-provider"] == "local-sd"
    assert is_png(base64.b64decode(response.json()["data"][0]["b64_json"]))
    assert replicate.requests == []


async def test_when_sd_webui_fails_replicate_serves_the_image(gateway, image_chain, key, sdwebui, replicate, stock):
    await image_chain()
    sdwebui.fault(path="/sdapi/v1/txt2img", status=500)

    response = await gateway.post(
        "/v1/images/generations",
        headers=auth(key),
        json={"model": "pictures", "prompt": "a lighthouse", "response_format": "b64_json"},
    )

    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-provider"] == "replicate"
    assert response.headers["x-gateway-model"] == FLUX
    assert response.headers["x-gateway-attempts"] == "3"  # SD WebUI twice, then Replicate
    body = response.json()
    assert set(body) == {"created", "data"} and is_png(base64.b64decode(body["data"][0]["b64_json"]))
    assert replicate.last["status"] == "succeeded" and stock.requests == []


async def test_when_sd_webui_and_replicate_fail_the_stock_search_serves(
    gateway, image_chain, key, sdwebui, replicate, stock
):
    await image_chain()
    sdwebui.fault(path="/sdapi/v1/txt2img", status=500)
    replicate.behaviour = "fail"

    response = await gateway.post(
        "/v1/images/generations",
        headers=auth(key),
        json={"model": "pictures", "prompt": "a lighthouse at dusk", "size": "1792x1024", "response_format": "url"},
    )

    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-provider"] == "pexels"
    assert response.headers["x-gateway-failovers"] == "2"
    photo = next(iter(stock.photos.values()))
    body = response.json()
    assert body["data"] == [{"url": photo["src"]["landscape"], "revised_prompt": photo["alt"]}]
    assert body["attributions"][0]["photographer"] == photo["photographer"]
    assert [p["status"] for p in replicate.predictions.values()] == ["failed", "failed"]


async def test_a_replicate_prediction_the_attempt_gives_up_on_is_cancelled(
    gateway, image_chain, key, sdwebui, replicate, stock
):
    await image_chain({"timeout_s": 0.5, "retry": {"max_attempts": 1}})
    sdwebui.fault(path="/sdapi/v1/txt2img", status=500)
    replicate.behaviour = "hang"

    response = await gateway.post(
        "/v1/images/generations", headers=auth(key), json={"model": "pictures", "prompt": "a lighthouse"}
    )

    assert response.status_code == 200 and response.headers["x-gateway-provider"] == "pexels"
    assert replicate.last["status"] == "canceled"
    assert [r.path for r in replicate.requests if r.path.endswith("/cancel")] == [
        f"/v1/predictions/{replicate.last['id']}/cancel"
    ]


async def test_a_stock_search_that_finds_nothing_fails_over_without_repeating_it(gateway, configure, key, stock):
    with FakePollinations() as pollinations:
        await configure(
            {
                "providers": [
                    entry("pexels", "stock", stock.url, PEXELS_KEY),
                    entry("pollinations", "pollinations", pollinations.url),
                ],
                "routes": [
                    {
                        "name": "pictures",
                        "capability": "image",
                        "targets": [
                            {"provider": "pexels", "model": "search"},
                            {"provider": "pollinations", "model": "flux"},
                        ],
                    }
                ],
            }
        )
        from tests.fakes.stock import NO_RESULTS

        response = await gateway.post(
            "/v1/images/generations",
            headers=auth(key),
            json={"model": "pictures", "prompt": NO_RESULTS, "size": "64x64"},
        )

    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-provider"] == "pollinations"
    assert response.headers["x-gateway-attempts"] == "2"  # the empty search was not repeated
    assert base64.b64decode(response.json()["data"][0]["b64_json"])[:2] == b"\xff\xd8"  # a JPEG


# -- text to speech ---------------------------------------------------------------------------


async def test_when_elevenlabs_fails_piper_speaks_wav(gateway, configure, key):
    with FakeElevenLabs() as elevenlabs, FakePiper() as piper:
        await configure(
            {
                "providers": [
                    entry("elevenlabs", "elevenlabs", elevenlabs.url, "el-test-key"),
                    entry("piper", "piper", piper.url),
                ],
                "routes": [
                    {
                        "name": "speak",
                        "capability": "tts",
                        "targets": [
                            {"provider": "elevenlabs", "model": "eleven_multilingual_v2"},
                            {"provider": "piper", "model": "en_US-lessac-medium"},
                        ],
                    }
                ],
            }
        )
        elevenlabs.fault(path="/v1/text-to-speech/", status=503)

        response = await gateway.post(
            "/v1/audio/speech",
            headers=auth(key),
            json={"model": "speak", "input": "The gateway still speaks.", "voice": "21m00Tcm4TlvDq8ikWAM"},
        )
        spoken = piper.last

    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-provider"] == "piper"
    assert response.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(response.content)) as audio:
        assert (audio.getnchannels(), audio.getsampwidth(), audio.getframerate()) == (1, 2, 22050)
        assert audio.getnframes() > 22050  # over a second for 26 characters
    assert spoken == {
        "text": "The gateway still speaks.",
        "voice": "en_US-lessac-medium",
        "speaker_id": 0,
        "length_scale": 1.0,
    }
    assert len(elevenlabs.requests_to("/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM")) == 2


# -- speech to text ---------------------------------------------------------------------------


@pytest.fixture
def whisper_pair() -> Iterator[tuple[FakeWhisper, FakeWhisper]]:
    with FakeWhisper() as first, FakeWhisper() as second:
        yield first, second


@pytest.fixture
def listen_route(configure, whisper_pair):
    first, second = whisper_pair

    async def setup() -> None:
        await configure(
            {
                "providers": [
                    entry("whisper-a", "openai", first.url + "/v1"),
                    entry("whisper-b", "openai", second.url + "/v1"),
                ],
                "routes": [
                    {
                        "name": "listen",
                        "capability": "stt",
                        "targets": [
                            {"provider": "whisper-a", "model": WHISPER},
                            {"provider": "whisper-b", "model": WHISPER},
                        ],
                    }
                ],
            }
        )

    return setup


async def test_a_multipart_upload_is_transcribed_through_the_gateway(gateway, listen_route, whisper_pair, key):
    first, _ = whisper_pair
    audio = speak("hello from the gateway")
    first.learn(audio, "hello from the gateway")
    await listen_route()

    response = await gateway.post(
        "/v1/audio/transcriptions",
        headers=auth(key),
        data={"model": "listen", "language": "en"},
        files={"file": ("clip.wav", audio, "audio/wav")},
    )

    assert response.status_code == 200, response.text
    assert response.json() == {"text": "hello from the gateway"}
    assert response.headers["x-gateway-provider"] == "whisper-a"
    sent = first.requests_to("/v1/audio/transcriptions")[0]
    assert audio in sent.body and b'name="language"\r\n\r\nen' in sent.body


async def test_a_failing_whisper_server_falls_back_to_the_second(gateway, listen_route, whisper_pair, key):
    first, second = whisper_pair
    audio = speak("second server speaking")
    second.learn(audio, "second server speaking")
    first.fault(path="/v1/audio/transcriptions", status=503)
    await listen_route()

    response = await gateway.post(
        "/v1/audio/transcriptions",
        headers=auth(key),
        data={"model": "listen", "response_format": "verbose_json"},
        files={"file": ("clip.wav", audio, "audio/wav")},
    )

    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-provider"] == "whisper-b"
    assert response.headers["x-gateway-failovers"] == "1"
    body = response.json()
    assert body["text"] == "second server speaking" and body["duration"] == round(22 * 0.06, 2)
    assert len(first.requests_to("/v1/audio/transcriptions")) == 2


async def test_a_transcription_without_a_file_is_refused_before_any_call(gateway, listen_route, whisper_pair, key):
    await listen_route()

    response = await gateway.post(
        "/v1/audio/transcriptions",
        headers=auth(key),
        data={"model": "listen"},
        files={"other": ("x.txt", b"x", "text/plain")},
    )

    assert response.status_code == 400 and response.json()["error"]["code"] == "missing_file"
    assert all(server.requests == [] for server in whisper_pair)

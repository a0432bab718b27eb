"""The kinds for AutoMarket's media services, configured like any provider and called through
the gateway's own endpoints: whisper-asr-webservice for speech to text, fal.ai's queue for
images, an ffmpeg composition service for video."""

from __future__ import annotations

import pytest

from providers.adapters.ffmpeg import PIXEL
from tests.conftest import auth
from tests.fakes.fal import API_KEY as FAL_KEY
from tests.fakes.fal import FakeFal
from tests.fakes.ffmpeg import FakeFFmpeg
from tests.fakes.piper import speak
from tests.fakes.whisper_asr import FakeWhisperASR

pytestmark = pytest.mark.django_db(transaction=True)

SPOKEN = "the gateway routes every call"


@pytest.fixture
def whisper():
    with FakeWhisperASR() as fake:
        yield fake


@pytest.fixture
def fal():
    with FakeFal(queue_polls=1) as fake:
        yield fake


@pytest.fixture
def ffmpeg():
    with FakeFFmpeg() as fake:
        yield fake


async def test_speech_is_transcribed_by_a_whisper_asr_service_through_the_openai_endpoint(
    gateway, configure, whisper, key, settings
):
    settings.PROVIDER_URL_ALLOW = ["127.0.0.1"]
    await configure({"providers": [{"name": "asr", "kind": "whisper", "base_url": whisper.url, "models": ["whisper"]}]})
    audio = speak(SPOKEN)
    whisper.learn(audio, SPOKEN)
    response = await gateway.post(
        "/v1/audio/transcriptions",
        headers=auth(key),
        data={"model": "asr/whisper", "response_format": "json"},
        files={"file": ("clip.wav", audio, "audio/wav")},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"text": SPOKEN}
    assert response.headers["X-Gateway-Provider"] == "asr"
    assert whisper.requests_to("/asr")


async def test_an_image_comes_from_fal_s_queue_through_the_openai_endpoint(gateway, configure, fal, key, settings):
    settings.PROVIDER_URL_ALLOW = ["127.0.0.1"]
    settings.FETCH_URL_ALLOW = ["127.0.0.1"]  # the fake's result files live on loopback
    await configure(
        {
            "providers": [
                {
                    "name": "fal",
                    "kind": "fal",
                    "base_url": fal.url,
                    "api_key": FAL_KEY,
                    "models": ["fal-ai/flux/schnell"],
                    "options": {"platform_url": fal.url, "poll_interval_s": 0.01},
                }
            ]
        }
    )
    response = await gateway.post(
        "/v1/images/generations",
        headers=auth(key),
        json={"model": "fal/fal-ai/flux/schnell", "prompt": "a red bicycle"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"] and response.headers["X-Gateway-Provider"] == "fal"


async def test_a_video_is_composed_by_the_ffmpeg_service_through_execute(gateway, configure, ffmpeg, key, settings):
    settings.PROVIDER_URL_ALLOW = ["127.0.0.1"]
    await configure(
        {
            "providers": [
                {
                    "name": "compose",
                    "kind": "ffmpeg",
                    "base_url": ffmpeg.url,
                    "models": ["compose"],
                    "options": {"poll_interval_s": 0.01},
                }
            ]
        }
    )
    response = await gateway.post(
        "/api/execute",
        headers=auth(key),
        json={
            "capability": "video",
            "route": "compose/compose",
            "input": {"prompt": "slideshow", "images": [PIXEL, PIXEL], "duration_s": 2},
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["provider"] == "compose" and body["output"]["data"][0]["url"].startswith("data:video/mp4")
    assert ffmpeg.requests_to("/compose")

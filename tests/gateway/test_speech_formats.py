"""A speech `response_format` is honoured by every target or the target is skipped, saying why:
the gateway never answers mp3 with wav. Through `/v1/audio/speech` (httpx and the official
`openai` SDK) and `/api/execute`, with the request log showing each skip."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import openai
import pytest

from analytics.recorder import flush_all
from tests.fakes.openai import FakeOpenAI
from tests.fakes.piper import FakePiper
from tests.fakes.speech_server import CHATTERBOX_FORMATS, FakeSpeechServer

from .conftest import auth, provider

pytestmark = pytest.mark.django_db(transaction=True)

TEXT = "The gateway keeps the format."
VOICE = "en_US-lessac-medium"


@pytest.fixture
def piper() -> Iterator[FakePiper]:
    with FakePiper() as server:
        yield server


@pytest.fixture
def chatterbox() -> Iterator[FakeSpeechServer]:
    """A Chatterbox-style server: WAV only, whatever is asked, and no model list."""
    with FakeSpeechServer(formats=CHATTERBOX_FORMATS, default_format="wav", ignores_format=True) as server:
        yield server


@pytest.fixture
async def speak(configure, settings, piper, upstream_a: FakeOpenAI, chatterbox) -> None:
    settings.PROVIDER_URL_ALLOW = ["127.0.0.1"]
    await configure(
        {
            "providers": [
                {"name": "piper", "kind": "piper", "base_url": piper.url, "models": [VOICE], "timeout_s": 2},
                provider("up-a", upstream_a.url + "/v1", models=["tts-1"], capabilities=["tts"]),
                {
                    "name": "chatterbox",
                    "kind": "openai",
                    "base_url": chatterbox.url + "/v1",
                    "capabilities": ["tts"],
                    "models": ["chatterbox"],
                    "options": {"speech_formats": ["wav"]},
                    "timeout_s": 2,
                },
                {
                    # The same server, its formats not declared: what it answers is checked.
                    "name": "undeclared",
                    "kind": "openai",
                    "base_url": chatterbox.url + "/v1",
                    "capabilities": ["tts"],
                    "models": ["chatterbox"],
                    "timeout_s": 2,
                    "retry": {"max_attempts": 1},
                },
            ],
            "routes": [
                {"name": "speak", "capability": "tts", "targets": [f"piper/{VOICE}", "up-a/tts-1"]},
                {"name": "local", "capability": "tts", "targets": [f"piper/{VOICE}", "chatterbox/chatterbox"]},
                {"name": "trusting", "capability": "tts", "targets": ["undeclared/chatterbox", "up-a/tts-1"]},
            ],
        }
    )


def speech(route: str, response_format: str | None = None) -> dict[str, str]:
    body = {"model": route, "input": TEXT, "voice": "alloy"}
    if response_format is not None:
        body["response_format"] = response_format
    return body


async def logged_attempts(gateway: httpx.AsyncClient, key: str, answer: httpx.Response) -> list[dict]:
    await flush_all()
    found = await gateway.get(f"/api/requests/{answer.headers['X-Request-Id']}", headers=auth(key))
    assert found.status_code == 200, found.text
    return found.json()["attempts"]


async def test_mp3_asked_skips_piper_with_the_reason_and_openai_answers_mp3(gateway, speak, key, piper, upstream_a):
    answer = await gateway.post("/v1/audio/speech", headers=auth(key), json=speech("speak", "mp3"))

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "audio/mpeg"
    assert answer.content.startswith(b"ID3")
    assert answer.headers["X-Gateway-Provider"] == "up-a"
    assert piper.requests_to("/synthesize") == []
    assert upstream_a.requests_to("/v1/audio/speech")[-1].json()["response_format"] == "mp3"
    skipped, served = await logged_attempts(gateway, key, answer)
    assert (skipped["provider"], skipped["skipped"], skipped["status"]) == ("piper", "unsupported", None)
    assert "'mp3'" in skipped["error"] and "wav" in skipped["error"]
    assert (served["provider"], served["outcome"]) == ("up-a", "success")


async def test_wav_asked_is_spoken_by_piper(gateway, speak, key, upstream_a):
    answer = await gateway.post("/v1/audio/speech", headers=auth(key), json=speech("speak", "wav"))

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "audio/wav"
    assert answer.content[:4] == b"RIFF"
    assert answer.headers["X-Gateway-Provider"] == "piper"
    assert upstream_a.requests_to("/v1/audio/speech") == []


async def test_no_format_named_is_answered_by_the_first_target_in_its_own_labelled_format(gateway, speak, key):
    answer = await gateway.post("/v1/audio/speech", headers=auth(key), json=speech("speak"))

    assert answer.status_code == 200, answer.text
    assert (answer.headers["X-Gateway-Provider"], answer.headers["content-type"]) == ("piper", "audio/wav")


async def test_a_format_no_target_makes_is_a_400_naming_it_and_every_target(gateway, speak, key, piper, chatterbox):
    answer = await gateway.post("/v1/audio/speech", headers=auth(key), json=speech("local", "mp3"))

    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "unsupported")
    assert "'mp3'" in error["message"]
    assert "piper/" in error["message"] and "chatterbox/chatterbox" in error["message"]
    assert piper.requests_to("/synthesize") == [] and chatterbox.requests_to("/v1/audio/speech") == []


async def test_a_server_that_ignores_the_format_is_not_served_but_falls_back(gateway, speak, key, chatterbox):
    answer = await gateway.post("/v1/audio/speech", headers=auth(key), json=speech("trusting", "mp3"))

    assert answer.status_code == 200, answer.text
    assert (answer.headers["X-Gateway-Provider"], answer.headers["content-type"]) == ("up-a", "audio/mpeg")
    assert len(chatterbox.requests_to("/v1/audio/speech")) == 1  # it was asked, and answered WAV
    failed, served = await logged_attempts(gateway, key, answer)
    assert (failed["provider"], failed["outcome"], failed["reason"]) == ("undeclared", "failure", "wrong_audio_format")
    assert served["provider"] == "up-a"


async def test_execute_tts_keeps_the_format_and_lists_the_skip(gateway, speak, key):
    answer = await gateway.post(
        "/api/execute",
        headers=auth(key),
        json={
            "route": "speak",
            "capability": "tts",
            "input": TEXT,
            "options": {"response_format": "mp3", "voice": "alloy"},
        },
    )

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["output"]["media_type"] == "audio/mpeg"
    assert [(a["provider"], a["skipped"]) for a in body["attempts"]] == [("piper", "unsupported"), ("up-a", None)]


async def test_execute_tts_with_a_format_no_target_makes_is_a_400(gateway, speak, key):
    answer = await gateway.post(
        "/api/execute",
        headers=auth(key),
        json={
            "route": "local",
            "capability": "tts",
            "input": TEXT,
            "options": {"response_format": "flac", "voice": "alloy"},
        },
    )

    assert answer.status_code == 400, answer.text
    assert "'flac'" in answer.text


# -- the official SDK -------------------------------------------------------------------------


@pytest.fixture
async def client(speak, key) -> AsyncIterator[openai.AsyncOpenAI]:
    from project.asgi import application

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), timeout=30) as http:
        yield openai.AsyncOpenAI(base_url="http://testserver/v1", api_key=key, http_client=http, max_retries=0)


@pytest.mark.parametrize(
    ("response_format", "provider_name", "content_type", "starts"),
    [
        ("mp3", "up-a", "audio/mpeg", b"ID3"),
        ("wav", "piper", "audio/wav", b"RIFF"),
        ("flac", "up-a", "audio/flac", b"fLaC"),
        ("opus", "up-a", "audio/opus", b"OggS"),
    ],
)
async def test_the_sdk_gets_the_format_it_asked_for(client, response_format, provider_name, content_type, starts):
    answer = await client.audio.speech.with_raw_response.create(
        model="speak", voice="alloy", input=TEXT, response_format=response_format
    )

    assert answer.headers["content-type"] == content_type
    assert answer.headers["X-Gateway-Provider"] == provider_name
    assert (await answer.parse().aread()).startswith(starts)


async def test_the_sdk_hears_a_400_when_no_target_makes_the_format(client):
    with pytest.raises(openai.BadRequestError) as caught:
        await client.audio.speech.create(model="local", voice="alloy", input=TEXT, response_format="aac")

    assert caught.value.status_code == 400
    assert "'aac'" in caught.value.message and "piper" in caught.value.message

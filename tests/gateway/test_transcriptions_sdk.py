"""`client.audio.transcriptions.create` of the official openai SDK through the gateway: the
multipart upload routed like any call, to an OpenAI-format upstream and to a local
whisper-asr-webservice, falling back from one to the other."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import openai
import pytest

from tests.fakes.piper import speak
from tests.fakes.whisper_asr import FakeWhisperASR

from .conftest import provider

pytestmark = pytest.mark.django_db(transaction=True)

SPOKEN = "every call goes through the gateway"
QUIET = {"consecutive_failures": 100, "min_calls": 1000}


@pytest.fixture
def whisper():
    with FakeWhisperASR() as fake:
        yield fake


@pytest.fixture
async def client(gateway, configure, upstream_a, whisper, key, settings) -> AsyncIterator[openai.AsyncOpenAI]:
    settings.PROVIDER_URL_ALLOW = ["127.0.0.1"]
    await configure(
        {
            "providers": [
                provider(
                    "up-a",
                    upstream_a.url + "/v1",
                    breaker=QUIET,
                    models=["whisper-1"],
                    capabilities=["stt"],
                    retry={"max_attempts": 1},
                ),
                {"name": "asr", "kind": "whisper", "base_url": whisper.url, "models": ["whisper"]},
            ],
            "routes": [{"name": "listen", "capability": "stt", "targets": ["up-a/whisper-1", "asr/whisper"]}],
        }
    )
    from project.asgi import application

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), timeout=30) as http:
        yield openai.AsyncOpenAI(base_url="http://testserver/v1", api_key=key, http_client=http, max_retries=0)


async def test_a_transcription_through_the_route_and_its_fallback(client, upstream_a, whisper):
    first = await client.audio.transcriptions.with_raw_response.create(
        model="listen", file=("note.txt", b"testing one two")
    )
    assert first.parse().text == "testing one two"  # the OpenAI fake reads text files back
    assert first.headers["X-Gateway-Provider"] == "up-a"

    upstream_a.fault(status=503)
    audio = speak(SPOKEN)
    whisper.learn(audio, SPOKEN)
    second = await client.audio.transcriptions.with_raw_response.create(model="listen", file=("clip.wav", audio))
    assert second.parse().text == SPOKEN
    assert (second.headers["X-Gateway-Provider"], second.headers["X-Gateway-Failovers"]) == ("asr", "1")

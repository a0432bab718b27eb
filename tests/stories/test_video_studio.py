"""Story 1, the video studio (examples/video-studio.yaml): Ollama found on its port and a model
pulled onto it with progress; the script written by Ollama, then by the hosted LLM when Ollama
fails; stills from SD WebUI, then Replicate, then a stock photo; the voice-over from
ElevenLabs, then Piper; every provider on the dashboard; a breaker forced open and reset."""

from __future__ import annotations

import base64
import io
import json
import wave
from contextlib import ExitStack
from io import StringIO

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command

from tests.conftest import auth
from tests.fakes.elevenlabs import FakeElevenLabs
from tests.fakes.ollama import FakeOllama
from tests.fakes.openai import API_KEY as OPENAI_KEY
from tests.fakes.openai import FakeOpenAI
from tests.fakes.piper import FakePiper
from tests.fakes.replicate import API_TOKEN as REPLICATE_TOKEN
from tests.fakes.replicate import FakeReplicate
from tests.fakes.sdwebui import FakeSDWebUI
from tests.fakes.stock import API_KEY as PEXELS_KEY
from tests.fakes.stock import FakeStockPhotos

from .conftest import provider_entry

pytestmark = pytest.mark.django_db(transaction=True)

SCRIPT = {"model": "script", "messages": [{"role": "user", "content": "A 30 second intro"}]}
STILL = {"model": "stills", "prompt": "a lighthouse at dusk", "size": "64x64", "response_format": "b64_json"}
VOICE = {"model": "voiceover", "input": "Welcome back to the channel.", "voice": "21m00Tcm4TlvDq8ikWAM"}


@pytest.fixture
def fakes():
    with ExitStack() as stack:
        yield {
            # Ollama is running, but the script's model is not on it yet.
            "local-ollama": stack.enter_context(FakeOllama(installed=("nomic-embed-text:latest",))),
            "openai": stack.enter_context(FakeOpenAI()),
            "local-sd": stack.enter_context(FakeSDWebUI()),
            "replicate": stack.enter_context(FakeReplicate()),
            "pexels": stack.enter_context(FakeStockPhotos()),
            "elevenlabs": stack.enter_context(FakeElevenLabs()),
            "local-piper": stack.enter_context(FakePiper()),
        }


@pytest.fixture
async def studio(load_story, fakes, settings):
    settings.DISCOVERY_HOSTS = ["127.0.0.1"]
    settings.DISCOVERY_OLLAMA_PORTS = [fakes["local-ollama"].port]
    settings.DISCOVERY_SDWEBUI_PORTS = [fakes["local-sd"].port]
    settings.DISCOVERY_OPENAI_PORTS = []

    def test_sized(config: dict) -> None:
        # Backoff between the two attempts on a failing SD WebUI: 10 ms, not up to 0.5 s.
        provider_entry(config, "local-sd")["retry"]["base_delay_s"] = 0.01
        provider_entry(config, "replicate")["options"]["poll_interval_s"] = 0.01

    base_urls = {name: fake.url for name, fake in fakes.items()}
    base_urls["openai"] += "/v1"
    return await load_story(
        "video-studio",
        base_urls=base_urls,
        tweak=test_sized,
        env={
            "OPENAI_API_KEY": OPENAI_KEY,
            "REPLICATE_API_TOKEN": REPLICATE_TOKEN,
            "PEXELS_API_KEY": PEXELS_KEY,
            "ELEVENLABS_API_KEY": "el-test-key",
        },
    )


async def test_the_video_studio_story(studio, fakes, gateway, key, users, console):
    ollama, sd, replicate = fakes["local-ollama"], fakes["local-sd"], fakes["replicate"]

    # Ollama is detected on its port: discovery finds it (and SD WebUI) where the file says.
    out = StringIO()
    await sync_to_async(call_command)("discover", "--register", stdout=out)
    assert f"ollama   {ollama.url}" in out.getvalue()
    assert "already registered as local-ollama" in out.getvalue()
    assert "already registered as local-sd" in out.getvalue()

    # The script's model is pulled onto it, with progress up to 100 %.
    pull = await gateway.post("/api/providers/local-ollama/models/llama3.2/pull", headers=auth(key))
    assert pull.status_code == 200 and pull.headers["content-type"] == "application/x-ndjson"
    steps = [json.loads(line) for line in pull.text.splitlines()]
    assert any(0 < s["percent"] < 100 for s in steps), "progress is reported on the way"
    assert steps[-1]["status"] == "success" and steps[-1]["percent"] == 100
    catalog = (await gateway.get("/api/providers/local-ollama/models", headers=auth(key))).json()["models"]
    assert {"name": "llama3.2:latest", "context_window": 131072} in [
        {"name": m["name"], "context_window": m["context_window"]} for m in catalog
    ]

    # The script: Ollama writes it; when Ollama fails, the hosted LLM does.
    local = await gateway.post("/v1/chat/completions", headers=auth(key), json=SCRIPT)
    assert local.status_code == 200, local.text
    assert local.headers["x-gateway-provider"] == "local-ollama"
    assert local.json()["choices"][0]["message"]["content"]
    ollama.fault(path="/api/chat", status=500)
    hosted = await gateway.post("/v1/chat/completions", headers=auth(key), json=SCRIPT)
    assert hosted.status_code == 200, hosted.text
    assert (hosted.headers["x-gateway-provider"], hosted.headers["x-gateway-model"]) == ("openai", "gpt-4o-mini")
    assert hosted.headers["x-gateway-failovers"] == "1"
    assert hosted.json()["choices"][0]["message"]["content"] == "Echo: A 30 second intro"
    ollama.clear_faults()

    # Stills: SD WebUI, then Replicate, then a stock photo.
    served_by = []
    for broken in (None, "local-sd", "replicate"):
        if broken == "local-sd":
            sd.fault(path="/sdapi/v1/txt2img", status=500)
        if broken == "replicate":
            replicate.behaviour = "fail"
        image = await gateway.post("/v1/images/generations", headers=auth(key), json=STILL)
        assert image.status_code == 200, image.text
        served_by.append(image.headers["x-gateway-provider"])
        if served_by[-1] != "pexels":
            assert base64.b64decode(image.json()["data"][0]["b64_json"])[:8] == b"\x89PNG\r\n\x1a\n"
    assert served_by == ["local-sd", "replicate", "pexels"]
    assert replicate.last["status"] == "failed" and fakes["pexels"].requests
    sd.clear_faults()
    replicate.behaviour = "succeed"

    # The voice-over: ElevenLabs, then Piper's WAV.
    eleven = await gateway.post("/v1/audio/speech", headers=auth(key), json=VOICE)
    assert eleven.status_code == 200 and eleven.headers["x-gateway-provider"] == "elevenlabs"
    fakes["elevenlabs"].fault(path="/v1/text-to-speech/", status=503)
    piper = await gateway.post("/v1/audio/speech", headers=auth(key), json=VOICE)
    assert piper.status_code == 200, piper.text
    assert piper.headers["x-gateway-provider"] == "local-piper" and piper.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(piper.content)) as audio:
        assert audio.getnframes() / audio.getframerate() > 1.0

    # The dashboard shows every provider of the studio.
    staff = await console(users["staff"])
    page = (await staff.get("/")).content.decode()
    for name in fakes:
        assert f'href="/providers/{name}"' in page, name

    # A breaker forced open is routed around; reset from the console, SD WebUI serves again.
    forced = await gateway.post("/api/breakers/local-sd/force-open", headers=auth(key), json={"minutes": 10})
    assert forced.json()["state"] == "forced_open"
    around = await gateway.post("/v1/images/generations", headers=auth(key), json=STILL)
    assert around.headers["x-gateway-provider"] == "replicate"
    operator = await console(users["operator"])
    assert (await operator.post("/providers/local-sd/reset")).status_code == 303
    breakers = (await gateway.get("/api/breakers", headers=auth(key))).json()["breakers"]
    assert {b["name"]: b["state"] for b in breakers}["local-sd"] == "closed"
    again = await gateway.post("/v1/images/generations", headers=auth(key), json=STILL)
    assert again.headers["x-gateway-provider"] == "local-sd"

"""Story 5, the media platform (examples/media-platform.yaml): a registry of capabilities (text,
image, video composition, text to speech, speech to text) over hosted APIs and local
services; models discovered and categorised; the free model first on every `cost` route,
the cheapest paid one when it fails."""

from __future__ import annotations

import base64
from contextlib import ExitStack

import pytest

from tests.adapters.mp4 import mp4_seconds
from tests.conftest import auth
from tests.fakes.elevenlabs import FakeElevenLabs
from tests.fakes.ollama import FakeOllama
from tests.fakes.openai import API_KEY as OPENAI_KEY
from tests.fakes.openai import FakeOpenAI
from tests.fakes.piper import FakePiper, speak
from tests.fakes.replicate import API_TOKEN as REPLICATE_TOKEN
from tests.fakes.replicate import FakeReplicate
from tests.fakes.sdwebui import FakeSDWebUI
from tests.fakes.whisper import FakeWhisper

from .conftest import provider_entry

pytestmark = pytest.mark.django_db(transaction=True)

LOCAL = ("local-ollama", "local-sd", "local-piper", "local-whisper")
REMOTE = ("openai", "replicate", "elevenlabs")


@pytest.fixture
def fakes():
    with ExitStack() as stack:
        yield {
            "local-ollama": stack.enter_context(FakeOllama()),
            "local-sd": stack.enter_context(FakeSDWebUI()),
            "local-piper": stack.enter_context(FakePiper()),
            "local-whisper": stack.enter_context(FakeWhisper()),
            "openai": stack.enter_context(FakeOpenAI()),
            "replicate": stack.enter_context(FakeReplicate()),
            "elevenlabs": stack.enter_context(FakeElevenLabs()),
        }


@pytest.fixture
async def platform(load_story, fakes):
    def test_sized(config: dict) -> None:
        provider_entry(config, "replicate")["options"]["poll_interval_s"] = 0.01

    base_urls = {name: fake.url for name, fake in fakes.items()}
    for name in ("openai", "local-whisper"):
        base_urls[name] += "/v1"
    return await load_story(
        "media-platform",
        base_urls=base_urls,
        tweak=test_sized,
        env={"OPENAI_API_KEY": OPENAI_KEY, "REPLICATE_API_TOKEN": REPLICATE_TOKEN, "ELEVENLABS_API_KEY": "el-test-key"},
    )


class Calls:
    """One call per capability, as the platform's applications make them; each returns who
    served it (and checks what came back)."""

    def __init__(self, gateway, key: str, whisper: FakeWhisper) -> None:  # type: ignore[no-untyped-def]
        self.gateway, self.headers, self.whisper = gateway, auth(key), whisper

    async def text(self) -> str:
        answer = await self.gateway.post(
            "/v1/chat/completions",
            headers=self.headers,
            json={"model": "text", "messages": [{"role": "user", "content": "Title ideas for a cooking show"}]},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"]
        return answer.headers["x-gateway-provider"]

    async def image(self) -> str:
        answer = await self.gateway.post(
            "/v1/images/generations",
            headers=self.headers,
            json={"model": "images", "prompt": "a bowl of ramen", "size": "256x256", "response_format": "b64_json"},
        )
        assert answer.status_code == 200, answer.text
        assert base64.b64decode(answer.json()["data"][0]["b64_json"])[:4] == b"\x89PNG"
        return answer.headers["x-gateway-provider"]

    async def video(self) -> str:
        answer = await self.gateway.post(
            "/api/execute",
            headers=self.headers,
            json={
                "capability": "video",
                "route": "video",
                "input": {
                    "prompt": "steam rising from a bowl",
                    "images": ["https://example.com/bowl.png"],
                    "duration_s": 4,
                },
                "options": {"response_format": "b64_json"},
            },
        )
        assert answer.status_code == 200, answer.text
        assert mp4_seconds(base64.b64decode(answer.json()["output"]["data"][0]["b64_json"])) == 4
        return f"{answer.json()['provider']}/{answer.json()['model']}"

    async def speech(self) -> str:
        answer = await self.gateway.post(
            "/v1/audio/speech",
            headers=self.headers,
            json={"model": "speech", "input": "Tonight: ramen from scratch.", "voice": "alloy"},
        )
        assert answer.status_code == 200, answer.text
        assert answer.content
        return answer.headers["x-gateway-provider"]

    async def transcription(self) -> str:
        audio = speak("welcome to the kitchen")
        self.whisper.learn(audio, "welcome to the kitchen")
        answer = await self.gateway.post(
            "/v1/audio/transcriptions",
            headers=self.headers,
            data={"model": "transcribe"},
            files={"file": ("clip.wav", audio, "audio/wav")},
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["text"]
        return answer.headers["x-gateway-provider"]


async def test_every_capability_is_served_free_first_and_by_the_cheapest_paid_model_after(
    platform, gateway, key, fakes
):
    calls = Calls(gateway, key, fakes["local-whisper"])
    registry = (await gateway.get("/api/providers", headers=auth(key))).json()["providers"]
    offered = {capability for p in registry for capability in p["capabilities"]}
    assert offered >= {"chat", "image", "video", "tts", "stt"}
    assert {p["name"] for p in registry} == {*LOCAL, *REMOTE}

    assert [await calls.text(), await calls.image(), await calls.speech(), await calls.transcription()] == [
        "local-ollama",
        "local-sd",
        "local-piper",
        "local-whisper",
    ]
    assert await calls.video() == "replicate/wan-video/wan-2.2-t2v-fast"  # $0.05 a video, not $0.50
    assert fakes["openai"].requests == [] and fakes["elevenlabs"].requests == []  # nothing paid

    # Each local service failing: the cheapest paid model in its route takes over.
    fakes["local-ollama"].fault(path="/api/chat", status=500)
    fakes["local-sd"].fault(path="/sdapi/v1/txt2img", status=500)
    fakes["local-piper"].fault(path="/synthesize", status=500)
    fakes["local-whisper"].fault(path="/v1/audio/transcriptions", status=503)
    assert [await calls.text(), await calls.image(), await calls.speech(), await calls.transcription()] == [
        "openai",
        "replicate",
        "openai",
        "openai",
    ]  # FLUX at $0.003 before DALL-E; tts-1 before ElevenLabs
    assert fakes["elevenlabs"].requests == []


async def test_models_are_discovered_and_categorised(platform, gateway, key):
    async def refresh(name: str) -> dict[str, dict]:
        answer = await gateway.get(f"/api/providers/{name}/models?refresh=true", headers=auth(key))
        assert answer.status_code == 200, answer.text
        return {m["name"]: m for m in answer.json()["models"]}

    ollama = await refresh("local-ollama")  # the file lists none: all of these were discovered
    assert (ollama["llama3.2:latest"]["capabilities"], ollama["llama3.2:latest"]["context_window"]) == (
        ["chat"],
        131072,
    )
    assert (ollama["nomic-embed-text:latest"]["capabilities"], ollama["nomic-embed-text:latest"]["context_window"]) == (
        ["embeddings"],
        2048,
    )
    assert all(m["source"] == "discovered" and m["free"] for m in ollama.values())

    openai = await refresh("openai")
    assert {
        name: m["capabilities"]
        for name, m in openai.items()
        if name in ("gpt-4o-mini", "dall-e-3", "tts-1", "whisper-1", "text-embedding-3-small")
    } == {
        "gpt-4o-mini": ["chat"],
        "dall-e-3": ["image"],
        "tts-1": ["tts"],
        "whisper-1": ["stt"],
        "text-embedding-3-small": ["embeddings"],
    }
    assert not openai["gpt-4o-mini"]["free"] and openai["gpt-4o-mini"]["context_window"] == 128000  # the file's
    assert openai["text-embedding-3-small"]["free"]  # discovered, no price set for it

    replicate = await refresh("replicate")
    assert {name: m["capabilities"] for name, m in replicate.items()} == {
        "black-forest-labs/flux-schnell": ["image"],
        "wan-video/wan-2.2-t2v-fast": ["video"],
        "minimax/video-01": ["video"],
    }
    whisper = await refresh("local-whisper")
    assert {m["capabilities"][0] for m in whisper.values()} == {"stt"} and len(whisper) == 2

    listed = (await gateway.get("/v1/models", headers=auth(key))).json()["data"]
    routes = {m["id"]: m["capability"] for m in listed if m["kind"] == "route"}
    assert routes == {"text": "chat", "images": "image", "video": "video", "speech": "tts", "transcribe": "stt"}
    models = {m["id"]: m["capabilities"] for m in listed if m["kind"] == "provider_model"}
    assert models["local-ollama/llama3.2:latest"] == ["chat"]
    assert models["replicate/minimax/video-01"] == ["video"]
    assert models["local-whisper/Systran/faster-whisper-small"] == ["stt"]

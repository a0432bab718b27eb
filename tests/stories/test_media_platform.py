"""AutoMarket, the media platform (examples/media-platform.yaml), under uvicorn: a registry of
capabilities (text, image, video composition, text to speech, generated sound, speech to text)
over hosted APIs and the platform's own services; models discovered and categorised, with the
prices OpenRouter and Together publish read from their model lists; every route by `cost`:
free first, then by price, a model whose price is unknown last; fal.ai's queue for images,
speech and sound; speech in the format asked or the target skipped; a video composed by the
local ffmpeg service from a still and a voice made a moment before; speech to text by a
whisper-asr-webservice whose URL, like the ffmpeg service's, comes from the environment;
every service health-checked by the monitor; a price removed through the configuration."""

from __future__ import annotations

import base64
import copy
import io
import wave
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import openai
import pytest

from tests.adapters.mp4 import mp4_seconds
from tests.fakes import DEFAULTS
from tests.fakes.elevenlabs import FakeElevenLabs
from tests.fakes.fal import API_KEY as FAL_KEY
from tests.fakes.fal import FakeFal
from tests.fakes.ffmpeg import FFMPEG_VERSION, FakeFFmpeg
from tests.fakes.ollama import FakeOllama
from tests.fakes.openai import API_KEY as OPENAI_KEY
from tests.fakes.openai import FakeOpenAI
from tests.fakes.openrouter import FakeOpenRouter
from tests.fakes.piper import FakePiper, speak
from tests.fakes.replicate import API_TOKEN as REPLICATE_TOKEN
from tests.fakes.replicate import FakeReplicate
from tests.fakes.sdwebui import FakeSDWebUI
from tests.fakes.speech_server import CHATTERBOX_FORMATS, FakeSpeechServer
from tests.fakes.together import FakeTogether
from tests.fakes.whisper_asr import VERSION as WHISPER_ASR_VERSION
from tests.fakes.whisper_asr import FakeWhisperASR

from .listeners import status_label
from .stage import Stage, Template, open_stage, provider_entry

pytestmark = pytest.mark.e2e

LOCAL = ("local-ollama", "local-sd", "local-tts", "local-piper", "local-whisper", "local-ffmpeg")
HOSTED = ("openai", "openrouter", "together", "fal", "replicate", "elevenlabs")
PNG = b"\x89PNG\r\n\x1a\n"
LLAMA_70B = "meta-llama/Llama-3.3-70B-Instruct-Turbo"
# Each service's own call path: where a fault makes it fail.
CHAT_PATHS = {
    "local-ollama": "/api/chat",
    "openai": "/v1/chat/completions",
    "openrouter": "/api/v1/chat/completions",
    "together": "/v1/chat/completions",
}


@pytest.fixture(scope="module")
def platform(template: Template, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    with ExitStack() as stack:
        fakes = {
            "local-ollama": stack.enter_context(FakeOllama()),
            "local-sd": stack.enter_context(FakeSDWebUI()),
            # A Chatterbox TTS API server: WAV only, and no /v1/models.
            "local-tts": stack.enter_context(FakeSpeechServer(formats=CHATTERBOX_FORMATS, default_format="wav")),
            "local-piper": stack.enter_context(FakePiper()),
            "local-whisper": stack.enter_context(FakeWhisperASR()),
            "local-ffmpeg": stack.enter_context(FakeFFmpeg()),
            "openai": stack.enter_context(FakeOpenAI()),
            "openrouter": stack.enter_context(FakeOpenRouter(prices=DEFAULTS["openrouter"]["prices"])),  # type: ignore[arg-type]
            "together": stack.enter_context(FakeTogether(**DEFAULTS["together"])),  # type: ignore[arg-type]
            "fal": stack.enter_context(FakeFal(queue_polls=1, progress_polls=1)),
            "replicate": stack.enter_context(FakeReplicate()),
            "elevenlabs": stack.enter_context(FakeElevenLabs()),
        }

        def test_sized(config: dict) -> None:
            """The queues and the composition service polled every 10 ms, the composition
            service checked every second; fal's platform API (its probe's) is the fake too."""
            fal = provider_entry(config, "fal")["options"]
            fal.update(platform_url=fakes["fal"].url, poll_interval_s=0.01)
            provider_entry(config, "replicate")["options"]["poll_interval_s"] = 0.01
            ffmpeg = provider_entry(config, "local-ffmpeg")
            ffmpeg.setdefault("options", {})["poll_interval_s"] = 0.01
            ffmpeg["health_check"] = {"interval_s": 1}

        stage = open_stage(
            template,
            tmp_path_factory.mktemp("media-platform"),
            "media-platform",
            fakes,
            paths={"local-tts": "/v1", "openai": "/v1", "openrouter": "/api/v1", "together": "/v1"},
            tweak=test_sized,
            env={
                "OPENAI_API_KEY": OPENAI_KEY,
                "OPENROUTER_API_KEY": OPENAI_KEY,
                "TOGETHER_API_KEY": OPENAI_KEY,
                "FAL_KEY": FAL_KEY,
                "REPLICATE_API_TOKEN": REPLICATE_TOKEN,
                "ELEVENLABS_API_KEY": "el-test-key",
                # The services' addresses, exported as an operator does (base_url: env:...).
                "WHISPER_SERVICE_URL": fakes["local-whisper"].url,
                "FFMPEG_SERVICE_URL": fakes["local-ffmpeg"].url,
            },
        )
        stack.callback(stage.stop)
        yield stage


@pytest.fixture(autouse=True)
def calm(platform: Stage) -> Iterator[None]:
    yield
    platform.calm()
    platform.fakes["fal"].behaviour = "succeed"  # type: ignore[attr-defined]
    platform.fakes["local-ffmpeg"].behaviour = "succeed"  # type: ignore[attr-defined]
    platform.fakes["local-ffmpeg"].health = "ok"  # type: ignore[attr-defined]


def refresh(stage: Stage, name: str) -> dict[str, dict[str, Any]]:
    """The provider's catalog after asking it for its models (discovery, on demand)."""
    with stage.http() as http:
        answer = http.get(f"/api/providers/{name}/models?refresh=true")
    assert answer.status_code == 200, answer.text
    return {m["name"]: m for m in answer.json()["models"]}


def tried(error: openai.APIStatusError | dict[str, Any]) -> list[tuple[str, str]]:
    """Who a failed request tried, in order: (provider, model) of each call sent."""
    body = error if isinstance(error, dict) else error.response.json()
    return [(a["provider"], a["model"]) for a in body["error"]["attempts"] if a["skipped"] is None]


def data_url(content: bytes, media_type: str) -> str:
    return f"data:{media_type};base64,{base64.b64encode(content).decode()}"


def test_the_registry_lists_every_capability_and_each_one_on_request(platform):
    registry = platform.get("/api/providers")["providers"]
    assert {p["name"] for p in registry} == {*LOCAL, *HOSTED}
    assert {c for p in registry for c in p["capabilities"]} >= {"chat", "image", "video", "tts", "stt"}

    def offering(capability: str) -> set[str]:
        return {p["name"] for p in platform.get(f"/api/providers?capability={capability}")["providers"]}

    assert offering("stt") == {"local-whisper", "openai"}
    assert offering("video") == {"local-ffmpeg", "replicate"}
    assert offering("tts") == {"local-tts", "local-piper", "openai", "fal", "elevenlabs"}

    routes = {m["id"]: m["capability"] for m in platform.get("/v1/models")["data"] if m["kind"] == "route"}
    assert routes == {
        "text": "chat",
        "images": "image",
        "video": "video",
        "speech": "tts",
        "sound": "tts",
        "transcribe": "stt",
    }


def test_models_are_discovered_categorised_and_priced_as_their_providers_publish(platform):
    ollama = refresh(platform, "local-ollama")  # the file names only llama3.2's price
    assert (ollama["llama3.2:latest"]["capabilities"], ollama["llama3.2:latest"]["context_window"]) == (
        ["chat"],
        131072,
    )
    assert ollama["nomic-embed-text:latest"]["capabilities"] == ["embeddings"]
    assert ollama["llama3.2:latest"]["source"] == "discovered"
    assert ollama["llama3.2"]["free"]  # the file's price: 0

    hosted = refresh(platform, "openai")
    assert {name: hosted[name]["capabilities"] for name in ("gpt-4o-mini", "gpt-image-1", "o3-mini", "whisper-1")} == {
        "gpt-4o-mini": ["chat"],
        "gpt-image-1": ["image"],
        "o3-mini": ["chat"],
        "whisper-1": ["stt"],
    }
    # Found by discovery, priced nowhere: unknown, not free.
    for name in ("gpt-image-1", "o3-mini"):
        assert (hosted[name]["price_known"], hosted[name]["free"], hosted[name]["input_price_per_mtok"]) == (
            False,
            False,
            None,
        ), name
    assert hosted["gpt-4o-mini"]["input_price_per_mtok"] == 0.15  # the file's

    # OpenRouter publishes USD per token; the catalog keeps USD per million tokens.
    router = refresh(platform, "openrouter")
    o3 = router["openai/o3-mini"]
    assert (o3["input_price_per_mtok"], o3["output_price_per_mtok"]) == (1.1, 4.4)
    assert set(o3["published"]) == {"input_price_per_mtok", "output_price_per_mtok"}
    assert router["google/gemma-3-27b-it:free"]["free"]
    assert not router["openrouter/auto"]["price_known"]  # "-1": depends on the model it picks

    together = refresh(platform, "together")
    assert (together[LLAMA_70B]["input_price_per_mtok"], together[LLAMA_70B]["output_price_per_mtok"]) == (0.88, 0.88)
    assert not together["black-forest-labs/FLUX.1-schnell"]["price_known"]  # all 0: not sold per token

    fal = refresh(platform, "fal")
    assert {name: m["capabilities"] for name, m in fal.items()} == {
        "fal-ai/flux/schnell": ["image"],
        "fal-ai/kokoro/american-english": ["tts"],
        "fal-ai/stable-audio": ["tts"],
    }
    replicate = refresh(platform, "replicate")
    assert replicate["minimax/video-01"]["capabilities"] == ["video"]
    assert refresh(platform, "local-whisper")["whisper"]["capabilities"] == ["stt"]

    listed = {m["id"]: m for m in platform.get("/v1/models")["data"] if m["kind"] == "provider_model"}
    assert listed["openrouter/openai/o3-mini"]["capabilities"] == ["chat"]
    assert listed["local-ollama/llama3.2:latest"]["capabilities"] == ["chat"]


def test_text_goes_to_the_free_model_then_by_price_and_to_an_unknown_price_last(platform):
    for name in ("openrouter", "together"):
        refresh(platform, name)  # their published prices, read at discovery
    client = platform.openai()
    title = [{"role": "user", "content": "Title ideas for a cooking show"}]
    local = client.chat.completions.with_raw_response.create(model="text", messages=title)
    assert (local.headers["x-gateway-provider"], local.headers["x-gateway-model"]) == ("local-ollama", "llama3.2")

    # Every service failing: the order they were tried in is the route's cost order.
    for name, path in CHAT_PATHS.items():
        platform.fakes[name].fault(path=path, status=503)
    with pytest.raises(openai.APIStatusError) as failed:
        client.chat.completions.create(model="text", messages=title)
    assert tried(failed.value) == [
        ("local-ollama", "llama3.2"),  # free
        ("openai", "gpt-4o-mini"),  # $0.15 + $0.60 (the file's)
        ("together", LLAMA_70B),  # $0.88 + $0.88 (Together's list)
        ("openrouter", "openai/o3-mini"),  # $1.10 + $4.40 (OpenRouter's list)
        ("openai", "o3-mini"),  # unknown: last, not first as "free"
    ]

    # Only Ollama down: the cheapest priced model serves.
    for name in ("openai", "openrouter", "together"):
        platform.fakes[name].clear_faults()
    paid = client.chat.completions.with_raw_response.create(model="text", messages=title)
    assert (paid.headers["x-gateway-provider"], paid.headers["x-gateway-model"]) == ("openai", "gpt-4o-mini")


def test_images_come_from_sd_webui_then_fal_s_queue_then_dall_e_and_an_unpriced_model_last(platform):
    images = platform.openai().images
    picture = {"model": "images", "prompt": "a bowl of ramen", "size": "512x512", "response_format": "b64_json"}
    local = images.with_raw_response.generate(**picture)
    assert local.headers["x-gateway-provider"] == "local-sd"
    assert base64.b64decode(local.parse().data[0].b64_json or "")[:8] == PNG

    # SD WebUI down: fal.ai's queue, submitted, polled through IN_QUEUE and IN_PROGRESS, fetched.
    fal = platform.fakes["fal"]
    platform.fakes["local-sd"].fault(path="/sdapi/v1/txt2img", status=500)
    queued = images.with_raw_response.generate(**picture)
    assert (queued.headers["x-gateway-provider"], queued.headers["x-gateway-model"]) == ("fal", "fal-ai/flux/schnell")
    assert base64.b64decode(queued.parse().data[0].b64_json or "")[:8] == PNG
    job = fal.last
    assert (job["endpoint"], job["status"], job["input"]["prompt"]) == (
        "fal-ai/flux/schnell",
        "COMPLETED",
        "a bowl of ramen",
    )
    assert job["input"]["image_size"] == {"width": 512, "height": 512}
    assert len(fal.requests_to(f"/fal-ai/flux/requests/{job['id']}/status")) >= 3

    # fal's runner crashing: DALL-E 3 at $0.04; gpt-image-1 (price unknown) only after it.
    fal.behaviour = "fail"
    assert images.with_raw_response.generate(**picture).headers["x-gateway-model"] == "dall-e-3"
    platform.fakes["openai"].fault(path="/v1/images/generations", status=500)
    with pytest.raises(openai.APIStatusError) as failed:
        images.generate(**picture)
    assert tried(failed.value) == [
        ("local-sd", "v1-5-pruned-emaonly"),
        ("fal", "fal-ai/flux/schnell"),
        ("openai", "dall-e-3"),
        ("openai", "gpt-image-1"),
    ]


def test_speech_is_made_in_the_format_asked_by_the_free_voices_first(platform):
    speech = platform.openai().audio.speech
    line = {"model": "speech", "input": "Tonight: ramen from scratch.", "voice": "alloy"}
    wav = speech.with_raw_response.create(**line, response_format="wav")
    assert (wav.headers["x-gateway-provider"], wav.headers["content-type"]) == ("local-tts", "audio/wav")
    assert wav.content[:4] == b"RIFF"

    # mp3 asked for: Chatterbox and Piper make WAV only, so they are skipped (nothing sent to
    # them) and the cheapest voice that makes mp3 speaks.
    sent_to_chatterbox = len(platform.fakes["local-tts"].requests_to("/v1/audio/speech"))
    mp3 = speech.with_raw_response.create(**line, response_format="mp3")
    assert (mp3.headers["x-gateway-provider"], mp3.headers["content-type"]) == ("openai", "audio/mpeg")
    attempts = platform.logged(mp3.headers["x-request-id"])["attempts"]
    assert [(a["provider"], a["skipped"]) for a in attempts] == [
        ("local-tts", "unsupported"),
        ("local-piper", "unsupported"),
        ("openai", None),
    ]
    assert len(platform.fakes["local-tts"].requests_to("/v1/audio/speech")) == sent_to_chatterbox

    # Chatterbox down: Piper; both down and OpenAI too: fal's Kokoro, through its queue.
    platform.fakes["local-tts"].fault(path="/v1/audio/speech", status=503)
    assert speech.with_raw_response.create(**line, response_format="wav").headers["x-gateway-provider"] == "local-piper"
    platform.fakes["local-piper"].fault(path="/", status=500)
    platform.fakes["openai"].fault(path="/v1/audio/speech", status=503)
    kokoro = speech.with_raw_response.create(**line, response_format="wav")
    assert (kokoro.headers["x-gateway-provider"], kokoro.headers["x-gateway-model"]) == (
        "fal",
        "fal-ai/kokoro/american-english",
    )
    with wave.open(io.BytesIO(kokoro.content)) as audio:
        assert audio.getnframes() > 0
    job = platform.fakes["fal"].last
    assert job["input"]["prompt"] == "Tonight: ramen from scratch." and job["input"]["voice"] == "af_heart"


def test_sound_is_generated_on_fal_and_its_unknown_price_is_logged_as_unknown(platform):
    speech = platform.openai().audio.speech
    before = platform.analytics()["routes"].get("sound", {}).get("cost_unknown", 0)
    sound = speech.with_raw_response.create(
        model="sound", input="rain on a tin roof", voice="alloy", response_format="wav"
    )
    assert (sound.headers["x-gateway-provider"], sound.headers["x-gateway-model"]) == ("fal", "fal-ai/stable-audio")
    with wave.open(io.BytesIO(sound.content)) as audio:
        assert audio.getnframes() > 0
    job = platform.fakes["fal"].last
    assert (job["endpoint"], job["input"]["prompt"]) == ("fal-ai/stable-audio", "rain on a tin roof")
    # The file gives stable-audio no price: the request's cost is unknown, never 0.
    assert platform.logged(sound.headers["x-request-id"])["cost"] is None
    # ... and analytics count it apart, adding nothing to the known costs.
    counted = platform.analytics()["routes"]["sound"]
    assert (counted["cost_unknown"] - before, counted["cost"]) == (1, 0)

    # It makes WAV: an mp3 asked of the one target is refused, naming the format.
    with pytest.raises(openai.BadRequestError) as refused:
        speech.create(model="sound", input="rain on a tin roof", voice="alloy", response_format="mp3")
    assert "mp3" in refused.value.response.json()["error"]["message"]


def test_a_video_is_composed_locally_from_a_still_and_a_voice_then_by_the_cheaper_hosted_model(platform):
    client = platform.openai()
    still = client.images.generate(model="images", prompt="a bowl of ramen", size="64x64", response_format="b64_json")
    voice = client.audio.speech.create(model="speech", input="Ramen night.", voice="alloy", response_format="wav")
    scene = {
        "prompt": "Ramen night",
        "images": [data_url(base64.b64decode(still.data[0].b64_json or ""), "image/png")] * 2,
        "audio": data_url(voice.content, "audio/wav"),
        "duration_s": 4,
    }

    def compose() -> dict[str, Any]:
        answer = platform.execute(
            capability="video", route="video", input=scene, options={"response_format": "b64_json"}
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert mp4_seconds(base64.b64decode(body["output"]["data"][0]["b64_json"])) == 4
        return body

    local = compose()
    assert (local["provider"], local["cost"]) == ("local-ffmpeg", 0)
    job = list(platform.fakes["local-ffmpeg"].jobs.values())[-1]
    inputs = job["request"]["inputs"]
    assert [(i["type"], i["url"][:15]) for i in inputs] == [
        ("image", "data:image/png;"),
        ("image", "data:image/png;"),
        ("audio", "data:audio/wav;"),
    ]
    assert job["request"]["metadata"]["title"] == "Ramen night"

    # The composition failing: Replicate's cheaper video model ($0.05, not $0.50).
    platform.fakes["local-ffmpeg"].behaviour = "fail"
    hosted = compose()
    assert (hosted["provider"], hosted["model"]) == ("replicate", "wan-video/wan-2.2-t2v-fast")
    assert hosted["cost"] == pytest.approx(0.05)
    first = hosted["attempts"][0]
    assert (first["provider"], first["reason"]) == ("local-ffmpeg", "job_failed")


def test_speech_is_transcribed_by_the_whisper_service_the_environment_names(platform):
    whisper = platform.fakes["local-whisper"]
    clip = speak("welcome to the kitchen")
    whisper.learn(clip, "welcome to the kitchen")
    transcriptions = platform.openai().audio.transcriptions

    local = transcriptions.with_raw_response.create(model="transcribe", file=("clip.wav", clip, "audio/wav"))
    assert local.headers["x-gateway-provider"] == "local-whisper"
    assert local.parse().text == "welcome to the kitchen"
    sent = whisper.requests_to("/asr")[-1]
    assert sent.query["output"] == "json" and b'name="audio_file"' in sent.body
    # The configuration keeps the reference; the call above went where the variable points.
    registered = platform.get("/api/providers/local-whisper")
    assert (registered["base_url"], registered["problem"]) == ("env:WHISPER_SERVICE_URL", None)

    whisper.fault(path="/asr", status=500)
    hosted = transcriptions.with_raw_response.create(model="transcribe", file=("clip.wav", clip, "audio/wav"))
    assert (hosted.headers["x-gateway-provider"], hosted.headers["x-gateway-model"]) == ("openai", "whisper-1")


def test_every_service_is_health_checked_by_the_monitor_on_its_own(platform):
    def probed() -> dict[str, dict[str, Any]] | None:
        health = platform.health()
        return health if all(health[name].get("last_check_at") for name in (*LOCAL, *HOSTED)) else None

    platform.until(probed, "every provider checked by the monitor")
    details = {
        name: platform.get(f"/api/health/{name}").get("probe") or {}
        for name in ("local-ffmpeg", "local-whisper", "fal")
    }
    assert details["fal"]["ok"], details["fal"]  # fal's pricing API: the key checked, nothing run
    assert details["local-ffmpeg"]["ok"] and details["local-ffmpeg"]["detail"]["ffmpeg"] == FFMPEG_VERSION
    assert details["local-whisper"]["ok"] and details["local-whisper"]["detail"]["version"] == WHISPER_ASR_VERSION
    summary = platform.get("/api/health")["summary"]
    assert summary["total"] == len(LOCAL) + len(HOSTED)

    # The composition service says it cannot compose: the monitor's next check says so, on
    # the events stream, in the API and on the dashboard's card.
    platform.until(lambda: platform.get("/api/health/local-ffmpeg")["status"] == "healthy", "local-ffmpeg healthy")
    with platform.events() as events, platform.socket("viewer") as socket:
        platform.fakes["local-ffmpeg"].health = "degraded"
        events.wait("provider.status", "local-ffmpeg", lambda e: e.data["to"] in ("degraded", "unhealthy"))
        socket.wait(lambda m: status_label(m, "local-ffmpeg") in ("degraded", "unhealthy"))
    assert platform.get("/api/health/local-ffmpeg")["status"] in ("degraded", "unhealthy")


def test_a_price_removed_from_the_configuration_is_unknown_and_tried_last(platform):
    with platform.http() as http:
        was = http.get("/api/config").json()
        config = copy.deepcopy(was)
        del provider_entry(config, "openai")["prices"]["dall-e-3"]
        assert http.put("/api/config", json=config).status_code == 200
        try:
            catalog = {m["name"]: m for m in platform.get("/api/providers/openai/models")["models"]}
            assert catalog["dall-e-3"]["price_per_image"] is None and not catalog["dall-e-3"]["price_known"]
            for name, path in (("local-sd", "/sdapi/v1/txt2img"), ("openai", "/v1/images/generations")):
                platform.fakes[name].fault(path=path, status=500)
            platform.fakes["fal"].behaviour = "fail"
            failed = platform.post("/v1/images/generations", json={"model": "images", "prompt": "ramen"})
            assert failed.status_code == 502, failed.text
            assert tried(failed.json()) == [
                ("local-sd", "v1-5-pruned-emaonly"),
                ("fal", "fal-ai/flux/schnell"),
                ("openai", "gpt-image-1"),  # both unknown now: in the file's order
                ("openai", "dall-e-3"),
            ]
        finally:
            assert http.put("/api/config", json=was).status_code == 200

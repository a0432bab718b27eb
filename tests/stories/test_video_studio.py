"""Aura, the video studio (examples/video-studio.yaml), under daphne: Ollama found on its port;
the first script asked for before its model is on Ollama (the route's model is missing: the
hosted LLM writes it and health says why), then the model pulled with progress and the script
written locally; Ollama failing over to OpenAI; stills from SD WebUI, then Replicate, then a
stock photo; the voice-over from ElevenLabs, then Piper, in the format asked for; every provider
on the dashboard and its probe's details on the provider's page; a breaker forced open and
reset from the console, heard on the events stream and the console's websocket."""

from __future__ import annotations

import base64
import io
import json
import wave
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import openai
import pytest

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

from .listeners import breaker_label
from .stage import Stage, Template, open_stage, provider_entry

pytestmark = pytest.mark.e2e

SCRIPT = [{"role": "user", "content": "A 30 second intro"}]
VOICE = "21m00Tcm4TlvDq8ikWAM"


@pytest.fixture(scope="module")
def studio(template: Template, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    def test_sized(config: dict) -> None:
        provider_entry(config, "replicate")["options"]["poll_interval_s"] = 0.01

    with ExitStack() as stack:
        fakes = {
            # Ollama is running, but the script's model is not on it yet.
            "local-ollama": stack.enter_context(FakeOllama(installed=("nomic-embed-text:latest",))),
            "openai": stack.enter_context(FakeOpenAI()),
            "local-sd": stack.enter_context(FakeSDWebUI()),
            "replicate": stack.enter_context(FakeReplicate()),
            "pexels": stack.enter_context(FakeStockPhotos()),
            "elevenlabs": stack.enter_context(FakeElevenLabs()),
            "local-piper": stack.enter_context(FakePiper()),
        }
        stage = open_stage(
            template,
            tmp_path_factory.mktemp("video-studio"),
            "video-studio",
            fakes,
            paths={"openai": "/v1"},
            tweak=test_sized,
            server_kind="daphne",
            env={
                "OPENAI_API_KEY": OPENAI_KEY,
                "REPLICATE_API_TOKEN": REPLICATE_TOKEN,
                "PEXELS_API_KEY": PEXELS_KEY,
                "ELEVENLABS_API_KEY": "el-test-key",
            },
        )
        stack.callback(stage.stop)
        yield stage


@pytest.fixture(autouse=True)
def calm(studio: Stage) -> Iterator[None]:
    yield
    studio.calm()
    studio.fakes["replicate"].behaviour = "succeed"  # type: ignore[attr-defined]


def test_the_first_script_is_written_by_openai_while_the_model_is_missing_then_by_ollama_once_pulled(studio):
    client = studio.openai()
    with studio.events() as events:
        first = client.chat.completions.with_raw_response.create(model="script", messages=SCRIPT)

        # Ollama answered 404 for the route's model: the route is misconfigured for that target,
        # so the chain fell back, and health and the events say why.
        assert (first.headers["x-gateway-provider"], first.headers["x-gateway-attempts"]) == ("openai", "2")
        assert first.parse().choices[0].message.content == "Echo: A 30 second intro"
        missing = events.wait("model.missing", "local-ollama")
        assert "llama3.2" in json.dumps(missing.data)
        attempts = studio.logged(first.headers["x-request-id"])["attempts"]
        assert (attempts[0]["provider"], attempts[0]["outcome"], attempts[0]["status"]) == (
            "local-ollama",
            "target_misconfigured",
            404,
        )
        assert "model_missing" in json.dumps(studio.get("/api/health/local-ollama"))

        # An operator pulls it from the provider's page; its socket shows the progress.
        with studio.socket("oper", query="?provider=local-ollama") as socket:
            operator = studio.console("oper")
            assert operator.post("/providers/local-ollama/pull", data={"model": "llama3.2"}).status_code == 303
            socket.wait(lambda m: "llama3.2" in m and "100" in m)
        events.wait("provider.action", "local-ollama", lambda e: e.data["reason"] == "pulled llama3.2")
    studio.until(lambda: "model_missing" not in json.dumps(studio.get("/api/health/local-ollama")), "the pull cleared")
    local = client.chat.completions.with_raw_response.create(model="script", messages=SCRIPT)
    assert (local.headers["x-gateway-provider"], local.headers["x-gateway-attempts"]) == ("local-ollama", "1")
    assert local.parse().choices[0].message.content


def test_a_model_pulled_through_the_api_serves_the_script_at_once(studio):
    client = studio.openai()
    # The model is removed from Ollama (its own API), so the route finds it missing again.
    assert (
        httpx.request(
            "DELETE", studio.fakes["local-ollama"].url + "/api/delete", json={"model": "llama3.2"}
        ).status_code
        == 200
    )
    with studio.events() as events:
        missing = client.chat.completions.with_raw_response.create(model="script", messages=SCRIPT)
        assert missing.headers["x-gateway-provider"] == "openai"
        events.wait("model.missing", "local-ollama")

    # Pulled with progress (ndjson lines up to 100 %), as the file's header shows with curl.
    with (
        studio.http() as http,
        http.stream("POST", "/api/providers/local-ollama/models/llama3.2/pull") as pull,
    ):
        assert pull.status_code == 200 and pull.headers["content-type"] == "application/x-ndjson"
        steps = [json.loads(line) for line in pull.iter_lines() if line]
    assert any(0 < s["percent"] < 100 for s in steps), "progress is reported on the way"
    assert steps[-1]["status"] == "success" and steps[-1]["percent"] == 100
    catalog = studio.get("/api/providers/local-ollama/models")["models"]
    assert {"name": "llama3.2:latest", "context_window": 131072} in [
        {"name": m["name"], "context_window": m["context_window"]} for m in catalog
    ]
    local = client.chat.completions.with_raw_response.create(model="script", messages=SCRIPT)
    assert local.headers["x-gateway-provider"] == "local-ollama"


def test_discovery_finds_ollama_and_sd_webui_where_the_file_registered_them(studio):
    ports = {
        "DISCOVERY_HOSTS": "127.0.0.1",
        "DISCOVERY_OLLAMA_PORTS": str(studio.fakes["local-ollama"].port),
        "DISCOVERY_SDWEBUI_PORTS": str(studio.fakes["local-sd"].port),
        "DISCOVERY_OPENAI_PORTS": "",
    }
    out = studio.manage("discover", "--register", env=ports)
    assert f"ollama   {studio.fakes['local-ollama'].url}" in out, out
    assert "already registered as local-ollama" in out and "already registered as local-sd" in out


def test_ollama_failing_hands_the_script_to_openai(studio):
    studio.fakes["local-ollama"].fault(path="/api/chat", status=500)
    answer = studio.openai().chat.completions.with_raw_response.create(model="script", messages=SCRIPT)

    assert (answer.headers["x-gateway-provider"], answer.headers["x-gateway-model"]) == ("openai", "gpt-4o-mini")
    assert answer.headers["x-gateway-failovers"] == "1"
    assert answer.parse().choices[0].message.content == "Echo: A 30 second intro"


def test_stills_come_from_sd_webui_then_replicate_then_a_stock_photo(studio):
    images = studio.openai().images
    served_by = []
    for broken in (None, "local-sd", "replicate"):
        if broken == "local-sd":
            studio.fakes["local-sd"].fault(path="/sdapi/v1/txt2img", status=500)
        if broken == "replicate":
            studio.fakes["replicate"].behaviour = "fail"
        answer = images.with_raw_response.generate(
            model="stills", prompt="a lighthouse at dusk", size="64x64", response_format="b64_json"
        )
        served_by.append(answer.headers["x-gateway-provider"])
        picture = base64.b64decode(answer.parse().data[0].b64_json or "")
        assert picture[:8] == b"\x89PNG\r\n\x1a\n" or picture[:2] == b"\xff\xd8", served_by
    assert served_by == ["local-sd", "replicate", "pexels"]
    assert studio.fakes["pexels"].requests


def test_the_voice_over_comes_from_elevenlabs_then_piper_in_the_format_asked_for(studio):
    speech = studio.openai().audio.speech
    eleven = speech.with_raw_response.create(
        model="voiceover", input="Welcome back.", voice=VOICE, response_format="wav"
    )
    assert eleven.headers["x-gateway-provider"] == "elevenlabs"
    assert eleven.headers["content-type"] == "audio/wav"

    studio.fakes["elevenlabs"].fault(path="/v1/text-to-speech/", status=503)
    piper = speech.with_raw_response.create(
        model="voiceover", input="Welcome back.", voice=VOICE, response_format="wav"
    )
    assert (piper.headers["x-gateway-provider"], piper.headers["content-type"]) == ("local-piper", "audio/wav")
    with wave.open(io.BytesIO(piper.content)) as audio:
        assert audio.getnframes() / audio.getframerate() > 0.5

    # mp3 asked for: Piper makes only WAV, so it is skipped with the reason, never a silent WAV.
    with pytest.raises(openai.APIStatusError) as failed:
        speech.create(model="voiceover", input="Welcome back.", voice=VOICE, response_format="mp3")
    body = failed.value.response.json()["error"]
    assert [(a["provider"], a["skipped"]) for a in body["attempts"]][-1] == ("local-piper", "unsupported")


def test_every_provider_is_on_the_dashboard_and_its_probe_details_on_its_page(studio):
    viewer = studio.console("viewer")
    page = viewer.get("/").text
    for name in studio.fakes:
        assert f'href="/providers/{name}"' in page, name

    # The monitor probed Ollama on its own schedule (no one asked it to): its version is kept.
    probe = studio.until(lambda: studio.get("/api/health/local-ollama").get("probe"), "a probe of local-ollama")
    assert probe["ok"] and probe["detail"]["version"] == "0.12.6"
    assert "0.12.6" in viewer.get("/providers/local-ollama").text
    sd = studio.until(lambda: studio.get("/api/health/local-sd").get("probe"), "a probe of local-sd")
    assert {"ram_free_gb", "vram_free_gb"} <= set(sd["detail"]), sd
    sd_page = viewer.get("/providers/local-sd").text
    assert "Memory (RAM)" in sd_page and "VRAM" in sd_page


def test_a_breaker_forced_open_is_routed_around_and_reset_from_the_console(studio):
    images = studio.openai().images
    still = {"model": "stills", "prompt": "a lighthouse", "size": "64x64", "response_format": "b64_json"}
    with studio.events() as events, studio.socket("viewer") as socket:
        forced = studio.post("/api/breakers/local-sd/force-open", json={"minutes": 10})
        assert forced.json()["state"] == "forced_open"
        assert events.wait("breaker.opened", "local-sd").data["to"] == "forced_open"
        socket.wait(lambda m: "forced" in (breaker_label(m, "local-sd") or "").lower())
        around = images.with_raw_response.generate(**still)
        assert around.headers["x-gateway-provider"] == "replicate"

        # An operator (the `operators` group) resets it on the provider's page.
        operator = studio.console("oper")
        assert operator.post("/providers/local-sd/reset").status_code == 303
        assert events.wait("breaker.closed", "local-sd").data["from"] == "forced_open"
        socket.wait(lambda m: (breaker_label(m, "local-sd") or "").lower() == "closed")
    breakers = {b["name"]: b["state"] for b in studio.get("/api/breakers")["breakers"]}
    assert breakers["local-sd"] == "closed"
    assert images.with_raw_response.generate(**still).headers["x-gateway-provider"] == "local-sd"

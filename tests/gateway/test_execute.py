from __future__ import annotations

import base64

import pytest

from tests.adapters.mp4 import mp4_seconds
from tests.fakes.deepl import FakeDeepL
from tests.fakes.replicate import API_TOKEN as REPLICATE_TOKEN
from tests.fakes.replicate import FakeReplicate

from .conftest import auth, provider

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def deepl():
    with FakeDeepL() as server:
        yield server


async def test_translation_runs_through_execute_with_the_attempt_list(gateway, configure, deepl, key):
    await configure(
        {
            "providers": [
                {"name": "sim-translate", "kind": "simulated", "options": {"error_rate": 1.0, "seed": 1}},
                provider("deepl", deepl.url, kind="deepl", key="deepl-test-key:fx"),
            ],
            "routes": [
                {
                    "name": "translate",
                    "capability": "translation",
                    "targets": [{"provider": "sim-translate"}, {"provider": "deepl"}],
                }
            ],
        }
    )
    response = await gateway.post(
        "/api/execute",
        headers=auth(key),
        json={
            "capability": "translation",
            "route": "translate",
            "input": "Hello world",
            "options": {"target_lang": "DE"},
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["provider"] == "deepl" and body["capability"] == "translation"
    assert body["output"]["translations"][0]["text"]
    assert body["usage"]["characters"] == len("Hello world")
    assert [a["provider"] for a in body["attempts"]] == ["sim-translate", "sim-translate", "deepl"]
    assert [a["outcome"] for a in body["attempts"]] == ["failure", "failure", "success"]
    assert body["failovers"] == 1
    assert response.headers["x-gateway-attempts"] == "3"


async def test_chat_and_tts_through_execute(gateway, configure, key):
    await configure(
        {
            "providers": [{"name": "sim", "kind": "simulated", "options": {"seed": 3}}],
            "routes": [
                {"name": "talk", "capability": "chat", "targets": [{"provider": "sim", "model": "m"}]},
                {"name": "say", "capability": "tts", "targets": [{"provider": "sim", "model": "v"}]},
            ],
        }
    )
    chat = await gateway.post(
        "/api/execute", headers=auth(key), json={"capability": "chat", "route": "talk", "input": "hi"}
    )
    assert chat.status_code == 200 and chat.json()["output"]["object"] == "chat.completion"
    speech = await gateway.post(
        "/api/execute", headers=auth(key), json={"capability": "tts", "route": "say", "input": "hello"}
    )
    assert speech.status_code == 200
    audio = base64.b64decode(speech.json()["output"]["b64"])
    assert audio[:4] == b"RIFF" and speech.json()["output"]["media_type"].startswith("audio/")


async def test_execute_refuses_bad_input_with_clear_errors(gateway, configure, key):
    await configure(
        {
            "providers": [{"name": "sim", "kind": "simulated"}],
            "routes": [{"name": "talk", "capability": "chat", "targets": [{"provider": "sim"}]}],
        }
    )
    cases = [
        ({"capability": "telepathy", "route": "talk", "input": "x"}, 400),
        ({"capability": "chat", "route": "talk", "input": 42}, 400),
        ({"capability": "translation", "route": "talk", "input": "x"}, 400),  # no target_lang
        ({"capability": "image", "route": "talk", "input": "a cat"}, 400),  # route serves chat
        ({"capability": "video", "route": "talk", "input": {"images": ["https://x/a.png"]}}, 400),  # no prompt
        ({"capability": "video", "route": "talk", "input": "a boat"}, 400),  # route serves chat
        ({"capability": "chat", "route": "missing", "input": "x"}, 404),
        ({"capability": "chat", "route": "talk", "input": "x", "options": {"deadline_s": -1}}, 400),
    ]
    for payload, status in cases:
        response = await gateway.post("/api/execute", headers=auth(key), json=payload)
        assert response.status_code == status, (payload, response.text)
        assert response.json()["error"]["message"]


async def test_a_video_is_composed_through_execute_and_falls_back_like_any_capability(gateway, configure, key):
    with FakeReplicate() as replicate:
        await configure(
            {
                "providers": [
                    provider(
                        "replicate",
                        replicate.url,
                        kind="replicate",
                        key=REPLICATE_TOKEN,
                        options={"poll_interval_s": 0.01},
                    ),
                    {"name": "sim", "kind": "simulated", "options": {"seed": 5}},
                ],
                "routes": [
                    {
                        "name": "clips",
                        "capability": "video",
                        "targets": [
                            {"provider": "replicate", "model": "minimax/video-01"},
                            {"provider": "sim", "model": "sim-video"},
                        ],
                    }
                ],
            }
        )
        served = await gateway.post(
            "/api/execute",
            headers=auth(key),
            json={
                "capability": "video",
                "route": "clips",
                "input": {
                    "prompt": "a boat crossing a bay",
                    "images": ["https://example.com/bay.png"],
                    "duration_s": 4,
                },
            },
        )
        replicate.behaviour = "fail"
        fallback = await gateway.post(
            "/api/execute",
            headers=auth(key),
            json={"capability": "video", "route": "clips", "input": "a boat crossing a bay"},
        )
        sent = replicate.requests_to("/v1/models/minimax/video-01/predictions")[0].json()["input"]

    assert served.status_code == 200, served.text
    body = served.json()
    assert body["provider"] == "replicate" and body["capability"] == "video" and body["usage"]["images"] == 1
    assert body["output"]["data"][0]["url"].endswith("/output.mp4")
    assert sent == {"prompt": "a boat crossing a bay", "image": "https://example.com/bay.png", "duration": 4}
    assert fallback.status_code == 200, fallback.text
    assert fallback.headers["x-gateway-provider"] == "sim" and fallback.json()["failovers"] == 1
    assert [a["outcome"] for a in fallback.json()["attempts"]] == ["failure", "failure", "success"]
    url = fallback.json()["output"]["data"][0]["url"]
    assert url.startswith("data:video/mp4;base64,") and mp4_seconds(base64.b64decode(url.partition(",")[2])) == 5


async def test_a_successful_attempt_shows_its_status(gateway, configure, key):
    await configure(
        {
            "providers": [{"name": "sim", "kind": "simulated", "options": {"seed": 3}}],
            "routes": [{"name": "talk", "capability": "chat", "targets": [{"provider": "sim", "model": "m"}]}],
        }
    )
    body = (
        await gateway.post(
            "/api/execute", headers=auth(key), json={"capability": "chat", "route": "talk", "input": "hi"}
        )
    ).json()
    assert [(a["outcome"], a["status"]) for a in body["attempts"]] == [("success", 200)]

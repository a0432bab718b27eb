"""SDWebUIAdapter against FakeSDWebUI: OpenAI images in, txt2img out, checkpoints, errors."""

from __future__ import annotations

import base64
import json
import struct
from decimal import Decimal

import httpx
import pytest

from providers.adapters.base import Price, ProviderConfig
from providers.adapters.sdwebui import SDWebUIAdapter
from providers.engine.outcome import Outcome, classify_exception
from tests.fakes.base import free_port
from tests.fakes.sdwebui import FakeSDWebUI

from .expect import raised


@pytest.fixture(scope="module")
def fake():
    with FakeSDWebUI() as server:
        yield server


def make(url: str, client: httpx.AsyncClient, **kw) -> SDWebUIAdapter:
    return SDWebUIAdapter(ProviderConfig(name="local-sd", kind="sdwebui", base_url=url, **kw), client)


@pytest.fixture
def adapter(fake, client):
    return make(fake.url, client)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


async def test_an_images_request_answers_openai_b64_json_pngs_of_the_asked_size(adapter, fake):
    result = await adapter.images({"prompt": "a red fox", "n": 2, "size": "256x128"}, model="", timeout=10)

    sent = fake.requests_to("/sdapi/v1/txt2img")[-1].json()
    assert (sent["prompt"], sent["batch_size"], sent["width"], sent["height"]) == ("a red fox", 2, 256, 128)
    assert "override_settings" not in sent
    body = json.loads(result.content)
    assert set(body) >= {"created", "data"} and len(body["data"]) == 2
    assert [png_size(base64.b64decode(d["b64_json"])) for d in body["data"]] == [(256, 128), (256, 128)]
    assert result.usage.images == 2
    assert result.model == "v1-5-pruned-emaonly"


async def test_a1111_fields_pass_through_and_the_model_is_a_per_request_override(adapter, fake):
    request = {"prompt": "castle", "negative_prompt": "blurry", "steps": 12, "cfg_scale": 5.5, "seed": 42}
    result = await adapter.images(request, model="sd_xl_base_1.0", timeout=10)

    sent = fake.requests_to("/sdapi/v1/txt2img")[-1].json()
    assert {k: sent[k] for k in ("negative_prompt", "steps", "cfg_scale", "seed")} == {
        "negative_prompt": "blurry",
        "steps": 12,
        "cfg_scale": 5.5,
        "seed": 42,
    }
    assert sent["override_settings"] == {"sd_model_checkpoint": "sd_xl_base_1.0"}
    assert result.model == "sd_xl_base_1.0"
    assert result.data["seeds"] == [42]


async def test_url_format_gives_data_urls(adapter):
    result = await adapter.images({"prompt": "x", "response_format": "url", "size": "64x64"}, model="", timeout=10)

    assert result.data["data"][0]["url"].startswith("data:image/png;base64,iVBORw0KGgo")


async def test_images_cost_per_image(adapter):
    result = await adapter.images({"prompt": "x", "n": 3, "size": "64x64"}, model="", timeout=10)

    assert result.usage.cost(Price(per_image=Decimal("0.002"))) == Decimal("0.006")


@pytest.mark.parametrize(
    "request_",
    [
        {"prompt": ""},
        {"prompt": "x", "size": "huge"},
        {"prompt": "x", "n": 0},
        {"prompt": "x", "response_format": "png"},
    ],
)
async def test_bad_requests_are_caller_errors_without_a_call(adapter, fake, request_):
    error = await raised(adapter.images(request_, model="", timeout=10))

    assert classify_exception(error).outcome is Outcome.CALLER_ERROR
    assert error.status == 400
    assert fake.requests_to("/sdapi/v1/txt2img") == []


async def test_checkpoints_are_listed_as_image_models(adapter):
    models = await adapter.list_models(timeout=5)

    assert [m.name for m in models] == ["v1-5-pruned-emaonly", "sd_xl_base_1.0"]
    assert all(m.capabilities == frozenset({"image"}) for m in models)
    assert models[0].details["title"].startswith("v1-5-pruned-emaonly.safetensors [")


async def test_the_current_model_can_be_read_and_changed(adapter):
    before = await adapter.current_model(timeout=5)
    await adapter.set_model("sd_xl_base_1.0", timeout=5)
    after = await adapter.current_model(timeout=5)

    assert before.startswith("v1-5-pruned-emaonly.safetensors")
    assert after.startswith("sd_xl_base_1.0.safetensors [")


async def test_setting_an_unknown_checkpoint_is_a_caller_error(adapter):
    error = await raised(adapter.set_model("nope", timeout=5))

    assert classify_exception(error).outcome is Outcome.CALLER_ERROR
    assert error.message == "model 'nope' not found"


async def test_memory_and_the_cheap_probe_report_free_memory(adapter, fake):
    memory = await adapter.memory(timeout=5)
    details = await adapter.probe(timeout=5)

    assert memory["cuda"]["events"] == {"retries": 0, "oom": 0}
    assert details == {"ram_free_gb": 22.4, "vram_free_gb": 6.1}
    assert fake.requests_to("/sdapi/v1/txt2img") == []


async def test_the_deep_probe_makes_one_tiny_one_step_image(adapter, fake):
    details = await adapter.probe(timeout=5, deep=True)

    sent = fake.requests_to("/sdapi/v1/txt2img")[-1].json()
    assert (sent["width"], sent["height"], sent["steps"], sent["batch_size"]) == (64, 64, 1, 1)
    assert details["images"] == 1


async def test_out_of_memory_is_a_failure_with_a1111s_message(adapter, fake):
    fake.fault(path="/sdapi/v1/txt2img", status=500)

    error = await raised(adapter.images({"prompt": "x"}, model="", timeout=10))

    assert classify_exception(error).outcome is Outcome.FAILURE
    assert error.message == "CUDA out of memory. Tried to allocate 2.00 GiB"
    assert json.loads(error.body)["error"] == "OutOfMemoryError"


async def test_a_validation_error_is_a_caller_error(adapter, fake):
    fake.fault(path="/sdapi/v1/txt2img", status=422)

    error = await raised(adapter.images({"prompt": "x"}, model="", timeout=10))

    assert classify_exception(error).outcome is Outcome.CALLER_ERROR
    assert error.message == "value is not a valid integer"


async def test_basic_auth_is_sent_from_the_api_key_and_a_wrong_one_is_a_caller_error(client):
    with FakeSDWebUI(auth=("artist", "pw")) as guarded:
        models = await make(guarded.url, client, api_key="artist:pw").list_models(timeout=5)
        error = await raised(make(guarded.url, client, api_key="artist:bad").list_models(timeout=5))

    assert len(models) == 2
    assert error.status == 401
    assert classify_exception(error).outcome is Outcome.CALLER_ERROR
    assert error.message == "Incorrect username or password"


async def test_a_busy_gateway_with_retry_after_is_a_failure_that_keeps_the_hint(adapter, fake):
    fake.fault(path="/sdapi/v1/txt2img", status=503, retry_after="3")

    error = await raised(adapter.images({"prompt": "x"}, model="", timeout=10))

    assert classify_exception(error).outcome is Outcome.FAILURE
    assert classify_exception(error).retry_after == 3


async def test_a_rate_limiting_proxy_is_rate_limited(adapter, fake):
    fake.fault(path="/sdapi/v1/txt2img", status=429, retry_after="2")

    error = await raised(adapter.images({"prompt": "x"}, model="", timeout=10))

    assert classify_exception(error).outcome is Outcome.RATE_LIMITED
    assert classify_exception(error).retry_after == 2


async def test_a_malformed_answer_is_a_failure(adapter, fake):
    fake.fault(path="/sdapi/v1/txt2img", body='{"images": "nope"}')

    error = await raised(adapter.images({"prompt": "x"}, model="", timeout=10))

    assert classify_exception(error).reason == "malformed_response"


async def test_a_hang_and_a_refused_port_are_failures(adapter, fake, client):
    fake.fault(path="/sdapi/v1/memory", hang=True)

    hung = await raised(adapter.memory(timeout=0.2))
    refused = await raised(make(f"http://127.0.0.1:{free_port()}", client).memory(timeout=2))

    assert classify_exception(hung).outcome is Outcome.FAILURE
    assert classify_exception(refused).reason == "connect_error"

"""PollinationsAdapter against FakePollinations: the prompt in the URL, JPEG bytes back, every error class."""

from __future__ import annotations

import base64
import json
import struct
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from providers.adapters.base import Price, ProviderConfig
from providers.adapters.pollinations import PollinationsAdapter
from providers.engine.outcome import Outcome, classify_exception
from tests.fakes.base import free_port
from tests.fakes.pollinations import FakePollinations

from .expect import raised


@pytest.fixture(scope="module")
def fake():
    with FakePollinations(token="pollen-token") as server:
        yield server


def make(url: str, client: httpx.AsyncClient, *, api_key: str | None = None, **options) -> PollinationsAdapter:
    config = ProviderConfig(name="pollinations", kind="pollinations", base_url=url, api_key=api_key, options=options)
    return PollinationsAdapter(config, client)


@pytest.fixture
def adapter(fake, client):
    return make(fake.url, client)


def jpeg_size(data: bytes) -> tuple[int, int]:
    """Width and height from a baseline JPEG's SOF0 segment."""
    assert data[:2] == b"\xff\xd8"
    at = 2
    while data[at + 1] != 0xC0:
        at += 2 + struct.unpack(">H", data[at + 2 : at + 4])[0]
    height, width = struct.unpack(">HH", data[at + 5 : at + 9])
    return width, height


def sent_query(fake) -> list[dict[str, str]]:
    return [r.query for r in fake.requests if r.path.startswith("/prompt/")]


async def test_the_prompt_goes_in_the_url_and_the_jpeg_comes_back_as_b64_json(adapter, fake):
    result = await adapter.images(
        {"model": "pictures", "prompt": "a red fox", "size": "256x128", "seed": 42}, model="flux", timeout=5
    )

    request = fake.requests[0]
    assert request.path == "/prompt/a red fox"
    assert request.query == {
        "width": "256",
        "height": "128",
        "model": "flux",
        "nologo": "true",
        "private": "true",
        "seed": "42",
    }
    assert "Authorization" not in request.headers
    image = base64.b64decode(result.data["data"][0]["b64_json"])
    assert jpeg_size(image) == (256, 128)
    assert set(result.data) == {"created", "data"} and result.usage.images == 1 and result.model == "flux"


async def test_a_prompt_with_slashes_and_symbols_survives_the_url(adapter, fake):
    prompt = "50% off / café & bar? #1"
    result = await adapter.images({"prompt": prompt, "size": "64x64", "response_format": "url"}, model="", timeout=5)

    assert fake.requests[0].path == f"/prompt/{prompt}"
    assert "model" not in fake.requests[0].query  # Pollinations picks its default
    assert "%2F" in result.data["data"][0]["url"]


async def test_the_url_format_names_the_same_image_for_good_and_carries_no_token(fake, client):
    adapter = make(fake.url, client, api_key="pollen-token")
    url_result = await adapter.images(
        {"prompt": "tower", "size": "64x64", "response_format": "url", "seed": 9}, model="turbo", timeout=5
    )
    b64_result = await adapter.images({"prompt": "tower", "size": "64x64", "seed": 9}, model="turbo", timeout=5)

    url = url_result.data["data"][0]["url"]
    again = await client.get(url)
    assert url.startswith(f"{fake.url}/prompt/tower?") and "pollen-token" not in url
    assert again.content == base64.b64decode(b64_result.data["data"][0]["b64_json"])
    assert fake.requests[0].headers["Authorization"] == "Bearer pollen-token"


async def test_without_a_seed_a_random_one_is_sent(adapter, fake):
    await adapter.images({"prompt": "x", "size": "64x64"}, model="", timeout=5)
    await adapter.images({"prompt": "x", "size": "64x64"}, model="", timeout=5)

    seeds = [q["seed"] for q in sent_query(fake)]
    assert all(s.isdigit() for s in seeds) and seeds[0] != seeds[1]


async def test_n_images_are_n_calls_with_consecutive_seeds_and_cost_per_image(adapter, fake):
    result = await adapter.images({"prompt": "x", "n": 3, "size": "64x64", "seed": 100}, model="flux", timeout=5)

    assert sorted(q["seed"] for q in sent_query(fake)) == ["100", "101", "102"]
    images = {d["b64_json"] for d in result.data["data"]}
    assert len(images) == 3 and result.usage.images == 3
    assert result.usage.cost(Price(per_image=Decimal("0.001"))) == Decimal("0.003")


async def test_options_and_pollinations_fields_reach_the_query(fake, client):
    adapter = make(fake.url, client, private=False, enhance=True, referrer="my-gateway")

    await adapter.images(
        {"prompt": "x", "size": "64x64", "seed": 1, "negative_prompt": "blurry", "safe": True, "quality": "high"},
        model="flux",
        timeout=5,
    )

    query = sent_query(fake)[0]
    assert {k: query[k] for k in ("private", "enhance", "referrer", "negative_prompt", "safe", "quality")} == {
        "private": "false",
        "enhance": "true",
        "referrer": "my-gateway",
        "negative_prompt": "blurry",
        "safe": "true",
        "quality": "high",
    }


# -- errors -----------------------------------------------------------------------------------


async def test_a_wrong_token_is_a_caller_error(fake, client):
    error = await raised(make(fake.url, client, api_key="stale").images({"prompt": "x"}, model="", timeout=5))

    assert classify_exception(error).outcome is Outcome.CALLER_ERROR
    assert (error.status, error.message) == (401, "Invalid or expired token")


async def test_an_unknown_model_is_a_caller_error(adapter):
    error = await raised(adapter.images({"prompt": "x"}, model="dall-e-9", timeout=5))

    assert classify_exception(error).outcome is Outcome.CALLER_ERROR and error.status == 400
    assert error.message.startswith("Invalid option: expected one of")


async def test_a_full_queue_is_rate_limited(adapter, fake):
    fake.fault(path="/prompt/", status=429, retry_after="30")

    error = await raised(adapter.images({"prompt": "x"}, model="", timeout=5))

    assert classify_exception(error).outcome is Outcome.RATE_LIMITED
    assert classify_exception(error).retry_after == 30
    assert json.loads(error.body)["queueInfo"] == {"position": 10, "total": 10}


async def test_no_pollen_left_is_exhausted(adapter, fake):
    fake.fault(path="/prompt/", status=402)

    error = await raised(adapter.images({"prompt": "x"}, model="", timeout=5))

    assert classify_exception(error).outcome is Outcome.EXHAUSTED


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_failures_with_pollinations_message(adapter, fake, status):
    fake.fault(path="/prompt/", status=status)

    error = await raised(adapter.images({"prompt": "x"}, model="", timeout=5))

    assert classify_exception(error).outcome is Outcome.FAILURE and error.status == status
    assert error.message == "An error occurred while processing your request"


async def test_a_200_that_is_not_an_image_is_malformed(adapter, fake):
    fake.fault(path="/prompt/", body='{"status": "queued"}')

    error = await raised(adapter.images({"prompt": "x"}, model="", timeout=5))

    assert classify_exception(error).outcome is Outcome.FAILURE
    assert classify_exception(error).reason == "malformed_response"
    assert error.message == "expected an image, got application/json"


async def test_one_failing_call_of_n_fails_the_request(adapter, fake):
    fake.fault(path="/prompt/", status=503, times=1)

    error = await raised(adapter.images({"prompt": "x", "n": 3, "size": "64x64"}, model="", timeout=5))

    assert classify_exception(error).outcome is Outcome.FAILURE and error.status == 503


@pytest.mark.parametrize(
    "request_",
    [
        {"prompt": " "},
        {"prompt": "x", "n": 5},
        {"prompt": "x", "size": "4kx4k"},
        {"prompt": "x", "response_format": "png"},
        {"prompt": "x", "seed": "lucky"},
    ],
)
async def test_bad_requests_are_caller_errors_without_a_call(adapter, fake, request_):
    error = await raised(adapter.images(request_, model="", timeout=5))

    assert classify_exception(error).outcome is Outcome.CALLER_ERROR and error.status == 400
    assert fake.requests == []


async def test_a_hang_and_a_refused_port_are_failures(adapter, fake, client):
    fake.fault(path="/prompt/", hang=True)

    hung = await raised(adapter.images({"prompt": "x"}, model="", timeout=0.3))
    refused = await raised(make(f"http://127.0.0.1:{free_port()}", client).list_models(timeout=2))

    assert classify_exception(hung).outcome is Outcome.FAILURE
    assert classify_exception(refused).reason == "connect_error"


# -- models and probes ------------------------------------------------------------------------


async def test_models_are_listed_as_image_models(adapter):
    models = await adapter.list_models(timeout=5)

    assert [m.name for m in models] == ["flux", "kontext", "turbo", "gptimage"]
    assert all(m.capabilities == {"image"} for m in models)


async def test_a_model_list_of_objects_is_read_too(adapter, fake):
    fake.fault(path="/models", body='[{"name": "flux", "tier": "seed"}, {"name": "turbo"}, 7]')

    models = await adapter.list_models(timeout=5)

    assert [(m.name, dict(m.details)) for m in models] == [("flux", {"tier": "seed"}), ("turbo", {})]


async def test_a_model_list_that_is_not_a_list_is_malformed(adapter, fake):
    fake.fault(path="/models", body='{"models": "flux"}')

    error = await raised(adapter.list_models(timeout=5))

    assert classify_exception(error).reason == "malformed_response"


async def test_the_cheap_probe_lists_models_and_the_deep_one_draws_a_tiny_image(adapter, fake):
    cheap = await adapter.probe(timeout=5)
    assert cheap == {"models": 4} and [r.path for r in fake.requests] == ["/models"]

    deep = await adapter.probe(timeout=5, deep=True, model="turbo")

    assert deep == {"models": 4, "images": 1}
    assert sent_query(fake)[0]["width"] == "64" and sent_query(fake)[0]["model"] == "turbo"


async def test_the_default_base_url_is_pollinations_and_the_query_stays_readable():
    sent: list[httpx.Request] = []

    def pollinations(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, content=b"\xff\xd8", headers={"Content-Type": "image/jpeg"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(pollinations)) as client:
        adapter = PollinationsAdapter(ProviderConfig(name="p", kind="pollinations", base_url=""), client)
        await adapter.images({"prompt": "a b", "size": "64x64", "seed": 3}, model="", timeout=5)

    url = str(sent[0].url)
    assert url.startswith("https://image.pollinations.ai/prompt/a%20b?")
    assert parse_qs(urlsplit(url).query) == {
        "width": ["64"],
        "height": ["64"],
        "nologo": ["true"],
        "private": ["true"],
        "seed": ["3"],
    }

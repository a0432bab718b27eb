"""StockPhotoAdapter against FakeStockPhotos: a Pexels search as an images answer, every error class."""

from __future__ import annotations

import base64
import json
import struct
import time
from decimal import Decimal

import httpx
import pytest

from providers.adapters.base import Price, ProviderConfig
from providers.adapters.stock import StockPhotoAdapter, query_of
from providers.engine.outcome import Outcome, classify_exception
from tests.fakes.base import free_port
from tests.fakes.stock import API_KEY, NO_RESULTS, FakeStockPhotos

from .expect import raised


@pytest.fixture(scope="module")
def fake():
    with FakeStockPhotos() as server:
        yield server


def make(url: str, client: httpx.AsyncClient, *, api_key: str | None = API_KEY, **options) -> StockPhotoAdapter:
    return StockPhotoAdapter(
        ProviderConfig(name="pexels", kind="stock", base_url=url, api_key=api_key, options=options), client
    )


@pytest.fixture
def adapter(fake, client):
    return make(fake.url, client)


def jpeg_size(data: bytes) -> tuple[int, int]:
    assert data[:2] == b"\xff\xd8"
    at = 2
    while data[at + 1] != 0xC0:
        at += 2 + struct.unpack(">H", data[at + 2 : at + 4])[0]
    height, width = struct.unpack(">HH", data[at + 5 : at + 9])
    return width, height


def searches(fake) -> list:
    return fake.requests_to("/v1/search")


# -- success ----------------------------------------------------------------------------------


async def test_a_search_answers_an_openai_images_response_with_credits(adapter, fake):
    result = await adapter.images({"model": "pictures", "prompt": "red fox in snow"}, model="search", timeout=5)

    sent = searches(fake)[0]
    assert sent.query == {"query": "red fox in snow", "per_page": "1"}
    assert sent.headers["Authorization"] == API_KEY  # Pexels takes the bare key
    photo = next(iter(fake.photos.values()))
    assert result.data["data"] == [{"url": photo["src"]["large"], "revised_prompt": "Red fox in snow (photo 1)"}]
    assert result.data["attributions"] == [
        {"photographer": photo["photographer"], "photographer_url": photo["photographer_url"], "page": photo["url"]}
    ]
    assert result.usage.images == 1 and result.model == "search"


@pytest.mark.parametrize(
    ("size", "orientation", "src"),
    [
        ("1792x1024", "landscape", "landscape"),
        ("1024x1792", "portrait", "portrait"),
        ("1024x1024", "square", "large2x"),
        ("512x512", "square", "large"),
    ],
)
async def test_the_size_picks_the_orientation_and_the_src_that_fits(adapter, fake, size, orientation, src):
    result = await adapter.images({"prompt": "lake", "size": size}, model="search", timeout=5)

    assert searches(fake)[0].query["orientation"] == orientation
    photo = next(iter(fake.photos.values()))
    assert result.data["data"][0]["url"] == photo["src"][src]


async def test_b64_json_downloads_the_fitting_jpeg_without_the_key(adapter, fake):
    result = await adapter.images(
        {"prompt": "lake", "size": "512x512", "n": 2, "response_format": "b64_json"}, model="search", timeout=5
    )

    images = [base64.b64decode(d["b64_json"]) for d in result.data["data"]]
    assert [jpeg_size(i) for i in images] == [(650, 650), (650, 650)]  # 4000² fitted into 940x650
    downloads = [r for r in fake.requests if r.path.startswith("/photos/")]
    assert len(downloads) == 2 and all("Authorization" not in r.headers for r in downloads)
    assert result.usage.images == 2


async def test_options_force_the_src_and_set_the_locale(fake, client):
    adapter = make(fake.url, client, src="tiny", locale="de-DE")

    result = await adapter.images({"prompt": "berg", "size": "1792x1024"}, model="search", timeout=5)

    assert searches(fake)[0].query["locale"] == "de-DE"
    assert result.data["data"][0]["url"].endswith("fit=crop&h=200&w=280")


def test_a_long_prompt_is_cut_at_a_word_boundary():
    prompt = "a photorealistic   portrait of an old fisherman\nmending nets at dawn, golden light, 85mm, bokeh"

    assert query_of(prompt, 40) == "a photorealistic portrait of an old"
    assert query_of("short prompt", 40) == "short prompt"
    assert query_of("x" * 60, 40) == "x" * 40


async def test_fewer_photos_than_asked_are_counted_as_returned(adapter, fake):
    fake.fault(
        path="/v1/search",
        body=json.dumps(
            {
                "total_results": 1,
                "page": 1,
                "per_page": 3,
                "photos": [{"id": 1, "alt": "", "src": {"large": "https://images.example/1.jpeg"}}],
            }
        ),
    )

    result = await adapter.images({"prompt": "rare thing", "n": 3}, model="search", timeout=5)

    assert result.data["data"] == [{"url": "https://images.example/1.jpeg"}] and result.usage.images == 1
    assert result.usage.cost(Price(per_image=Decimal("0.01"))) == Decimal("0.01")


async def test_n_photos_cost_per_image(adapter):
    result = await adapter.images({"prompt": "city", "n": 5}, model="search", timeout=5)

    assert result.usage.images == 5 and len({d["url"] for d in result.data["data"]}) == 5
    assert result.usage.cost(Price(per_image=Decimal("0.0005"))) == Decimal("0.0025")


# -- no results and errors --------------------------------------------------------------------


async def test_no_results_is_a_failure_that_is_not_retried_so_the_chain_moves_on(adapter):
    error = await raised(adapter.images({"prompt": NO_RESULTS}, model="search", timeout=5))

    classification = classify_exception(error)
    assert (classification.outcome, classification.reason) == (Outcome.FAILURE, "no_results")
    assert classification.should_retry is False
    assert error.message == f"no stock photo matches {NO_RESULTS!r}"


@pytest.mark.parametrize(("api_key", "message"), [(None, "Authorization field missing"), ("wrong", "Invalid API key")])
async def test_a_missing_or_wrong_key_is_a_caller_error(fake, client, api_key, message):
    error = await raised(make(fake.url, client, api_key=api_key).images({"prompt": "x"}, model="search", timeout=5))

    assert classify_exception(error).outcome is Outcome.CALLER_ERROR
    assert (error.status, error.message) == (401, message)


async def test_a_disabled_key_is_a_caller_error(adapter, fake):
    fake.fault(path="/v1/search", status=403)

    error = await raised(adapter.images({"prompt": "x"}, model="search", timeout=5))

    assert classify_exception(error).outcome is Outcome.CALLER_ERROR and error.status == 403


async def test_a_used_up_quota_waits_until_the_last_reset_seen(adapter, fake):
    await adapter.images({"prompt": "x"}, model="search", timeout=5)
    fake.remaining = 0

    before = time.time()
    error = await raised(adapter.images({"prompt": "x"}, model="search", timeout=5))
    after = time.time()

    classification = classify_exception(error)
    assert classification.outcome is Outcome.RATE_LIMITED and error.status == 429
    # seconds from the moment of the answer, which lies between `before` and `after`
    assert fake.reset_at - after <= classification.retry_after <= fake.reset_at - before
    assert error.headers["x-ratelimit-reset"] == str(fake.reset_at)  # where the engine reads it


async def test_a_429_with_its_own_reset_header_uses_it(adapter, fake):
    reset = int(time.time()) + 60
    fake.fault(path="/v1/search", status=429, headers={"X-Ratelimit-Reset": str(reset)})

    before = time.time()
    error = await raised(adapter.images({"prompt": "x"}, model="search", timeout=5))
    after = time.time()

    assert classify_exception(error).outcome is Outcome.RATE_LIMITED
    assert reset - after <= classify_exception(error).retry_after <= reset - before


async def test_a_429_before_any_answer_is_rate_limited_without_a_wait(fake, client):
    fake.remaining = 0

    error = await raised(make(fake.url, client).images({"prompt": "x"}, model="search", timeout=5))

    assert classify_exception(error).outcome is Outcome.RATE_LIMITED
    assert classify_exception(error).retry_after is None


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_failures(adapter, fake, status):
    fake.fault(path="/v1/search", status=status)

    error = await raised(adapter.images({"prompt": "x"}, model="search", timeout=5))

    assert classify_exception(error).outcome is Outcome.FAILURE and error.status == status


@pytest.mark.parametrize("body", ['{"photos": "none"}', "<html>maintenance</html>"])
async def test_an_unusable_answer_is_malformed(adapter, fake, body):
    fake.fault(path="/v1/search", body=body)

    error = await raised(adapter.images({"prompt": "x"}, model="search", timeout=5))

    assert classify_exception(error).reason == "malformed_response"


async def test_a_photo_that_cannot_be_downloaded_is_a_failure(adapter, fake):
    fake.fault(path="/photos/", status=404)

    error = await raised(adapter.images({"prompt": "x", "response_format": "b64_json"}, model="search", timeout=5))

    assert classify_exception(error).outcome is Outcome.FAILURE
    assert classify_exception(error).reason == "output_unavailable"


@pytest.mark.parametrize(
    "request_",
    [
        {"prompt": ""},
        {"prompt": "x", "n": 81},
        {"prompt": "x", "size": "wide"},
        {"prompt": "x", "response_format": "png"},
    ],
)
async def test_bad_requests_are_caller_errors_without_a_call(adapter, fake, request_):
    error = await raised(adapter.images(request_, model="search", timeout=5))

    assert classify_exception(error).outcome is Outcome.CALLER_ERROR and error.status == 400
    assert fake.requests == []


async def test_a_hang_and_a_refused_port_are_failures(adapter, fake, client):
    fake.fault(path="/v1/search", hang=True)

    hung = await raised(adapter.images({"prompt": "x"}, model="search", timeout=0.3))
    refused = await raised(make(f"http://127.0.0.1:{free_port()}", client).probe(timeout=2))

    assert classify_exception(hung).outcome is Outcome.FAILURE
    assert classify_exception(refused).reason == "connect_error"


# -- models and probes ------------------------------------------------------------------------


async def test_the_one_model_is_search(adapter, fake):
    models = await adapter.list_models(timeout=5)

    assert [(m.name, m.capabilities) for m in models] == [("search", frozenset({"image"}))]
    assert fake.requests == []


async def test_the_probe_is_a_one_photo_search_that_reports_the_reset(adapter, fake):
    details = await adapter.probe(timeout=5)

    assert searches(fake)[0].query == {"query": "nature", "per_page": "1"}
    assert details["total_results"] > 0 and details["reset_at"] == str(fake.reset_at)

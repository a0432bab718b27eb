"""ReplicateAdapter against FakeReplicate: predictions created, polled, cancelled; every error class."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from decimal import Decimal

import httpx
import pytest

from providers.adapters.base import Price, ProviderConfig
from providers.adapters.client import build_client
from providers.adapters.replicate import ReplicateAdapter, aspect_ratio
from providers.engine.errors import UpstreamError
from providers.engine.outcome import Outcome, classify_exception
from tests.fakes.base import free_port
from tests.fakes.replicate import API_TOKEN, VERSIONS, FakeReplicate

from .mp4 import mp4_seconds

POLLING = {"poll_interval_s": 0.01, "prefer_wait": False}
SDXL = VERSIONS["stability-ai/sdxl"][0]


@pytest.fixture(scope="module")
def fake():
    with FakeReplicate() as server:
        yield server


def make(url: str, client: httpx.AsyncClient, *, api_key: str | None = API_TOKEN, **options) -> ReplicateAdapter:
    config = ProviderConfig(
        name="replicate", kind="replicate", base_url=url, api_key=api_key, options={**POLLING, **options}
    )
    return ReplicateAdapter(config, client)


@pytest.fixture
def adapter(fake, client):
    return make(fake.url, client)


async def raised(awaitable) -> BaseException:
    with pytest.raises(BaseException) as info:
        await awaitable
    return info.value


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


async def until(condition, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


def polls(fake) -> list:
    return [r for r in fake.requests if r.method == "GET" and r.path.startswith("/v1/predictions/")]


def cancels(fake) -> list:
    return [r for r in fake.requests if r.path.endswith("/cancel")]


# -- success ----------------------------------------------------------------------------------


async def test_an_official_model_runs_as_a_prediction_polled_until_it_succeeds(adapter, fake):
    result = await adapter.images(
        {"model": "pictures", "prompt": "a red fox"}, model="black-forest-labs/flux-schnell", timeout=5
    )

    create = fake.requests_to("/v1/models/black-forest-labs/flux-schnell/predictions")[0]
    assert create.json() == {"input": {"prompt": "a red fox"}}
    assert create.headers["Authorization"] == f"Bearer {API_TOKEN}" and "Prefer" not in create.headers
    assert len(polls(fake)) == 2 and fake.last["status"] == "succeeded"
    assert set(result.data) == {"created", "data"}
    assert result.data["data"] == [{"url": f"{fake.url}/delivery/{fake.last['id']}/out-0.png"}]
    assert result.usage.images == 1 and result.model == "black-forest-labs/flux-schnell"
    assert cancels(fake) == []


async def test_n_and_size_become_num_outputs_and_the_nearest_aspect_ratio(adapter, fake):
    result = await adapter.images(
        {"prompt": "dunes", "n": 3, "size": "1792x1024", "seed": 7}, model="black-forest-labs/flux-schnell", timeout=5
    )

    sent = fake.requests_to("/v1/models/black-forest-labs/flux-schnell/predictions")[0].json()["input"]
    assert sent == {"prompt": "dunes", "num_outputs": 3, "aspect_ratio": "16:9", "seed": 7}
    assert len(result.data["data"]) == 3 and result.usage.images == 3


def test_aspect_ratios_are_the_nearest_accepted_ones():
    assert [aspect_ratio(1024, 1024), aspect_ratio(1024, 1792), aspect_ratio(1536, 1024), aspect_ratio(800, 1000)] == [
        "1:1",
        "9:16",
        "3:2",
        "4:5",
    ]


async def test_width_height_models_get_the_size_and_input_defaults_and_overrides(fake, client):
    adapter = make(fake.url, client, size_input="width_height", input={"output_format": "png", "steps": 4})

    await adapter.images(
        {"prompt": "x", "size": "768x512", "input": {"steps": 8, "refine": "expert"}},
        model=f"stability-ai/sdxl:{SDXL}",
        timeout=5,
    )

    sent = fake.requests_to("/v1/predictions")[0].json()
    assert sent == {
        "version": SDXL,
        "input": {"output_format": "png", "steps": 8, "prompt": "x", "width": 768, "height": 512, "refine": "expert"},
    }


async def test_a_bare_version_id_runs_through_the_predictions_endpoint(adapter, fake):
    result = await adapter.images({"prompt": "x"}, model=SDXL, timeout=5)

    assert fake.requests_to("/v1/predictions")[0].json()["version"] == SDXL
    assert result.model == "stability-ai/sdxl"


async def test_prefer_wait_lets_a_fast_model_answer_without_a_poll(fake, client):
    adapter = make(fake.url, client, prefer_wait=True)

    result = await adapter.images({"prompt": "x"}, model="black-forest-labs/flux-schnell", timeout=5.5)

    create = fake.requests_to("/v1/models/black-forest-labs/flux-schnell/predictions")[0]
    assert create.headers["Prefer"] == "wait=4"  # a second of the attempt kept free to cancel
    assert polls(fake) == [] and result.usage.images == 1


async def test_b64_json_downloads_each_output_without_the_token(adapter, fake):
    result = await adapter.images(
        {"prompt": "x", "n": 2, "response_format": "b64_json"}, model="black-forest-labs/flux-schnell", timeout=5
    )

    images = [base64.b64decode(d["b64_json"]) for d in result.data["data"]]
    assert [png_size(i) for i in images] == [(64, 64), (64, 64)] and images[0] != images[1]
    downloads = [r for r in fake.requests if r.path.startswith("/delivery/")]
    assert len(downloads) == 2 and all("Authorization" not in r.headers for r in downloads)


async def test_images_cost_per_output(adapter):
    result = await adapter.images({"prompt": "x", "n": 4}, model="black-forest-labs/flux-schnell", timeout=5)

    assert result.usage.cost(Price(per_image=Decimal("0.003"))) == Decimal("0.012")


# -- video ------------------------------------------------------------------------------------


async def test_a_video_is_a_prediction_on_a_video_model_whose_one_output_url_is_an_mp4(adapter, fake, client):
    result = await adapter.video(
        {"prompt": "a lighthouse at dusk, waves", "duration_s": 6, "size": "1280x720"},
        model="minimax/video-01",
        timeout=5,
    )

    create = fake.requests_to("/v1/models/minimax/video-01/predictions")[0]
    assert create.json() == {"input": {"prompt": "a lighthouse at dusk, waves", "duration": 6, "aspect_ratio": "16:9"}}
    assert fake.last["output"] == f"{fake.url}/delivery/{fake.last['id']}/output.mp4"  # one URL, not a list
    assert set(result.data) == {"created", "data"}
    assert result.data["data"] == [{"url": fake.last["output"]}]
    assert result.usage.images == 1 and result.model == "minimax/video-01"
    video = await client.get(fake.last["output"])
    assert video.headers["content-type"] == "video/mp4" and mp4_seconds(video.content) == 6


async def test_stills_and_a_soundtrack_go_in_the_fields_the_video_model_names(fake, client):
    adapter = make(fake.url, client, video_image_input="first_frame_image")

    await adapter.video(
        {
            "prompt": "animate this",
            "images": ["https://example.com/a.png"],
            "audio": "https://example.com/theme.mp3",
            "seed": 3,
            "input": {"prompt_optimizer": False},
        },
        model="minimax/video-01",
        timeout=5,
    )
    await adapter.video(
        {"prompt": "cut these together", "images": ["https://example.com/a.png", "https://example.com/b.png"]},
        model="minimax/video-01",
        timeout=5,
    )

    first, second = (r.json()["input"] for r in fake.requests_to("/v1/models/minimax/video-01/predictions"))
    assert first == {
        "prompt": "animate this",
        "first_frame_image": "https://example.com/a.png",
        "audio": "https://example.com/theme.mp3",
        "seed": 3,
        "prompt_optimizer": False,
    }
    assert second["first_frame_image"] == ["https://example.com/a.png", "https://example.com/b.png"]


async def test_a_video_as_b64_json_is_downloaded_and_costs_its_per_output_price(adapter, fake):
    result = await adapter.video({"prompt": "x", "response_format": "b64_json"}, model="minimax/video-01", timeout=5)

    assert mp4_seconds(base64.b64decode(result.data["data"][0]["b64_json"])) == 5
    assert result.usage.cost(Price(per_image=Decimal("0.5"))) == Decimal("0.5")


async def test_a_failed_video_prediction_is_a_failure(adapter, fake):
    fake.behaviour = "fail"

    error = await raised(adapter.video({"prompt": "x"}, model="minimax/video-01", timeout=5))

    assert classify_exception(error).outcome is Outcome.FAILURE and error.message == fake.failure_error


@pytest.mark.parametrize(
    "request_",
    [
        {"prompt": ""},
        {"prompt": "x", "images": []},
        {"prompt": "x", "images": [3]},
        {"prompt": "x", "audio": 1},
        {"prompt": "x", "duration_s": 0},
        {"prompt": "x", "duration_s": True},
        {"prompt": "x", "input": "y"},
    ],
)
async def test_bad_video_requests_are_caller_errors_without_a_call(adapter, fake, request_):
    error = await raised(adapter.video(request_, model="minimax/video-01", timeout=5))

    assert classify_exception(error).outcome is Outcome.CALLER_ERROR and error.status == 400
    assert fake.requests == []


async def test_video_models_are_listed_as_video(fake, client):
    both = await make(
        fake.url, client, models=["black-forest-labs/flux-dev"], video_models=["minimax/video-01"]
    ).list_models(timeout=5)
    video_only = await make(fake.url, client, video_models=["minimax/video-01"]).list_models(timeout=5)

    assert [(m.name, m.capabilities) for m in both] == [
        ("black-forest-labs/flux-dev", {"image"}),
        ("minimax/video-01", {"video"}),
    ]
    assert [(m.name, m.capabilities) for m in video_only] == [("minimax/video-01", {"video"})]


# -- the prediction's time --------------------------------------------------------------------


async def test_a_prediction_that_never_finishes_is_cancelled_when_the_attempts_time_runs_out(adapter, fake):
    fake.behaviour = "hang"

    error = await raised(adapter.images({"prompt": "x"}, model="black-forest-labs/flux-schnell", timeout=0.3))

    assert classify_exception(error).outcome is Outcome.DEADLINE
    assert classify_exception(error).reason == "prediction_timeout"
    assert [r.path for r in cancels(fake)] == [f"/v1/predictions/{fake.last['id']}/cancel"]
    assert fake.last["status"] == "canceled" and len(polls(fake)) >= 3


async def test_a_poll_that_outlasts_the_attempts_time_is_the_deadline_not_an_upstream_timeout(adapter, fake):
    """A poll gets only the attempt's remaining time, so its timeout is that time running out."""
    fake.behaviour = "hang"
    fake.fault(hang=True, path="/v1/predictions/", times=1)  # the first poll never answers

    error = await raised(adapter.images({"prompt": "x"}, model="black-forest-labs/flux-schnell", timeout=0.3))

    assert (classify_exception(error).outcome, classify_exception(error).reason) == (
        Outcome.DEADLINE,
        "prediction_timeout",
    )
    assert [r.path for r in cancels(fake)] == [f"/v1/predictions/{fake.last['id']}/cancel"]


@pytest.mark.parametrize("transport", ["httpx", "aiohttp"])
async def test_the_engines_attempt_timer_firing_cancels_the_prediction(fake, transport):
    fake.behaviour = "hang"
    http = build_client(transport)
    try:
        adapter = make(fake.url, http)
        with pytest.raises(TimeoutError) as info:
            async with asyncio.timeout(0.3):  # what the engine's AttemptTimer does
                await adapter.images({"prompt": "x"}, model="black-forest-labs/flux-schnell", timeout=30)
    finally:
        await http.aclose()

    assert classify_exception(info.value).outcome is Outcome.DEADLINE
    assert len(cancels(fake)) == 1 and fake.last["status"] == "canceled"


@pytest.mark.parametrize("transport", ["httpx", "aiohttp"])
async def test_a_cancelled_attempt_cancels_the_prediction_and_stays_cancelled(fake, transport):
    fake.behaviour = "hang"
    http = build_client(transport)
    try:
        adapter = make(fake.url, http)
        task = asyncio.create_task(adapter.images({"prompt": "x"}, model="black-forest-labs/flux-schnell", timeout=30))
        await until(lambda: len(polls(fake)) >= 1)
        task.cancel()
        error = await raised(task)
    finally:
        await http.aclose()

    assert isinstance(error, asyncio.CancelledError)
    assert classify_exception(error).outcome is Outcome.CANCELLED
    assert len(cancels(fake)) == 1 and fake.last["status"] == "canceled"


async def test_a_poll_that_fails_cancels_the_prediction_and_is_a_failure(adapter, fake):
    fake.behaviour = "hang"
    fake.fault(path="/v1/predictions/", status=503, times=1)

    error = await raised(adapter.images({"prompt": "x"}, model="black-forest-labs/flux-schnell", timeout=5))

    assert classify_exception(error).outcome is Outcome.FAILURE and error.status == 503
    assert len(cancels(fake)) == 1 and fake.last["status"] == "canceled"


async def test_a_prediction_canceled_by_someone_else_is_a_failure(adapter, fake, client):
    fake.behaviour = "hang"
    task = asyncio.create_task(adapter.images({"prompt": "x"}, model="black-forest-labs/flux-schnell", timeout=5))
    await until(lambda: len(polls(fake)) >= 1)
    await client.post(fake.last["urls"]["cancel"], headers={"Authorization": f"Bearer {API_TOKEN}"})

    error = await raised(task)

    assert classify_exception(error).outcome is Outcome.FAILURE
    assert classify_exception(error).reason == "prediction_canceled"


async def test_a_failed_prediction_is_a_failure_with_its_error_text(adapter, fake):
    fake.behaviour = "fail"

    error = await raised(adapter.images({"prompt": "x"}, model="black-forest-labs/flux-schnell", timeout=5))

    assert classify_exception(error).outcome is Outcome.FAILURE
    assert classify_exception(error).reason == "prediction_failed"
    assert error.message == "CUDA out of memory. Tried to allocate 2.00 GiB"
    assert json.loads(error.body)["status"] == "failed" and cancels(fake) == []


# -- errors -----------------------------------------------------------------------------------


async def test_a_wrong_token_is_a_caller_error(fake, client):
    error = await raised(
        make(fake.url, client, api_key="r8_wrong").images(
            {"prompt": "x"}, model="black-forest-labs/flux-schnell", timeout=5
        )
    )

    assert classify_exception(error).outcome is Outcome.CALLER_ERROR
    assert (error.status, error.message) == (401, "You did not pass a valid authentication token")


async def test_no_credit_is_exhausted(adapter, fake):
    fake.fault(path="/v1/models/", status=402)

    error = await raised(adapter.images({"prompt": "x"}, model="black-forest-labs/flux-schnell", timeout=5))

    assert classify_exception(error).outcome is Outcome.EXHAUSTED
    assert error.message.startswith("You have insufficient credit to run this model.")


async def test_throttling_is_rate_limited_with_the_bodys_retry_after(adapter, fake):
    fake.fault(path="/v1/models/", status=429)

    error = await raised(adapter.images({"prompt": "x"}, model="black-forest-labs/flux-schnell", timeout=5))

    assert classify_exception(error).outcome is Outcome.RATE_LIMITED
    assert classify_exception(error).retry_after == 5
    assert error.headers["retry-after"] == "5"  # where the engine reads waits from
    assert error.message.startswith("Request was throttled.")


async def test_a_retry_after_header_wins_over_the_body(adapter, fake):
    fake.fault(path="/v1/models/", status=429, retry_after="2")

    error = await raised(adapter.images({"prompt": "x"}, model="black-forest-labs/flux-schnell", timeout=5))

    assert classify_exception(error).retry_after == 2


async def test_invalid_input_is_a_caller_error_with_replicates_detail(adapter, fake):
    error = await raised(adapter.images({"prompt": "x", "n": 6}, model="black-forest-labs/flux-schnell", timeout=5))

    assert classify_exception(error).outcome is Outcome.CALLER_ERROR
    assert error.status == 422 and error.message == "- input.num_outputs: Must be less than or equal to 4"
    assert json.loads(error.body)["invalid_fields"][0]["field"] == "input.num_outputs"


@pytest.mark.parametrize("model", ["someone/unknown", f"stability-ai/sdxl:{'0' * 64}"])
async def test_an_unknown_model_or_version_is_a_caller_error(adapter, model):
    error = await raised(adapter.images({"prompt": "x"}, model=model, timeout=5))

    assert classify_exception(error).outcome is Outcome.CALLER_ERROR and error.status in (404, 422)


async def test_a_server_error_is_a_failure(adapter, fake):
    fake.fault(path="/v1/models/", status=503, retry_after="1")

    error = await raised(adapter.images({"prompt": "x"}, model="black-forest-labs/flux-schnell", timeout=5))

    assert classify_exception(error).outcome is Outcome.FAILURE and classify_exception(error).retry_after == 1
    assert json.loads(error.body)["title"] == "Service Unavailable"


async def test_an_output_that_cannot_be_downloaded_is_a_failure(adapter, fake):
    fake.fault(path="/delivery/", status=404)

    error = await raised(
        adapter.images(
            {"prompt": "x", "response_format": "b64_json"}, model="black-forest-labs/flux-schnell", timeout=5
        )
    )

    assert classify_exception(error).outcome is Outcome.FAILURE
    assert classify_exception(error).reason == "output_unavailable"


async def test_a_success_without_output_is_malformed(adapter, fake):
    fake.fault(path="/v1/predictions/", body='{"id": "x", "status": "succeeded", "output": null}')

    error = await raised(adapter.images({"prompt": "x"}, model="black-forest-labs/flux-schnell", timeout=5))

    assert classify_exception(error).reason == "malformed_response"


@pytest.mark.parametrize(
    "request_",
    [
        {"prompt": ""},
        {"prompt": "x", "n": 0},
        {"prompt": "x", "size": "big"},
        {"prompt": "x", "response_format": "png"},
        {"prompt": "x", "input": [1]},
    ],
)
async def test_bad_requests_are_caller_errors_without_a_call(adapter, fake, request_):
    error = await raised(adapter.images(request_, model="black-forest-labs/flux-schnell", timeout=5))

    assert classify_exception(error).outcome is Outcome.CALLER_ERROR and error.status == 400
    assert fake.requests == []


async def test_a_model_name_that_is_not_owner_slash_name_is_a_caller_error(adapter, fake):
    error = await raised(adapter.images({"prompt": "x"}, model="flux", timeout=5))

    assert classify_exception(error).outcome is Outcome.CALLER_ERROR and fake.requests == []


async def test_a_hang_and_a_refused_port_are_failures(adapter, fake, client):
    fake.fault(path="/v1/models/", hang=True)

    hung = await raised(adapter.images({"prompt": "x"}, model="black-forest-labs/flux-schnell", timeout=0.3))
    refused = await raised(make(f"http://127.0.0.1:{free_port()}", client).account(timeout=2))

    assert classify_exception(hung).outcome is Outcome.FAILURE
    assert classify_exception(refused).reason == "connect_error"


# -- models and probes ------------------------------------------------------------------------


async def test_models_are_the_configured_ones_or_the_default(fake, client):
    configured = await make(
        fake.url, client, models=["black-forest-labs/flux-dev", f"stability-ai/sdxl:{SDXL}"]
    ).list_models(timeout=5)
    default = await make(fake.url, client).list_models(timeout=5)

    assert [m.name for m in configured] == ["black-forest-labs/flux-dev", f"stability-ai/sdxl:{SDXL}"]
    assert [m.name for m in default] == ["black-forest-labs/flux-schnell"]
    assert all(m.capabilities == {"image"} for m in configured + default)
    assert fake.requests == []


async def test_the_cheap_probe_reads_the_account_and_runs_nothing(adapter, fake):
    details = await adapter.probe(timeout=5)

    assert details == {"account": "fake-artist", "type": "user"}
    assert [r.path for r in fake.requests] == ["/v1/account"]


async def test_the_deep_probe_runs_one_prediction(adapter, fake):
    details = await adapter.probe(timeout=5, deep=True, model="black-forest-labs/flux-schnell")

    assert details["images"] == 1 and len(fake.predictions) == 1


async def test_a_probe_with_a_bad_token_is_a_caller_error(fake, client):
    error = await raised(make(fake.url, client, api_key=None).probe(timeout=5))

    assert isinstance(error, UpstreamError) and error.outcome is Outcome.CALLER_ERROR
    assert error.message == "You did not pass an authentication token"

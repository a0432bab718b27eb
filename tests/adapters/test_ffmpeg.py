"""FFmpegAdapter against FakeFFmpeg: stills and a soundtrack composed into a video, the caller's
inputs fetched here through the URL guard and inlined, the job polled and cancelled; errors; health."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator

import httpx
import pytest
from aiohttp import web

from providers.adapters.base import ProviderConfig
from providers.adapters.ffmpeg import PIXEL, FFmpegAdapter
from providers.adapters.media import parse_data_url
from providers.engine import UpstreamError
from providers.engine.outcome import Outcome, at_fault, classify_exception
from tests.fakes.base import FakeServer, free_port
from tests.fakes.ffmpeg import FFMPEG_VERSION, WEBM, FakeFFmpeg
from tests.fakes.piper import speak
from tests.fakes.sdwebui import png

from .expect import raised
from .freetime import FreeTime
from .mp4 import mp4_seconds

STILL = png(32, 32, 5)
THEME = speak("la la la")
STILL_URL = "data:image/png;base64," + base64.b64encode(STILL).decode()
THEME_URL = "data:audio/wav;base64," + base64.b64encode(THEME).decode()


class MediaHost(FakeServer):
    """Where a caller's inputs live: a PNG, a WAV, an HTML page and nothing."""

    kind = "media"

    def add_routes(self, app: web.Application) -> None:
        async def still(request: web.Request) -> web.Response:
            return web.Response(body=STILL, content_type="image/png")

        async def theme(request: web.Request) -> web.Response:
            return web.Response(body=THEME, content_type="audio/wav")

        async def page(request: web.Request) -> web.Response:
            return web.Response(text="<html>not a picture</html>", content_type="text/html")

        app.router.add_get("/still.png", still)
        app.router.add_get("/theme.wav", theme)
        app.router.add_get("/page.html", page)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeFFmpeg]:
    with FakeFFmpeg() as server:
        yield server


@pytest.fixture(scope="module")
def media() -> Iterator[MediaHost]:
    with MediaHost() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_media(media):
    media.reset()


@pytest.fixture
def time_():
    return FreeTime()


def make(
    url: str, client: httpx.AsyncClient, time_: FreeTime | None = None, *, api_key: str | None = None, **options
) -> FFmpegAdapter:
    time_ = time_ or FreeTime()
    return FFmpegAdapter(
        ProviderConfig(name="ffmpeg", kind="ffmpeg", base_url=url, api_key=api_key, options=options),
        client,
        clock=time_.clock,
        sleep=time_.sleep,
    )


@pytest.fixture
def adapter(fake, client, time_):
    return make(fake.url, client, time_)


def polls(fake) -> list:
    return [
        r for r in fake.requests if r.method == "GET" and r.path.startswith("/jobs/") and not r.path.endswith("/result")
    ]


def deletes(fake) -> list:
    return [r for r in fake.requests if r.method == "DELETE"]


def video_of(result) -> tuple[bytes, str]:
    content, media_type = parse_data_url(result.data["data"][0]["url"])
    return content, media_type


# -- composing --------------------------------------------------------------------------------


async def test_stills_and_a_soundtrack_become_one_composed_video(adapter, fake, time_):
    result = await adapter.video(
        {
            "prompt": "Spring sale",
            "images": [STILL_URL, STILL_URL],
            "audio": THEME_URL,
            "duration_s": 6,
            "size": "1080x1920",
        },
        model="compose",
        timeout=60,
    )

    assert fake.requests_to("/compose")[0].json() == {
        "inputs": [
            {"url": STILL_URL, "type": "image", "duration_s": 3.0},
            {"url": STILL_URL, "type": "image", "duration_s": 3.0},
            {"url": THEME_URL, "type": "audio"},
        ],
        "output": {"format": "mp4", "width": 1080, "height": 1920, "fps": 25, "duration_s": 6},
        "metadata": {"title": "Spring sale"},
    }
    assert len(polls(fake)) == 4 and time_.waits == [0.5, 0.75, 1.125, 1.6875]  # queued, processing x2, done
    content, media_type = video_of(result)
    assert media_type == "video/mp4" and mp4_seconds(content) == 6
    assert set(result.data) == {"created", "data"} and result.usage.images == 1 and result.model == "compose"
    assert deletes(fake) == []


async def test_without_a_duration_each_still_gets_the_configured_seconds(fake, client):
    adapter = make(fake.url, client, image_duration_s=2.5, width=640, height=360, fps=12)

    result = await adapter.video(
        {"prompt": "x", "images": STILL_URL, "response_format": "b64_json"}, model="", timeout=60
    )

    sent = fake.requests_to("/compose")[0].json()
    assert sent["inputs"] == [{"url": STILL_URL, "type": "image", "duration_s": 2.5}]
    assert sent["output"] == {"format": "mp4", "width": 640, "height": 360, "fps": 12}
    assert mp4_seconds(base64.b64decode(result.data["data"][0]["b64_json"])) == 2.5


async def test_webm_is_asked_for_and_labelled_as_such(adapter, fake):
    result = await adapter.video({"prompt": "x", "images": [STILL_URL], "output_format": "webm"}, model="c", timeout=60)

    assert video_of(result) == (WEBM, "video/webm")


# -- the caller's inputs ----------------------------------------------------------------------


async def test_a_callers_url_on_a_private_address_is_a_400_and_nothing_is_fetched(adapter, fake, media):
    error = await raised(adapter.video({"prompt": "x", "images": [f"{media.url}/still.png"]}, model="c", timeout=60))

    assert classify_exception(error).outcome is Outcome.CALLER_ERROR and error.status == 400
    assert media.requests == [] and fake.requests == []


async def test_allowed_inputs_are_fetched_here_and_sent_inline_so_the_service_fetches_nothing(
    adapter, fake, media, settings
):
    settings.FETCH_URL_ALLOW = ["127.0.0.1"]

    await adapter.video(
        {"prompt": "x", "images": [f"{media.url}/still.png"], "audio": f"{media.url}/theme.wav"}, model="c", timeout=60
    )

    assert sorted(r.path for r in media.requests) == ["/still.png", "/theme.wav"]
    assert fake.last["inlined"] == [(STILL, "image/png"), (THEME, "audio/wav")]
    assert all(i["url"].startswith("data:") for i in fake.last["request"]["inputs"])


async def test_without_inlining_public_urls_are_passed_on_and_private_ones_still_refused(fake, client, media):
    adapter = make(fake.url, client, inline_inputs=False)

    await adapter.video({"prompt": "x", "images": ["https://cdn.example.com/a.png"]}, model="c", timeout=60)
    error = await raised(
        adapter.video({"prompt": "x", "images": ["http://169.254.169.254/latest/meta-data/"]}, model="c", timeout=60)
    )

    assert fake.requests_to("/compose")[0].json()["inputs"][0]["url"] == "https://cdn.example.com/a.png"
    assert classify_exception(error).outcome is Outcome.CALLER_ERROR and error.status == 400
    assert len(fake.requests_to("/compose")) == 1


async def test_an_input_that_is_not_what_it_claims_is_the_callers_error(adapter, fake, media, settings):
    settings.FETCH_URL_ALLOW = ["127.0.0.1"]

    wrong = await raised(adapter.video({"prompt": "x", "images": [f"{media.url}/page.html"]}, model="c", timeout=60))
    gone = await raised(adapter.video({"prompt": "x", "images": [f"{media.url}/missing.png"]}, model="c", timeout=60))
    inline = await raised(adapter.video({"prompt": "x", "images": [THEME_URL]}, model="c", timeout=60))

    for error in (wrong, gone, inline):
        assert classify_exception(error).outcome is Outcome.CALLER_ERROR and error.status == 400
    assert "is text/html, not an image file" in wrong.message and "answered HTTP 404" in gone.message
    assert fake.requests == []


@pytest.mark.parametrize(
    "request_",
    [
        {"prompt": "x"},
        {"prompt": "x", "images": []},
        {"prompt": "x", "images": [3]},
        {"prompt": "x", "images": [STILL_URL], "duration_s": 0},
        {"prompt": "x", "images": [STILL_URL], "size": "1281x720"},
        {"prompt": "x", "images": [STILL_URL], "output_format": "gif"},
        {"prompt": "x", "images": [STILL_URL], "fps": 0},
        {"prompt": "x", "images": [STILL_URL], "audio": 1},
        {"prompt": "x", "images": [STILL_URL], "response_format": "png"},
        {"prompt": "x", "images": ["data:image/png;base64,%%%"]},
    ],
)
async def test_bad_requests_are_caller_errors_without_a_call(adapter, fake, request_):
    error = await raised(adapter.video(request_, model="c", timeout=60))

    assert classify_exception(error).outcome is Outcome.CALLER_ERROR and error.status == 400
    assert fake.requests == []


# -- the job's time ---------------------------------------------------------------------------


async def test_a_job_still_running_when_the_time_runs_out_is_the_deadline_and_is_cancelled(adapter, fake, time_):
    fake.behaviour = "hang"

    error = await raised(adapter.video({"prompt": "x", "images": [STILL_URL]}, model="c", timeout=12))

    assert (classify_exception(error).outcome, classify_exception(error).reason) == (
        Outcome.DEADLINE,
        "compose_timeout",
    )
    assert "was still processing" in error.message
    assert sum(time_.waits) == pytest.approx(12) and len(polls(fake)) == len(time_.waits) - 1
    assert [r.path for r in deletes(fake)] == [f"/jobs/{fake.last['id']}"] and fake.last["status"] == "cancelled"


async def test_a_cancelled_attempt_cancels_the_job(fake, client):
    fake.behaviour = "hang"
    time_, polled = FreeTime(), asyncio.Event()

    async def sleep(seconds: float) -> None:
        if time_.waits:
            polled.set()
        await time_.sleep(seconds)

    adapter = FFmpegAdapter(
        ProviderConfig(name="f", kind="ffmpeg", base_url=fake.url), client, clock=time_.clock, sleep=sleep
    )
    task = asyncio.create_task(adapter.video({"prompt": "x", "images": [STILL_URL]}, model="c", timeout=1e6))
    await polled.wait()
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task

    assert len(deletes(fake)) == 1 and fake.last["status"] == "cancelled"


async def test_a_failed_job_is_a_failure_with_the_services_error(adapter, fake):
    fake.behaviour = "fail"

    error = await raised(adapter.video({"prompt": "x", "images": [STILL_URL]}, model="c", timeout=60))

    assert (classify_exception(error).outcome, classify_exception(error).reason) == (Outcome.FAILURE, "job_failed")
    assert error.message == fake.failure_error and deletes(fake) == []


async def test_a_poll_that_fails_cancels_the_job_and_is_a_failure(adapter, fake):
    fake.behaviour = "hang"
    fake.fault(path="/jobs/", status=503, times=1)

    error = await raised(adapter.video({"prompt": "x", "images": [STILL_URL]}, model="c", timeout=60))

    assert classify_exception(error).outcome is Outcome.FAILURE and error.status == 503
    assert len(deletes(fake)) == 1


# -- errors -----------------------------------------------------------------------------------


async def test_the_key_is_sent_and_a_wrong_one_is_our_credential_refused(client):
    with FakeFFmpeg(api_key="s3cret") as guarded:
        ok = await make(guarded.url, client, api_key="s3cret").video(
            {"prompt": "x", "images": [STILL_URL]}, model="c", timeout=60
        )
        error = await raised(
            make(guarded.url, client, api_key="nope").video(
                {"prompt": "x", "images": [STILL_URL]}, model="c", timeout=60
            )
        )

    assert video_of(ok)[1] == "video/mp4"
    assert isinstance(error, UpstreamError) and (error.status, error.message) == (401, "missing or invalid API key")
    assert (
        at_fault(error.classification, 401, error.body, error.message, "c", caller_named=False).outcome
        is Outcome.CREDENTIAL_REJECTED
    )


async def test_a_full_queue_is_rate_limited_with_its_wait(adapter, fake):
    fake.fault(path="/compose", status=429, retry_after="7")

    error = await raised(adapter.video({"prompt": "x", "images": [STILL_URL]}, model="c", timeout=60))

    assert (classify_exception(error).outcome, classify_exception(error).retry_after) == (Outcome.RATE_LIMITED, 7)
    assert error.message == "the queue is full, retry later"


async def test_a_composition_the_service_refuses_is_the_callers_error_with_its_reason(adapter, fake):
    error = await raised(adapter.compose({"inputs": [{"url": THEME_URL, "type": "audio"}]}, 1e9))

    assert classify_exception(error).outcome is Outcome.CALLER_ERROR and error.status == 400
    assert error.message == "a composition needs at least one image or video"


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        (httpx.Response(200, content=b"<html/>", headers={"content-type": "text/html"}), "malformed_response"),
        (httpx.Response(409, json={"error": "the job is processing, not completed"}), "output_unavailable"),
        (httpx.Response(500, json={"error": "disk full"}), "http_500"),
    ],
)
async def test_a_completed_job_without_a_usable_file_is_a_failure(result, reason):
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(202, json={"job_id": "j1", "status": "queued"})
        if request.url.path == "/jobs/j1":
            return httpx.Response(200, json={"job_id": "j1", "status": "completed"})
        return result

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        error = await raised(
            make("http://ffmpeg.local:8080", http).video({"prompt": "x", "images": [STILL_URL]}, model="c", timeout=60)
        )

    assert classify_exception(error).outcome is Outcome.FAILURE and classify_exception(error).reason == reason


async def test_a_job_id_that_would_change_the_path_is_a_failure():
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(202, json={"job_id": "../health", "status": "queued"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        error = await raised(
            make("http://ffmpeg.local:8080", http).video({"prompt": "x", "images": [STILL_URL]}, model="c", timeout=60)
        )

    assert classify_exception(error).reason == "malformed_response" and seen == ["/compose"]


async def test_a_refused_port_is_a_connect_failure(client):
    error = await raised(make(f"http://127.0.0.1:{free_port()}", client).probe(timeout=2))

    assert classify_exception(error).reason == "connect_error"


# -- models, health and probes ----------------------------------------------------------------


async def test_the_model_is_compose_unless_named(fake, client):
    assert [(m.name, m.capabilities) for m in await make(fake.url, client).list_models(timeout=5)] == [
        ("compose", {"video"})
    ]
    assert [m.name for m in await make(fake.url, client, models=["slideshow"]).list_models(timeout=5)] == ["slideshow"]


async def test_the_cheap_probe_reads_health_and_composes_nothing(adapter, fake):
    details = await adapter.probe(timeout=5)

    assert details == {"ffmpeg": FFMPEG_VERSION, "queued": 0, "processing": 0}
    assert [r.path for r in fake.requests] == ["/health"]


async def test_a_service_that_cannot_compose_fails_its_probe(adapter, fake):
    fake.health = "ffmpeg binary not found"

    error = await raised(adapter.probe(timeout=5))

    assert (classify_exception(error).outcome, classify_exception(error).reason) == (Outcome.FAILURE, "unhealthy")
    assert "ffmpeg binary not found" in error.message


async def test_the_deep_probe_composes_one_second_of_one_pixel(adapter, fake):
    details = await adapter.probe(timeout=60, deep=True)

    assert details["video_bytes"] > 0
    assert fake.last["request"]["inputs"] == [{"url": PIXEL, "type": "image", "duration_s": 1}]


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"size": "x"}, "size is not an option"),
        ({"width": 1281}, "width"),
        ({"fps": 0}, "fps"),
        ({"image_duration_s": 0}, "image_duration_s"),
        ({"inline_inputs": "no"}, "inline_inputs"),
        ({"poll_max_interval_s": -1}, "poll_max_interval_s"),
    ],
)
def test_options_it_cannot_run_with_are_refused_naming_the_option(options, named):
    with pytest.raises(ValueError) as info:
        FFmpegAdapter.validate_options(options)

    assert str(info.value).startswith(named)

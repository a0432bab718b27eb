"""FalAdapter against FakeFal: requests queued, polled with growing waits, fetched; audio in the
format asked or not at all; every error class; result files through the URL guard; the probe."""

from __future__ import annotations

import asyncio
import base64
import struct

import httpx
import pytest

from providers.adapters.base import ProviderConfig
from providers.adapters.fal import FalAdapter
from providers.engine import UnsupportedRequest, UpstreamError
from providers.engine.outcome import Outcome, at_fault, classify_exception
from tests.fakes.base import free_port
from tests.fakes.fal import API_KEY, LOCKED, FakeFal

from .expect import raised
from .freetime import FreeTime

FLUX = "fal-ai/flux/schnell"
KOKORO = "fal-ai/kokoro/american-english"
ELEVEN = "fal-ai/elevenlabs/tts/multilingual-v2"


@pytest.fixture(scope="module")
def fake():
    with FakeFal() as server:
        yield server


@pytest.fixture
def time_():
    return FreeTime()


def make(
    url: str, client: httpx.AsyncClient, time_: FreeTime | None = None, *, api_key: str | None = API_KEY, **options
) -> FalAdapter:
    time_ = time_ or FreeTime()
    config = ProviderConfig(
        name="fal", kind="fal", base_url=url, api_key=api_key, options={"platform_url": url, **options}
    )
    return FalAdapter(config, client, clock=time_.clock, sleep=time_.sleep)


@pytest.fixture
def adapter(fake, client, time_):
    return make(fake.url, client, time_)


def polls(fake) -> list:
    return [r for r in fake.requests if r.path.endswith("/status")]


def cancels(fake) -> list:
    return [r for r in fake.requests if r.method == "PUT"]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


# -- images -----------------------------------------------------------------------------------


async def test_an_image_request_is_queued_polled_with_growing_waits_and_its_result_fetched(adapter, fake, time_):
    result = await adapter.images({"model": "pictures", "prompt": "a red fox"}, model=FLUX, timeout=30)

    submit = fake.requests_to(f"/{FLUX}")[0]
    rid = fake.last["id"]
    assert submit.json() == {"prompt": "a red fox"} and submit.headers["Authorization"] == f"Key {API_KEY}"
    # status and result live under the app id, without the endpoint's subpath
    assert [r.path for r in polls(fake)] == [f"/fal-ai/flux/requests/{rid}/status"] * 4  # 2 queued, 1 running, done
    assert [r.path for r in fake.requests][-1] == f"/fal-ai/flux/requests/{rid}"
    assert time_.waits == [0.5, 0.75, 1.125, 1.6875]
    assert set(result.data) == {"created", "data"}
    assert result.data["data"] == [{"url": f"{fake.url}/files/{rid}/0.png"}]
    assert result.usage.images == 1 and result.model == FLUX and cancels(fake) == []


async def test_n_size_defaults_and_the_requests_own_input_fields_reach_the_model(fake, client):
    adapter = make(fake.url, client, input={"enable_safety_checker": False, "num_inference_steps": 2})

    result = await adapter.images(
        {"prompt": "dunes", "n": 3, "size": "1344x768", "seed": 7, "input": {"num_inference_steps": 4}},
        model=FLUX,
        timeout=30,
    )

    assert fake.last["input"] == {
        "enable_safety_checker": False,
        "num_inference_steps": 4,
        "prompt": "dunes",
        "num_images": 3,
        "image_size": {"width": 1344, "height": 768},
        "seed": 7,
    }
    assert len(result.data["data"]) == 3 and result.usage.images == 3


async def test_b64_json_downloads_each_file_without_the_key(adapter, fake):
    result = await adapter.images(
        {"prompt": "x", "n": 2, "response_format": "b64_json", "seed": 3}, model=FLUX, timeout=30
    )

    images = [base64.b64decode(d["b64_json"]) for d in result.data["data"]]
    assert [png_size(i) for i in images] == [(64, 64), (64, 64)] and images[0] != images[1]
    downloads = [r for r in fake.requests if r.path.startswith("/files/")]
    assert len(downloads) == 2 and all("Authorization" not in r.headers for r in downloads)


async def test_the_urls_of_the_submit_answer_are_not_followed_with_the_key():
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url}")
        if request.method == "POST":
            return httpx.Response(
                200,
                json={
                    "status": "IN_QUEUE",
                    "request_id": "r-1",
                    "queue_position": 0,
                    "status_url": "https://collector.example/steal/status",
                    "response_url": "https://collector.example/steal",
                    "cancel_url": "https://collector.example/steal/cancel",
                },
            )
        if request.url.path.endswith("/status"):
            return httpx.Response(200, json={"status": "COMPLETED"})
        return httpx.Response(200, json={"images": [{"url": "https://v3.fal.media/files/x.png"}]})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        result = await make("https://queue.fal.run", http).images({"prompt": "x"}, model=FLUX, timeout=30)

    assert seen == [
        "POST https://queue.fal.run/fal-ai/flux/schnell",
        "GET https://queue.fal.run/fal-ai/flux/requests/r-1/status",
        "GET https://queue.fal.run/fal-ai/flux/requests/r-1",
    ]
    assert result.data["data"] == [{"url": "https://v3.fal.media/files/x.png"}]


async def test_a_request_id_that_would_change_the_path_is_a_failure():
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, json={"status": "IN_QUEUE", "request_id": "../../v1/keys"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        error = await raised(make("https://queue.fal.run", http).images({"prompt": "x"}, model=FLUX, timeout=30))

    assert classify_exception(error).outcome is Outcome.FAILURE and seen == ["/fal-ai/flux/schnell"]


@pytest.mark.parametrize("model", ["flux", "fal-ai/../v1", "fal-ai/flux/schnell?x=1", "fal-ai//schnell"])
async def test_an_endpoint_id_that_is_not_plain_segments_is_a_400_and_sends_nothing(adapter, fake, model):
    error = await raised(adapter.images({"prompt": "x"}, model=model, timeout=30))

    assert classify_exception(error).outcome is Outcome.CALLER_ERROR and error.status == 400
    assert fake.requests == []


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
async def test_bad_image_requests_are_caller_errors_without_a_call(adapter, fake, request_):
    error = await raised(adapter.images(request_, model=FLUX, timeout=30))

    assert classify_exception(error).outcome is Outcome.CALLER_ERROR and error.status == 400
    assert fake.requests == []


# -- audio ------------------------------------------------------------------------------------


async def test_speech_on_kokoro_sends_the_text_in_its_prompt_field_and_answers_the_wav(adapter, fake):
    result = await adapter.speech(
        {"input": "Hello from the gateway", "voice": "af_heart", "speed": 1.2, "response_format": "wav"},
        model=KOKORO,
        timeout=30,
    )

    assert fake.last["input"] == {"prompt": "Hello from the gateway", "voice": "af_heart", "speed": 1.2}
    assert result.media_type == "audio/wav" and result.content[:4] == b"RIFF"
    assert result.usage.characters == 22 and result.usage.audio_seconds > 0 and result.model == KOKORO
    download = next(r for r in fake.requests if r.path.startswith("/files/"))
    assert "Authorization" not in download.headers


async def test_openai_voice_names_are_mapped_by_the_options_or_left_out(fake, client):
    adapter = make(fake.url, client, voices={"nova": "af_nova"})

    await adapter.speech({"input": "a", "voice": "nova", "response_format": "wav"}, model=KOKORO, timeout=30)
    await adapter.speech({"input": "b", "voice": "alloy", "response_format": "wav"}, model=KOKORO, timeout=30)

    assert [j["input"] for j in fake.jobs.values()] == [{"prompt": "a", "voice": "af_nova"}, {"prompt": "b"}]


async def test_speech_asks_for_mp3_by_default_as_openai_does(adapter, fake):
    result = await adapter.speech({"input": "Hallo", "fal_input": {"stability": 0.4}}, model=ELEVEN, timeout=30)

    assert fake.last["input"] == {"text": "Hallo", "stability": 0.4}
    assert result.media_type == "audio/mpeg" and result.content[:3] == b"ID3"


async def test_a_sound_model_answering_audio_file_is_read_too(adapter, fake):
    result = await adapter.speech(
        {"input": "rain on a tin roof", "response_format": "wav"}, model="fal-ai/stable-audio", timeout=30
    )

    assert fake.last["input"] == {"prompt": "rain on a tin roof"} and result.content[:4] == b"RIFF"


async def test_a_format_the_model_does_not_make_is_refused_before_sending(adapter, fake):
    error = await raised(adapter.speech({"input": "hi", "response_format": "mp3"}, model=KOKORO, timeout=30))

    assert isinstance(error, UnsupportedRequest) and error.classification.reason == "unsupported_format"
    assert "makes wav audio, not the mp3 asked for" in error.message and fake.requests == []


async def test_a_configured_audio_model_says_its_own_text_field_and_format(fake, client):
    adapter = make(fake.url, client, audio_models={"fal-ai/stable-audio": {"format": "mp3"}})

    error = await raised(
        adapter.speech({"input": "x", "response_format": "wav"}, model="fal-ai/stable-audio", timeout=30)
    )

    assert adapter.audio_spec("fal-ai/stable-audio").text_input == "prompt"  # the known field, kept
    assert isinstance(error, UnsupportedRequest) and "makes mp3 audio" in error.message


async def test_audio_in_another_format_than_asked_is_a_failure_not_a_silent_change(adapter, fake):
    fake.audio_format = "mp3"

    error = await raised(adapter.speech({"input": "hi", "response_format": "wav"}, model=KOKORO, timeout=30))

    assert classify_exception(error).outcome is Outcome.FAILURE
    assert classify_exception(error).reason == "wrong_audio_format"


@pytest.mark.parametrize(
    "request_",
    [
        {"input": ""},
        {"input": "x", "response_format": "ogg"},
        {"input": "x", "response_format": "wav", "fal_input": "y"},
    ],
)
async def test_bad_speech_requests_are_caller_errors_without_a_call(adapter, fake, request_):
    error = await raised(adapter.speech(request_, model=KOKORO, timeout=30))

    assert classify_exception(error).outcome is Outcome.CALLER_ERROR and fake.requests == []


async def test_speaking_instructions_are_refused_rather_than_dropped(adapter, fake):
    error = await raised(
        adapter.speech({"input": "x", "response_format": "wav", "instructions": "whisper"}, model=KOKORO, timeout=30)
    )

    assert isinstance(error, UnsupportedRequest) and fake.requests == []


# -- the queue's time -------------------------------------------------------------------------


async def test_a_request_still_queued_when_the_time_runs_out_is_the_deadline_and_is_cancelled(adapter, fake, time_):
    fake.behaviour = "queue"

    error = await raised(adapter.images({"prompt": "x"}, model=FLUX, timeout=10))

    assert (classify_exception(error).outcome, classify_exception(error).reason) == (Outcome.DEADLINE, "queue_timeout")
    assert "was still IN_QUEUE at queue position 0" in error.message
    assert sum(time_.waits) == pytest.approx(10) and time_.waits[-1] < 5  # the last wait cut to the time left
    assert len(polls(fake)) == len(time_.waits) - 1
    assert [r.path for r in cancels(fake)] == [f"/fal-ai/flux/requests/{fake.last['id']}/cancel"]
    assert fake.last["cancelled"] is True


async def test_waits_grow_to_the_configured_cap(fake, client, time_):
    fake.behaviour = "queue"
    adapter = make(fake.url, client, time_, poll_interval_s=1, poll_backoff=2, poll_max_interval_s=4)

    await raised(adapter.images({"prompt": "x"}, model=FLUX, timeout=20))

    assert time_.waits == [1, 2, 4, 4, 4, 4, 1]


async def test_a_cancelled_attempt_cancels_the_queued_request(fake, client):
    fake.behaviour = "queue"
    time_, polled = FreeTime(), asyncio.Event()

    async def sleep(seconds: float) -> None:
        if time_.waits:  # a wait after the first: a status poll has been made
            polled.set()
        await time_.sleep(seconds)

    adapter = FalAdapter(
        ProviderConfig(name="fal", kind="fal", base_url=fake.url, api_key=API_KEY),
        client,
        clock=time_.clock,
        sleep=sleep,
    )
    task = asyncio.create_task(adapter.images({"prompt": "x"}, model=FLUX, timeout=1e6))
    await polled.wait()
    task.cancel()

    error = await raised_any(task)

    assert isinstance(error, asyncio.CancelledError) and len(polls(fake)) >= 1
    assert len(cancels(fake)) == 1 and fake.last["cancelled"] is True


async def raised_any(awaitable) -> BaseException:
    with pytest.raises(BaseException) as info:
        await awaitable
    return info.value


async def test_a_poll_that_fails_cancels_the_request_and_is_a_failure(adapter, fake):
    fake.behaviour = "queue"
    fake.fault(path="/fal-ai/flux/requests/", status=503, times=1)

    error = await raised(adapter.images({"prompt": "x"}, model=FLUX, timeout=30))

    assert classify_exception(error).outcome is Outcome.FAILURE and error.status == 503
    assert len(cancels(fake)) == 1


async def test_a_runner_that_failed_is_a_failure_with_fals_detail(adapter, fake):
    fake.behaviour = "fail"

    error = await raised(adapter.images({"prompt": "x"}, model=FLUX, timeout=30))

    assert classify_exception(error).outcome is Outcome.FAILURE and error.status == 500
    assert error.message == fake.failure_detail and cancels(fake) == []


# -- errors -----------------------------------------------------------------------------------


async def test_input_the_model_refuses_is_a_caller_error_with_the_field_named(adapter, fake):
    error = await raised(adapter.images({"prompt": "x", "n": 6}, model=FLUX, timeout=30))

    assert classify_exception(error).outcome is Outcome.CALLER_ERROR and error.status == 422
    assert error.message == "num_images: ensure this value is less than or equal to 4"


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("0123:wrong", "No user found for Key ID and Secret"),
        ("no-colon", "Invalid Key Authorization header format. Expected '<key_id>:<key_secret>'."),
        (None, "Authentication is required to access this application."),
    ],
)
async def test_a_refused_key_is_our_credential_refused_inside_a_chain(fake, client, key, message):
    error = await raised(make(fake.url, client, api_key=key).images({"prompt": "x"}, model=FLUX, timeout=30))

    assert isinstance(error, UpstreamError) and (error.status, error.message) == (401, message)
    assert error.outcome is Outcome.CALLER_ERROR
    assert (
        at_fault(error.classification, 401, error.body, error.message, FLUX, caller_named=False).outcome
        is Outcome.CREDENTIAL_REJECTED
    )


async def test_an_exhausted_balance_is_exhausted_not_a_bad_key(adapter, fake):
    fake.locked = True

    error = await raised(adapter.images({"prompt": "x"}, model=FLUX, timeout=30))

    assert (classify_exception(error).outcome, classify_exception(error).reason) == (
        Outcome.EXHAUSTED,
        "exhausted_balance",
    )
    assert error.status == 403 and error.message == LOCKED


async def test_throttling_is_rate_limited_with_its_wait(adapter, fake):
    fake.fault(path=f"/{FLUX}", status=429, retry_after="2")

    error = await raised(adapter.images({"prompt": "x"}, model=FLUX, timeout=30))

    assert classify_exception(error).outcome is Outcome.RATE_LIMITED
    assert classify_exception(error).retry_after == 2


async def test_a_server_error_on_submit_is_a_failure(adapter, fake):
    fake.fault(path=f"/{FLUX}", status=502)

    error = await raised(adapter.images({"prompt": "x"}, model=FLUX, timeout=30))

    assert classify_exception(error).outcome is Outcome.FAILURE and error.message == "Bad Gateway"


async def test_an_unknown_model_sets_a_route_that_chose_it_aside(adapter, fake):
    error = await raised(adapter.images({"prompt": "x"}, model="fal-ai/no-such-model", timeout=30))

    assert isinstance(error, UpstreamError) and error.status == 404
    assert error.classification.reason == "model_not_found"
    assert (
        at_fault(
            error.classification, 404, error.body, error.message, "fal-ai/no-such-model", caller_named=False
        ).outcome
        is Outcome.TARGET_MISCONFIGURED
    )


@pytest.mark.parametrize(
    ("status", "result", "reason", "cancelled"),
    [
        ({"status": "COMPLETED"}, {"images": []}, "malformed_response", False),
        ({"queue_position": 1}, None, "malformed_response", True),  # still queued, as far as we know
        ({"status": "FAILED"}, None, "request_failed", False),  # ended: nothing to cancel
    ],
)
async def test_answers_that_cannot_be_used_are_failures(status, result, reason, cancelled):
    methods: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        methods.append(request.method)
        if request.method == "POST":
            return httpx.Response(200, json={"status": "IN_QUEUE", "request_id": "r-3"})
        return httpx.Response(200, json=status if request.url.path.endswith("/status") else result)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        error = await raised(make("https://queue.fal.run", http).images({"prompt": "x"}, model=FLUX, timeout=30))

    assert classify_exception(error).outcome is Outcome.FAILURE and classify_exception(error).reason == reason
    assert ("PUT" in methods) is cancelled


async def test_a_refused_port_is_a_connect_failure(client):
    error = await raised(make(f"http://127.0.0.1:{free_port()}", client).images({"prompt": "x"}, model=FLUX, timeout=5))

    assert classify_exception(error).reason == "connect_error"


# -- result files through the URL guard -------------------------------------------------------


async def test_a_result_file_on_a_private_address_is_refused_unless_allowed(fake, client, settings):
    # The queue is reached as "localhost"; the files it names are on 127.0.0.1: another origin, on loopback.
    adapter = make(f"http://localhost:{fake.port}", client)
    b64 = {"prompt": "x", "response_format": "b64_json"}

    image_error = await raised(adapter.images(b64, model=FLUX, timeout=30))
    sound_error = await raised(adapter.speech({"input": "hi", "response_format": "wav"}, model=KOKORO, timeout=30))
    refused_downloads = [r for r in fake.requests if r.path.startswith("/files/")]
    settings.FETCH_URL_ALLOW = ["127.0.0.1"]
    allowed = await adapter.images(b64, model=FLUX, timeout=30)

    for error in (image_error, sound_error):
        assert isinstance(error, UpstreamError) and error.outcome is Outcome.FAILURE
        assert error.classification.reason == "unsafe_output_url"
    assert refused_downloads == []
    assert png_size(base64.b64decode(allowed.data["data"][0]["b64_json"])) == (64, 64)


async def test_a_result_url_on_the_metadata_address_is_never_fetched():
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.method == "POST":
            return httpx.Response(200, json={"status": "COMPLETED", "request_id": "r-2"})
        return httpx.Response(200, json={"images": [{"url": "http://169.254.169.254/latest/meta-data/iam"}]})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        error = await raised(
            make("https://queue.fal.run", http).images(
                {"prompt": "x", "response_format": "b64_json"}, model=FLUX, timeout=30
            )
        )

    assert isinstance(error, UpstreamError) and error.classification.reason == "unsafe_output_url"
    assert seen == ["/fal-ai/flux/schnell", "/fal-ai/flux/requests/r-2"]


# -- models and probes ------------------------------------------------------------------------


async def test_models_are_the_configured_image_and_audio_ones_or_the_default(fake, client):
    default = await make(fake.url, client).list_models(timeout=5)
    both = await make(fake.url, client, models=["fal-ai/flux/dev"], audio_models=[KOKORO, ELEVEN]).list_models(
        timeout=5
    )

    assert [(m.name, m.capabilities) for m in default] == [(FLUX, {"image"})]
    assert [(m.name, m.capabilities, m.details.get("format")) for m in both] == [
        ("fal-ai/flux/dev", {"image"}, None),
        (KOKORO, {"tts"}, "wav"),
        (ELEVEN, {"tts"}, "mp3"),
    ]
    assert fake.requests == []


async def test_the_cheap_probe_reads_the_prices_with_the_key_and_runs_nothing(fake, client):
    details = await make(fake.url, client, audio_models=[KOKORO], models=[FLUX]).probe(timeout=5)

    assert details == {"models": 2, "prices": {FLUX: "0.003 USD/megapixels", KOKORO: "0.02 USD/1000 characters"}}
    pricing = fake.requests_to("/v1/models/pricing")
    assert [r.path for r in fake.requests] == ["/v1/models/pricing"]
    assert pricing[0].query == {"endpoint_id": f"{FLUX},{KOKORO}"}
    assert pricing[0].headers["Authorization"] == f"Key {API_KEY}"


async def test_a_probe_with_a_bad_key_fails_as_the_key_refused(fake, client):
    error = await raised(make(fake.url, client, api_key="0123:wrong").probe(timeout=5))

    assert isinstance(error, UpstreamError) and (error.status, error.outcome) == (401, Outcome.CALLER_ERROR)


async def test_the_deep_probe_runs_one_image_or_one_sound(fake, client):
    image = await make(fake.url, client).probe(timeout=30, deep=True)
    sound = await make(fake.url, client, audio_models=[KOKORO]).probe(timeout=30, deep=True)

    assert image["images"] == 1 and sound["audio_bytes"] > 44
    assert [j["endpoint"] for j in fake.jobs.values()] == [FLUX, KOKORO]


# -- options ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"model": "x"}, "model is not an option"),
        ({"audio_models": [1]}, "audio_models"),
        ({"audio_models": {KOKORO: {"format": "ogg"}}}, f"audio_models.{KOKORO}.format"),
        ({"poll_interval_s": 0}, "poll_interval_s"),
        ({"poll_backoff": 0.5}, "poll_backoff"),
        ({"input": []}, "input"),
        ({"voices": {"alloy": 3}}, "voices"),
        ({"platform_url": "ftp://x"}, "platform_url"),
    ],
)
def test_options_it_cannot_run_with_are_refused_naming_the_option(options, named):
    with pytest.raises(ValueError) as info:
        FalAdapter.validate_options(options)

    assert str(info.value).startswith(named)


async def test_sensible_options_pass_and_configure_the_audio_specs(fake, client):
    options = {
        "models": [FLUX],
        "audio_models": {KOKORO: {}, "acme/tts": {"text_input": "words", "format": "flac"}},
        "poll_interval_s": 0.2,
        "poll_backoff": 1,
        "poll_max_interval_s": 2,
        "cancel_timeout_s": 2,
        "input": {"sync_mode": False},
    }
    FalAdapter.validate_options(options)

    adapter = make(fake.url, client, **options)

    assert (adapter.audio_spec("acme/tts").text_input, adapter.audio_spec("acme/tts").format) == ("words", "flac")
    assert adapter.audio_spec(KOKORO).format == "wav"  # an empty entry keeps the known spec

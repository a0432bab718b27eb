"""A local ffmpeg composition service: stills (and a soundtrack) cut together into one video, for
the `video` capability.

There is no one standard ffmpeg HTTP API. This wire format follows the async-job shape of
crisog/ffmpeg-rest (and its forks): JSON naming input URLs, an immediate job id, `GET /jobs/{id}`
to poll, a Bearer token when the service wants one. It differs in two ways: one `POST /compose`
instead of per-operation endpoints (`/mux`, `/concatenate`), because composing is the one thing
asked of it here; and the service serves the file itself (`GET /jobs/{id}/result`) instead of
uploading it to a bucket, so a composition needs no storage account. The whole format:

    POST /compose          {"inputs": [{"url", "type": "image" | "audio" | "video", "duration_s"}],
                            "output": {"format": "mp4" | "webm", "width", "height", "fps", "duration_s"},
                            "metadata": {"title"}}
                           -> 202 {"job_id", "status": "queued"}
                           Images and videos are shown one after another, each for its
                           `duration_s` (a video: its own length when none is given); audio plays
                           from the start; the output ends at `output.duration_s`, else with the
                           pictures. An input URL is http(s) or a `data:` URL.
    GET  /jobs/{id}        {"job_id", "status": "queued" | "processing" | "completed" | "failed" |
                            "cancelled", "progress": 0-100, "error", "result": {"content_type",
                            "size_bytes", "duration_s", "width", "height"}}
    GET  /jobs/{id}/result the file (video/mp4 or video/webm); 409 before the job completed
    DELETE /jobs/{id}      cancels a job not yet finished
    GET  /health           {"status": "ok", "ffmpeg": "<version>", "queued", "processing"}; 503
                           with another status when the service cannot compose
    Errors: {"error": "<message>"}: 400 a request it cannot compose, 401 a missing or wrong
    key, 404 an unknown job, 413 an input too large, 429 a full queue (Retry-After), 5xx.

An `Adapter.video` request maps as: `images` (one URL or a list, required) become image inputs
of `duration_s / len(images)` seconds each (`options["image_duration_s"]`, default 3, when no
duration is asked); `audio` an audio input; `size` "WxH" (even sides; default
`options["width"]` x `options["height"]`, 1280x720), `fps` (default 25) and `output_format`
(mp4 or webm) the output; `duration_s` the output's length; the `prompt` the file's title (a
composition generates nothing). The video comes back as `{"created", "data": [{"url":
"data:video/mp4;base64,..."}]}` (the service is local: it has no URL a client could reach), or
`{"b64_json"}`. Usage: one video, so a `per_image` price is the price per video.

Inputs come from the caller, and the service fetches from inside the network. So by default
(`options["inline_inputs"]`, true) the gateway fetches every http(s) input itself through the
URL guard, as the caller's (a private, loopback or metadata address is a 400 unless
FETCH_URL_ALLOW names it; what a name resolves to is checked too), and sends it inline as a
`data:` URL: the service fetches nothing. With `inline_inputs: false` the URLs are passed on
after the same check of what they say (for large inputs and a service that fetches from a
sandbox; what a name resolves to is then the service's business).

The job is polled with growing waits within the attempt's time (`polling`), and cancelled
(`DELETE /jobs/{id}`, best effort) when the time runs out (DEADLINE `compose_timeout`), the
attempt is cancelled or a poll fails. A failed job is a FAILURE (`job_failed`, with the
service's error). 401/403 are CALLER_ERROR (our key refused, inside a chain), 400/413 the
caller's, 429 RATE_LIMITED, 5xx FAILURE.

Probe: `GET /health` (free); a status other than "ok" is a FAILURE (`unhealthy`); the details
are the ffmpeg version and the queue. Deep: a one-second video of one inline pixel.

Options (`ProviderConfig.options`):
    width, height, fps      the output's defaults (1280, 720, 25)
    image_duration_s        seconds per image when the request asks no duration (3.0)
    inline_inputs           fetch inputs here and send them inline (default true)
    models                  the names `list_models` reports (default ["compose"])
    poll_interval_s, poll_backoff, poll_max_interval_s   the waits between status polls
    cancel_timeout_s        how long the cancel call may take (default 3.0)
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import time
from collections.abc import Awaitable, Mapping
from typing import Any

import httpx

from providers.engine import Classification, Outcome, UpstreamError

from .base import Adapter, ModelInfo, ProviderConfig, Result, Usage, bad_request, malformed
from .media import data_url, download, parse_data_url
from .polling import POLL_OPTIONS, Clock, JobPoller, PollSchedule, Sleep
from .urlguard import FETCH, URLRefused, caller_error, current

WAITING = frozenset({"queued", "processing"})
FORMATS = {"mp4": "video/mp4", "webm": "video/webm"}
OPTIONS = (
    frozenset(
        {
            "width",
            "height",
            "fps",
            "image_duration_s",
            "inline_inputs",
            "models",
        }
    )
    | POLL_OPTIONS
)
_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
_MAX_IMAGES = 50
_MAX_DURATION_S = 600
# One transparent pixel, for the deep probe: a composition that fetches nothing.
PIXEL = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGBgAAAABQAB"
    "pfZFQAAAAABJRU5ErkJggg=="
)


class FFmpegAdapter(Adapter):
    kind = "ffmpeg"
    capabilities = frozenset({"video"})
    default_base_url = "http://127.0.0.1:8080"

    def __init__(
        self,
        config: ProviderConfig,
        client: httpx.AsyncClient,
        *,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        super().__init__(config, client)
        self.poller = JobPoller(config.options, config.connect_timeout_s, clock, sleep)
        self.clock = self.poller.clock

    @classmethod
    def validate_options(cls, options: Mapping[str, Any]) -> None:
        """Every option this adapter reads, checked as the configuration is saved; ValueError
        naming the option (see providers/adapters/__init__.py)."""
        unknown = sorted(set(options) - OPTIONS)
        if unknown:
            raise ValueError(
                f"{unknown[0]} is not an option of ffmpeg providers (they take: {', '.join(sorted(OPTIONS))})"
            )
        PollSchedule.check_options(options)
        for name, low, high in (("width", 16, 4096), ("height", 16, 4096), ("fps", 1, 60)):
            value = options.get(name)
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int)
                or not low <= value <= high
                or (name != "fps" and value % 2)
            ):
                even = " and even" if name != "fps" else ""
                raise ValueError(f"{name} must be a whole number from {low} to {high}{even}, not {value!r}")
        value = options.get("image_duration_s")
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= _MAX_DURATION_S
        ):
            raise ValueError(f"image_duration_s must be a number of seconds above 0 and at most {_MAX_DURATION_S}")
        if not isinstance(options.get("inline_inputs", True), bool):
            raise ValueError("inline_inputs must be true or false")
        models = options.get("models")
        if models is not None and (not isinstance(models, list) or not all(isinstance(m, str) and m for m in models)):
            raise ValueError("models must be a list of names")

    # -- composing ------------------------------------------------------------------------------

    async def video(self, request: dict[str, Any], *, model: str, timeout: float) -> Result:
        response_format = request.get("response_format") or "url"
        if response_format not in ("url", "b64_json"):
            raise bad_request("'response_format' must be 'url' or 'b64_json'")
        deadline = self.clock() + timeout
        body = self._compose_request(request)
        await self._take_inputs(body["inputs"], deadline)
        content, media_type = await self.compose(body, deadline)
        item = (
            {"b64_json": base64.b64encode(content).decode()}
            if response_format == "b64_json"
            else {"url": data_url(content, media_type)}
        )
        return Result.json(
            {"created": int(time.time()), "data": [item]}, usage=Usage(images=1), model=model or "compose"
        )

    def _compose_request(self, request: dict[str, Any]) -> dict[str, Any]:
        """The service's request for an `Adapter.video` request; its input URLs still as given."""
        options = self.config.options
        images = request.get("images")
        if isinstance(images, str):
            images = [images]
        if not isinstance(images, list) or not images or not all(isinstance(i, str) and i for i in images):
            raise bad_request("'images' must be a list of image URLs (a composition needs at least one)")
        if len(images) > _MAX_IMAGES:
            raise bad_request(f"'images' may hold at most {_MAX_IMAGES} URLs")
        duration = request.get("duration_s")
        if duration is not None and (
            isinstance(duration, bool) or not isinstance(duration, int | float) or not 0 < duration <= _MAX_DURATION_S
        ):
            raise bad_request(f"'duration_s' must be a number of seconds from 0 to {_MAX_DURATION_S}")
        each = duration / len(images) if duration else float(options.get("image_duration_s", 3.0))
        inputs: list[dict[str, Any]] = [{"url": url, "type": "image", "duration_s": round(each, 3)} for url in images]
        audio = request.get("audio")
        if audio is not None:
            if not isinstance(audio, str) or not audio:
                raise bad_request("'audio' must be the URL of a sound file")
            inputs.append({"url": audio, "type": "audio"})
        fmt = request.get("output_format") or "mp4"
        if fmt not in FORMATS:
            raise bad_request(f"'output_format' must be one of {', '.join(FORMATS)}")
        width, height = _size(request.get("size")) or (int(options.get("width", 1280)), int(options.get("height", 720)))
        fps = request.get("fps", options.get("fps", 25))
        if isinstance(fps, bool) or not isinstance(fps, int) or not 1 <= fps <= 60:
            raise bad_request("'fps' must be a whole number from 1 to 60")
        output: dict[str, Any] = {"format": fmt, "width": width, "height": height, "fps": fps}
        if duration:
            output["duration_s"] = duration
        body: dict[str, Any] = {"inputs": inputs, "output": output}
        prompt = request.get("prompt")
        if isinstance(prompt, str) and prompt.strip():
            body["metadata"] = {"title": prompt.strip()[:200]}
        return body

    async def _take_inputs(self, inputs: list[dict[str, Any]], deadline: float) -> None:
        """Make every input URL safe to hand to a service inside the network: fetched here and
        inlined (default), or at least judged by what it says."""
        inline = self.config.options.get("inline_inputs", True)
        for index, item in enumerate(inputs):
            url, kind = item["url"], item["type"]
            what = f"{kind} {index + 1} ({url[:80]})" if not url.startswith("data:") else f"{kind} {index + 1}"
            if url.startswith("data:"):
                try:
                    media_type = parse_data_url(url)[1]
                except ValueError as exc:
                    raise caller_error(
                        f"{what} is a data: URL that cannot be read: {exc}",
                        code="invalid_data_url",
                        reason="invalid_data_url",
                    ) from None
                _check_kind(media_type, kind, what)
                continue
            if not inline:
                try:
                    current(FETCH).check_url(url)
                except URLRefused as exc:
                    raise caller_error(f"{what} is refused: {exc.message}", code="url_refused") from None
                continue
            remaining = max(0.001, deadline - self.clock())
            content, media_type = await download(
                self.client,
                url,
                timeout=remaining,
                supplied_by="caller",
                what=what,
                connect_timeout=self.config.connect_timeout_s,
            )
            _check_kind(media_type, kind, what)
            item["url"] = data_url(content, media_type)

    async def compose(self, body: dict[str, Any], deadline: float) -> tuple[bytes, str]:
        """Run one composition (the service's request as is) to its end: the file and its type."""
        created = await self._call("POST", "/compose", deadline, json=body)
        job_id = created.get("job_id")
        if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
            raise malformed("the compose answer has no usable job_id", data=created)
        state: dict[str, Any] = {"status": created.get("status") or "queued", "progress": None}

        async def step(remaining: float) -> bool:
            job = await self._call("GET", f"/jobs/{job_id}", self.clock() + remaining)
            status = job.get("status")
            if status in WAITING:
                state.update(status=status, progress=job.get("progress"))
                return False
            if status == "completed":
                return True
            if status in ("failed", "cancelled"):
                state["status"] = status  # it has ended: nothing to cancel
                raise UpstreamError(
                    Classification(Outcome.FAILURE, f"job_{status}"),
                    status=200,
                    message=str(job.get("error") or f"the composition was {status}"),
                    body=json.dumps(job).encode(),
                )
            raise malformed("the job has no known status", data=job)

        def expired() -> UpstreamError:
            progress = f" ({state['progress']} %)" if state["progress"] is not None else ""
            return UpstreamError(
                Classification(Outcome.DEADLINE, "compose_timeout"),
                message=f"composition {job_id} was still {state['status']}{progress} when the attempt's time ran out",
                body=json.dumps({"job_id": job_id, **state}).encode(),
            )

        if state["status"] != "completed":

            def cancel(seconds: float) -> Awaitable[httpx.Response]:
                return self.client.delete(
                    f"{self.base_url}/jobs/{job_id}", headers=self._headers(), timeout=self.timeout(seconds)
                )

            await self.poller.wait(
                step,
                deadline=deadline,
                expired=expired,
                running=lambda: state["status"] in WAITING,
                cancel=cancel,
                what=f"ffmpeg {self.config.name}: job {job_id}",
            )
        return await self._result(job_id, deadline)

    async def _result(self, job_id: str, deadline: float) -> tuple[bytes, str]:
        remaining = max(0.001, deadline - self.clock())
        response = await self.client.get(
            f"{self.base_url}/jobs/{job_id}/result", headers=self._headers(), timeout=self.timeout(remaining)
        )
        if response.status_code in (404, 409, 410):
            # the job said it completed: a file that is not there is the service's failure
            raise UpstreamError(
                Classification(Outcome.FAILURE, "output_unavailable"),
                status=response.status_code,
                message=f"composition {job_id} completed but its file is not there: {_message(response)}",
                headers=response.headers,
                body=response.content,
            )
        if not response.is_success:
            raise _error(response)
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        if not media_type.startswith("video/") or not response.content:
            raise malformed(f"the composition's file is not a video ({media_type or 'no type'})", response=response)
        return response.content, media_type

    # -- models and probes ----------------------------------------------------------------------

    async def list_models(self, *, timeout: float) -> list[ModelInfo]:
        names = self.config.options.get("models") or ["compose"]
        return [
            ModelInfo(
                name=str(n),
                capabilities=frozenset({"video"}),
                details={"description": "stills and a soundtrack composed with ffmpeg"},
            )
            for n in names
        ]

    async def health(self, *, timeout: float) -> dict[str, Any]:
        """`GET /health`; raises unless the service says it can compose."""
        response = await self.client.get(
            f"{self.base_url}/health", headers=self._headers(), timeout=self.timeout(timeout)
        )
        data: Any = None
        with contextlib.suppress(ValueError):  # a proxy's HTML page: the status says enough
            data = json.loads(response.content or b"null")
        if not isinstance(data, dict) or not isinstance(data.get("status"), str):
            if not response.is_success:
                raise _error(response)
            raise malformed("the health answer has no status", response=response)
        if data["status"] != "ok":
            raise UpstreamError(
                Classification(Outcome.FAILURE, "unhealthy"),
                status=response.status_code,
                message=f"the ffmpeg service reports {data['status']!r}",
                body=response.content[:2000],
            )
        return data

    async def probe(self, *, timeout: float, deep: bool = False, model: str | None = None) -> dict[str, Any]:
        data = await self.health(timeout=timeout)
        details: dict[str, Any] = {
            "ffmpeg": data.get("ffmpeg"),
            "queued": data.get("queued"),
            "processing": data.get("processing"),
        }
        if deep:
            body = {
                "inputs": [{"url": PIXEL, "type": "image", "duration_s": 1}],
                "output": {"format": "mp4", "width": 16, "height": 16, "fps": 1},
            }
            content, _ = await self.compose(body, self.clock() + timeout)
            details["video_bytes"] = len(content)
        return details

    # -- plumbing -------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}

    async def _call(self, method: str, path: str, deadline: float, **kwargs: Any) -> dict[str, Any]:
        remaining = max(0.001, deadline - self.clock())
        response = await self.client.request(
            method, f"{self.base_url}{path}", headers=self._headers(), timeout=self.timeout(remaining), **kwargs
        )
        if not response.is_success:
            raise _error(response)
        try:
            data = json.loads(response.content)
        except ValueError as exc:
            raise malformed(f"the answer is not JSON: {exc}", response=response) from exc
        if not isinstance(data, dict):
            raise malformed("the answer is not a JSON object", response=response)
        return data


def _check_kind(media_type: str, kind: str, what: str) -> None:
    """An input must be what the composition will use it as (an image is an image/* file)."""
    family = media_type.split("/")[0]
    if family != kind and media_type != "application/octet-stream":
        raise caller_error(
            f"{what} is {media_type or 'of no type'}, not an {kind} file", code="invalid_input", reason="invalid_input"
        )


def _size(size: Any) -> tuple[int, int] | None:
    if size in (None, "", "auto"):
        return None
    try:
        width, height = (int(v) for v in str(size).lower().split("x"))
    except ValueError:
        raise bad_request("'size' must look like '1280x720'") from None
    if not (16 <= width <= 4096 and 16 <= height <= 4096) or width % 2 or height % 2:
        raise bad_request("'size' sides must be even numbers of pixels from 16 to 4096")
    return width, height


def _message(response: httpx.Response) -> str:
    try:
        data = json.loads(response.content or b"null")
    except ValueError:
        return response.content[:200].decode(errors="replace").strip()
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        error = error.get("message")
    return error if isinstance(error, str) else ""


def _error(response: httpx.Response) -> UpstreamError:
    return UpstreamError.from_response(
        response.status_code,
        response.headers,
        response.content,
        message=_message(response) or f"HTTP {response.status_code}",
        media_type=response.headers.get("content-type", "application/json").split(";")[0],
    )

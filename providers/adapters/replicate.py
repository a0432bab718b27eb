"""Replicate's predictions API (`https://api.replicate.com/v1`), token in `Authorization: Bearer`.

An OpenAI images request becomes one prediction. The upstream model names where it runs:

    "owner/name"             POST /v1/models/{owner}/{name}/predictions (an official model)
    "owner/name:<version>"   POST /v1/predictions with {"version": "<version>"}
    "<64 hex digits>"        POST /v1/predictions with that version id

The input is `{"prompt"}` plus `num_outputs` when `n` > 1, the size as `aspect_ratio` (the
nearest one FLUX-style models accept) or as `width`/`height` (`options["size_input"]`), the
request's `seed`, `negative_prompt`, `output_format`, ... and finally the request's own `input`
object, which wins. The create call asks `Prefer: wait=N` (sync mode) so a fast model answers at
once; otherwise the adapter polls `GET /v1/predictions/{id}` until `succeeded`, `failed` or
`canceled`, within the attempt's time. If that time runs out, the task is cancelled (the
engine's attempt timer, a client gone away) or polling fails, the prediction is cancelled with
`POST /v1/predictions/{id}/cancel` so it stops running and billing, and the error goes on.

The output URLs (a list, or one URL) become `{"created", "data": [{"url"}]}`; with
`response_format: "b64_json"` each is downloaded, without the token: outputs live on
replicate.delivery and the token is only for the API host. Usage: one image per output.

Errors are Replicate's `{"detail"}` or problem details `{"title", "detail", "status"}`: 402
(no credit, spend limit) is EXHAUSTED, 429 is RATE_LIMITED (the wait from `Retry-After` or the
body's `retry_after`), 401/404/422 (bad token, unknown model or version, invalid input) are
CALLER_ERROR, 5xx FAILURE. A prediction that ends `failed` is a FAILURE carrying its error text
(reason `prediction_failed`); one canceled by someone else is FAILURE `prediction_canceled`; our
own time running out while it runs is DEADLINE `prediction_timeout`.

A video request (`Adapter.video`) is one prediction on a video model the same way: the input is
`{"prompt"}`, the stills in `images` under `options["video_image_input"]` (default "image": the
first URL, or the list when several are given), the soundtrack `audio` under
`options["video_audio_input"]` (default "audio"), `duration_s` as `duration`, the size as
`aspect_ratio`, the request's `seed`, `negative_prompt`, `resolution`, `fps`, ... and its own
`input` last, which wins (video models name their fields freely: "first_frame_image",
"start_image", ...). The output URL (video models answer one, not a list) becomes
`{"created", "data": [{"url"}]}`, downloaded for `b64_json`; usage counts one image per video,
so a video model's `per_image` price is its price per video.

Options (`ProviderConfig.options`):
    poll_interval_s   seconds between polls (default 1.0)
    prefer_wait       send `Prefer: wait=N` on create (default true); N is at most
                      `max_wait_s` (default 60, Replicate's limit) and leaves a second of the
                      attempt free, so a timeout can still cancel what was created
    size_input        "aspect_ratio" (default) or "width_height"
    input             default input fields for every prediction (e.g. {"output_format": "png"})
    models            the image model names `list_models` reports (Replicate has no cheap listing)
    video_models      the video model names it reports (default none)
    video_image_input, video_audio_input   the input fields of a video model's stills and sound
    cancel_timeout_s  how long the cancel call may take (default 3.0)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import math
import re
import time
from typing import Any

import httpx

from providers.engine import Classification, Outcome, UpstreamError

from .base import Adapter, ModelInfo, Result, Usage, bad_request, malformed
from .client import fetch
from .urlguard import path_segment

log = logging.getLogger(__name__)

DEFAULT_MODEL = "black-forest-labs/flux-schnell"
DEFAULT_VIDEO_MODEL = "minimax/video-01"
TERMINAL = frozenset({"succeeded", "failed", "canceled"})
# The aspect ratios FLUX, SD3 and most official image models take.
ASPECT_RATIOS = ("1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21")
_PASSTHROUGH = (
    "seed",
    "negative_prompt",
    "output_format",
    "output_quality",
    "guidance_scale",
    "num_inference_steps",
    "disable_safety_checker",
    "go_fast",
    "megapixels",
)
_VIDEO_PASSTHROUGH = ("seed", "negative_prompt", "resolution", "fps", "aspect_ratio", "prompt_optimizer")
_VERSION = re.compile(r"^[0-9a-f]{64}$")
_PREDICTION_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
_MAX_IMAGES = 10


class ReplicateAdapter(Adapter):
    kind = "replicate"
    capabilities = frozenset({"image", "video"})
    default_base_url = "https://api.replicate.com"

    async def images(self, request: dict[str, Any], *, model: str, timeout: float) -> Result:
        path, body = self._prediction_request(request, model or DEFAULT_MODEL)
        return await self._predict(path, body, request, model or DEFAULT_MODEL, timeout)

    async def video(self, request: dict[str, Any], *, model: str, timeout: float) -> Result:
        path, body = self._video_request(request, model or DEFAULT_VIDEO_MODEL)
        return await self._predict(path, body, request, model or DEFAULT_VIDEO_MODEL, timeout)

    async def _predict(
        self, path: str, body: dict[str, Any], request: dict[str, Any], model: str, timeout: float
    ) -> Result:
        """Run one prediction to its end; its output URLs as an OpenAI images answer."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        response_format = request.get("response_format") or "url"
        if response_format not in ("url", "b64_json"):
            raise bad_request("'response_format' must be 'url' or 'b64_json'")
        prediction = await self._create(path, body, deadline)
        pid = str(prediction.get("id") or "")
        if not pid:
            raise malformed("the prediction has no id", data=prediction)
        if not _PREDICTION_ID.match(pid):  # it goes into the poll and cancel paths
            raise malformed("the prediction id is not an identifier", data=prediction)
        try:
            prediction = await self._wait(prediction, pid, deadline)
        except BaseException:
            await self._cancel(pid)
            raise
        _check_ended(prediction)
        urls = _outputs(prediction)
        if response_format == "b64_json":
            items = [{"b64_json": await self._download(url, deadline)} for url in urls]
        else:
            items = [{"url": url} for url in urls]
        answer = {"created": int(time.time()), "data": items}
        served = str(prediction.get("model") or model)
        return Result.json(answer, usage=Usage(images=len(items)), model=served)

    async def account(self, *, timeout: float = 10.0) -> dict[str, Any]:
        """The token's account: {"type", "username", "name", "github_url"}."""
        data = await self._call("GET", "/v1/account", timeout)
        if not isinstance(data, dict):
            raise malformed("/v1/account is not an object", data=data)
        return data

    async def list_models(self, *, timeout: float) -> list[ModelInfo]:
        options = self.config.options
        names = options.get("models") or ([] if options.get("video_models") else [DEFAULT_MODEL])
        return [ModelInfo(name=str(name), capabilities=frozenset({"image"})) for name in names] + [
            ModelInfo(name=str(name), capabilities=frozenset({"video"})) for name in options.get("video_models") or ()
        ]

    async def probe(self, *, timeout: float, deep: bool = False, model: str | None = None) -> dict[str, Any]:
        account = await self.account(timeout=timeout)
        details: dict[str, Any] = {"account": account.get("username"), "type": account.get("type")}
        if deep:
            result = await self.images({"prompt": "a dot"}, model=model or "", timeout=timeout)
            details["images"] = result.usage.images
        return details

    # -- the prediction's life ----------------------------------------------------------------

    def _inputs(self, request: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The prediction's input so far (the option defaults and the prompt) and the request's
        own `input`, which the caller applies last."""
        prompt = request.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise bad_request("'prompt' is required")
        extra = request.get("input") or {}
        if not isinstance(extra, dict):
            raise bad_request("'input' must be an object of Replicate input fields")
        inputs: dict[str, Any] = dict(self.config.options.get("input") or {})
        inputs["prompt"] = prompt
        return inputs, extra

    def _prediction_request(self, request: dict[str, Any], model: str) -> tuple[str, dict[str, Any]]:
        inputs, extra = self._inputs(request)
        n = request.get("n", 1)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= _MAX_IMAGES:
            raise bad_request(f"'n' must be an integer from 1 to {_MAX_IMAGES}")
        options = self.config.options
        if n > 1:
            inputs["num_outputs"] = n
        size = _size(request.get("size"))
        if size is not None:
            if options.get("size_input") == "width_height":
                inputs["width"], inputs["height"] = size
            else:
                inputs["aspect_ratio"] = aspect_ratio(*size)
        for name in _PASSTHROUGH:
            if request.get(name) is not None:
                inputs[name] = request[name]
        inputs.update(extra)
        return _route(model, inputs)

    def _video_request(self, request: dict[str, Any], model: str) -> tuple[str, dict[str, Any]]:
        inputs, extra = self._inputs(request)
        options = self.config.options
        images = request.get("images")
        if images is not None:
            if isinstance(images, str):
                images = [images]
            if not isinstance(images, list) or not images or not all(isinstance(i, str) and i for i in images):
                raise bad_request("'images' must be a list of image URLs")
            inputs[str(options.get("video_image_input", "image"))] = images[0] if len(images) == 1 else images
        audio = request.get("audio")
        if audio is not None:
            if not isinstance(audio, str) or not audio:
                raise bad_request("'audio' must be the URL of a sound file")
            inputs[str(options.get("video_audio_input", "audio"))] = audio
        duration = request.get("duration_s")
        if duration is not None:
            if isinstance(duration, bool) or not isinstance(duration, int | float) or not 0 < duration <= 600:
                raise bad_request("'duration_s' must be a number of seconds from 0 to 600")
            inputs["duration"] = int(duration) if float(duration).is_integer() else duration
        size = _size(request.get("size"))
        if size is not None:
            inputs["aspect_ratio"] = aspect_ratio(*size)
        for name in _VIDEO_PASSTHROUGH:
            if request.get(name) is not None:
                inputs[name] = request[name]
        inputs.update(extra)
        return _route(model, inputs)

    async def _create(self, path: str, body: dict[str, Any], deadline: float) -> dict[str, Any]:
        remaining = deadline - asyncio.get_running_loop().time()
        headers = {}
        options = self.config.options
        if options.get("prefer_wait", True):
            # Leave a second of the attempt free: a prediction still running when sync mode
            # gives up can then be polled and, if need be, cancelled.
            wait = min(int(options.get("max_wait_s", 60)), math.floor(remaining - 1))
            if wait >= 1:
                headers["Prefer"] = f"wait={wait}"
        data = await self._call("POST", path, remaining, json=body, headers=headers)
        if not isinstance(data, dict) or "status" not in data:
            raise malformed("the answer is not a prediction", data=data)
        return data

    async def _wait(self, prediction: dict[str, Any], pid: str, deadline: float) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        interval = float(self.config.options.get("poll_interval_s", 1.0))
        while prediction.get("status") not in TERMINAL:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise _out_of_time(pid, prediction)
            await asyncio.sleep(min(interval, remaining))
            remaining = deadline - loop.time()
            if remaining <= 0:
                continue
            try:
                data = await self._call("GET", f"/v1/predictions/{pid}", remaining)
            except httpx.TimeoutException:
                # the poll had only the attempt's remaining time: its timeout is that time running out
                raise _out_of_time(pid, prediction) from None
            if not isinstance(data, dict) or "status" not in data:
                raise malformed("the answer is not a prediction", data=data)
            prediction = data
        return prediction

    async def _cancel(self, pid: str) -> None:
        """Best effort: the prediction stops, or the failure to stop it is logged."""
        seconds = float(self.config.options.get("cancel_timeout_s", 3.0))
        try:
            response = await self.client.post(
                f"{self.base_url}/v1/predictions/{pid}/cancel", headers=self._headers(), timeout=self.timeout(seconds)
            )
        except httpx.HTTPError as exc:
            log.warning("replicate %s: could not cancel prediction %s: %r", self.config.name, pid, exc)
            return
        if not response.is_success:
            log.warning(
                "replicate %s: cancelling prediction %s answered %s: %s",
                self.config.name,
                pid,
                response.status_code,
                response.text[:200],
            )

    async def _download(self, url: str, deadline: float) -> str:
        if url.startswith("data:"):
            return url.partition(",")[2]
        remaining = max(0.001, deadline - asyncio.get_running_loop().time())
        # The upstream's URL: judged by the fetch policy (a refused one is this provider's
        # FAILURE), unless it is on the provider's own origin.
        response = await fetch(
            self.client,
            url,
            timeout=remaining,
            supplied_by="upstream",
            what="the prediction's output",
            same_origin_as=self.base_url,
            connect_timeout=self.config.connect_timeout_s,
        )
        if not response.is_success:
            raise UpstreamError(
                Classification(Outcome.FAILURE, "output_unavailable"),
                status=response.status_code,
                message=f"downloading {url} answered {response.status_code}",
                headers=response.headers,
                body=response.content[:2000],
            )
        return base64.b64encode(response.content).decode()

    # -- plumbing -----------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}

    async def _call(
        self, method: str, path: str, timeout: float, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> Any:
        response = await self.client.request(
            method,
            f"{self.base_url}{path}",
            headers={**self._headers(), **(headers or {})},
            timeout=self.timeout(max(timeout, 0.001)),
            **kwargs,
        )
        if not response.is_success:
            raise _error(response)
        try:
            return response.json()
        except ValueError as exc:
            raise malformed(f"the answer is not JSON: {exc}", response=response) from exc


def _out_of_time(pid: str, prediction: dict[str, Any]) -> UpstreamError:
    return UpstreamError(
        Classification(Outcome.DEADLINE, "prediction_timeout"),
        message=f"prediction {pid} was still {prediction.get('status')} when the attempt's time ran out",
        body=json.dumps(prediction).encode(),
    )


def _route(model: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The create call for `model`: an official model's endpoint, or a version's."""
    owner_name, _, version = model.partition(":")
    if version or _VERSION.match(model):
        return "/v1/predictions", {"version": version or model, "input": inputs}
    owner, _, name = owner_name.partition("/")
    if not owner or not name or "/" in name:
        raise bad_request(f"Replicate model {model!r} must be 'owner/name', 'owner/name:version' or a version id")
    # Both go into the path: no '..', '?', '#' or '%' may make it name another endpoint.
    owner, name = path_segment(owner, "Replicate model owner"), path_segment(name, "Replicate model name")
    return f"/v1/models/{owner}/{name}/predictions", {"input": inputs}


def _error(response: httpx.Response) -> UpstreamError:
    body = response.content
    data: Any = None
    with contextlib.suppress(ValueError):  # a proxy's HTML page: the status says enough
        data = json.loads(body or b"null")
    message = ""
    if isinstance(data, dict):
        message = str(data.get("detail") or data.get("title") or "")
    error = UpstreamError.from_response(
        response.status_code,
        response.headers,
        body,
        message=message or f"HTTP {response.status_code}",
        media_type=response.headers.get("content-type", "application/json").split(";")[0],
    )
    hint = data.get("retry_after") if isinstance(data, dict) else None
    if (
        error.outcome is Outcome.RATE_LIMITED
        and error.classification.retry_after is None
        and isinstance(hint, int | float)
        and not isinstance(hint, bool)
    ):
        # Replicate may say how long to wait in the body alone ("retry_after": 5); the engine
        # reads waits from the headers, so the hint becomes one.
        c = error.classification
        error.classification = Classification(c.outcome, c.reason, float(hint), c.should_retry)
        error.headers["retry-after"] = str(hint)
    return error


def _check_ended(prediction: dict[str, Any]) -> None:
    """Raise for a prediction that ended without success (its own error text kept)."""
    status = prediction["status"]
    if status != "succeeded":
        error = prediction.get("error")
        message = str(error) if error else f"the prediction was {status}"
        reason = "prediction_failed" if status == "failed" else "prediction_canceled"
        raise UpstreamError(
            Classification(Outcome.FAILURE, reason), status=200, message=message, body=json.dumps(prediction).encode()
        )


def _outputs(prediction: dict[str, Any]) -> list[str]:
    output = prediction.get("output")
    if isinstance(output, str):
        output = [output]
    if not isinstance(output, list) or not output or not all(isinstance(o, str) for o in output):
        raise malformed("the prediction succeeded without output URLs", data=prediction)
    return output


def _size(size: Any) -> tuple[int, int] | None:
    if size in (None, "", "auto"):
        return None
    try:
        width, height = (int(v) for v in str(size).lower().split("x"))
    except ValueError:
        raise bad_request("'size' must look like '1024x1024'") from None
    if not (64 <= width <= 4096 and 64 <= height <= 4096):
        raise bad_request("'size' sides must be between 64 and 4096 pixels")
    return width, height


def aspect_ratio(width: int, height: int) -> str:
    """The accepted aspect ratio nearest to width:height (by the log of the ratio)."""
    wanted = math.log(width / height)

    def distance(ratio: str) -> float:
        w, _, h = ratio.partition(":")
        return abs(math.log(int(w) / int(h)) - wanted)

    return min(ASPECT_RATIOS, key=distance)

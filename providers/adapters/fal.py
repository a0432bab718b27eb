"""fal.ai's queue API (`https://queue.fal.run`), key in `Authorization: Key <key_id>:<key_secret>`.

A request runs as one queued job on a model, named by its endpoint id (`fal-ai/flux/schnell`):

    POST {base}/{endpoint_id}                          submit: {request_id, response_url,
                                                       status_url, cancel_url, queue_position}
    GET  {base}/{app_id}/requests/{id}/status          {status: IN_QUEUE (with queue_position),
                                                       IN_PROGRESS or COMPLETED, logs, metrics}
    GET  {base}/{app_id}/requests/{id}                 the model's result, or its error
    PUT  {base}/{app_id}/requests/{id}/cancel          202 CANCELLATION_REQUESTED while queued,
                                                       400 ALREADY_COMPLETED once it has started

The app id is the endpoint id without its subpath (`fal-ai/flux` for `fal-ai/flux/schnell`; a
`workflows/` or `comfy/` namespace is kept), as fal's docs say and its clients build it. The
URLs in the submit answer are not followed: they would carry the key wherever they point; the
adapter builds them from its base URL as fal's clients do for a known request id. Every
segment of the endpoint id and the request id must be a plain identifier.

The adapter polls the status with growing waits (`polling.PollSchedule`: 0.5 s, x1.5, at most
5 s by default) within the attempt's time. When that time runs out, the task is cancelled
(the engine's attempt timer, a client gone away) or a poll fails, the request is cancelled
(best effort: fal cancels only what has not started) and the error goes on; running out of
time is DEADLINE `queue_timeout`. Once COMPLETED, the result is fetched; fal reports a model's
own failure there: 422 `{"detail": [{"loc", "msg", "type"}]}` for input the model refuses
(CALLER_ERROR), 5xx for a runner that failed (FAILURE).

Images (`images`): `{"prompt"}`, `n` as `num_images`, the size as `image_size: {width,
height}`, the request's `seed`, `negative_prompt`, `num_inference_steps`, `guidance_scale`,
`output_format`, `enable_safety_checker`, then `options["input"]` defaults under them and the
request's own `input` object last, which wins. The result `{"images": [{"url", "width",
"height", "content_type"}]}` becomes `{"created", "data": [{"url"}]}`; with `response_format:
"b64_json"` each file is downloaded (without the key) through the URL guard's fetch policy, so
a result URL on a private address is this provider's FAILURE (`unsafe_output_url`) unless
FETCH_URL_ALLOW names it. Usage: one image per file.

Audio generation (`speech`, capability `tts`): text-to-speech and text-to-audio models take
the text in a field of their own, so each audio model has a spec: the input field for the text
and the format it makes. Known families (`AUDIO_MODELS`) need no configuration; others are
given in `options["audio_models"]`. The request's `input` goes in that field, `speed` as
itself, `voice` through `options["voices"]` (an OpenAI voice name left unmapped means nothing
to a fal model and is left out, so the model's default voice speaks; any other name is sent as
is), its `fal_input` object (the model's own fields) last. A `response_format` (OpenAI's default is mp3) other than the format the
model makes is refused before anything is sent (the engine skips this target, with the
reason): the audio is never silently in another format than asked. The result's `audio`,
`audio_file` or `audio_url` file is downloaded through the fetch policy, and a file that turns
out to be in another format is a FAILURE (`wrong_audio_format`). Usage: characters of input,
and seconds when the model reports them or the file is a WAV.

Errors are fal's `{"detail": str | [...]}`. 401 (no key, a malformed one or an unknown one)
and 403 are CALLER_ERROR, which a fallback chain reads as our credential refused; 403 "User
is locked. Reason: Exhausted balance" is EXHAUSTED; 404 on submit is an unknown model
(`model_not_found`, so a route that chose it is misconfigured); 422 CALLER_ERROR; 429
RATE_LIMITED (with Retry-After when sent); 5xx FAILURE.

Probe: `GET {platform_url}/v1/models/pricing?endpoint_id=...` for the configured models, on
fal's platform API (`https://api.fal.ai`). It needs the key and runs nothing, so it checks the
credential for free, and it reports each model's unit price. Deep: one tiny image (or, with
only audio models configured, one short sound).

Options (`ProviderConfig.options`):
    models           the image endpoint ids `list_models` reports (default fal-ai/flux/schnell,
                     unless only audio models are configured)
    audio_models     audio endpoint ids: a list (specs from `AUDIO_MODELS`), or {id: {"text_input":
                     field, "format": mp3|wav|flac|opus|aac|pcm}}
    voices           OpenAI voice name -> the audio models' voice name (e.g. {"alloy": "af_heart"})
    input            default input fields for every request (e.g. {"enable_safety_checker": true})
    platform_url     fal's platform API, for the probe (default https://api.fal.ai)
    poll_interval_s, poll_backoff, poll_max_interval_s   the waits between status polls
    cancel_timeout_s how long the cancel call may take (default 3.0)
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from providers.engine import Classification, Outcome, UnsupportedRequest, UpstreamError

from .base import (
    Adapter,
    ModelInfo,
    ProviderConfig,
    Result,
    Usage,
    bad_request,
    malformed,
    wav_seconds,
)
from .media import AUDIO_TYPES, audio_format, download
from .piper import OPENAI_VOICES
from .polling import POLL_OPTIONS, Clock, JobPoller, PollSchedule, Sleep
from .urlguard import path_segment

DEFAULT_MODEL = "fal-ai/flux/schnell"
DEFAULT_PLATFORM_URL = "https://api.fal.ai"
WAITING = frozenset({"IN_QUEUE", "IN_PROGRESS"})
NAMESPACES = ("workflows", "comfy")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
_PASSTHROUGH = (
    "seed",
    "negative_prompt",
    "num_inference_steps",
    "guidance_scale",
    "output_format",
    "enable_safety_checker",
)
_MAX_IMAGES = 10


@dataclass(frozen=True, slots=True)
class AudioSpec:
    """How an audio model takes its text and what it makes."""

    text_input: str = "text"
    format: str = "mp3"


# endpoint id prefix -> spec, for the audio families on fal most used for speech and sound
AUDIO_MODELS: dict[str, AudioSpec] = {
    "fal-ai/kokoro": AudioSpec("prompt", "wav"),
    "fal-ai/elevenlabs/tts": AudioSpec("text", "mp3"),
    "fal-ai/playai/tts": AudioSpec("input", "mp3"),
    "fal-ai/minimax/speech": AudioSpec("text", "mp3"),
    "fal-ai/chatterbox/text-to-speech": AudioSpec("text", "wav"),
    "fal-ai/stable-audio": AudioSpec("prompt", "wav"),
}
OPTIONS = (
    frozenset(
        {
            "models",
            "audio_models",
            "voices",
            "input",
            "platform_url",
        }
    )
    | POLL_OPTIONS
)


class FalAdapter(Adapter):
    kind = "fal"
    capabilities = frozenset({"image", "tts"})
    default_base_url = "https://queue.fal.run"

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
                f"{unknown[0]} is not an option of fal providers (they take: {', '.join(sorted(OPTIONS))})"
            )
        PollSchedule.check_options(options)
        models = options.get("models")
        if models is not None and (not isinstance(models, list) or not all(isinstance(m, str) and m for m in models)):
            raise ValueError("models must be a list of fal endpoint ids")
        _audio_specs(options.get("audio_models"))
        voices = options.get("voices", {})
        if not isinstance(voices, dict) or not all(isinstance(v, str) and v for v in voices.values()):
            raise ValueError("voices must map OpenAI voice names to the model's voice names")
        if not isinstance(options.get("input", {}), dict):
            raise ValueError("input must be an object of fal input fields")
        url = options.get("platform_url")
        if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
            raise ValueError("platform_url must be an http(s) URL")

    # -- images ---------------------------------------------------------------------------------

    async def images(self, request: dict[str, Any], *, model: str, timeout: float) -> Result:
        model = model or DEFAULT_MODEL
        response_format = request.get("response_format") or "url"
        if response_format not in ("url", "b64_json"):
            raise bad_request("'response_format' must be 'url' or 'b64_json'")
        inputs = self._image_inputs(request)
        deadline = self.clock() + timeout
        result = await self.run(model, inputs, deadline)
        files = result.get("images")
        if (
            not isinstance(files, list)
            or not files
            or not all(isinstance(f, dict) and isinstance(f.get("url"), str) and f["url"] for f in files)
        ):
            raise malformed("the result has no image files", data=result)
        items: list[dict[str, Any]] = []
        for file in files:
            if response_format == "b64_json":
                content, _ = await self._download(file["url"], deadline, "the generated image")
                items.append({"b64_json": base64.b64encode(content).decode()})
            else:
                items.append({"url": file["url"]})
        answer = {"created": int(time.time()), "data": items}
        return Result.json(answer, usage=Usage(images=len(items)), model=model)

    def _image_inputs(self, request: dict[str, Any]) -> dict[str, Any]:
        prompt = request.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise bad_request("'prompt' is required")
        n = request.get("n", 1)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= _MAX_IMAGES:
            raise bad_request(f"'n' must be an integer from 1 to {_MAX_IMAGES}")
        inputs = self._defaults(request.get("input"), "input")
        inputs["prompt"] = prompt
        if n > 1:
            inputs["num_images"] = n
        size = _size(request.get("size"))
        if size is not None:
            inputs["image_size"] = {"width": size[0], "height": size[1]}
        for name in _PASSTHROUGH:
            if request.get(name) is not None:
                inputs[name] = request[name]
        inputs.update(request.get("input") or {})
        return inputs

    # -- audio ----------------------------------------------------------------------------------

    async def speech(self, request: dict[str, Any], *, model: str, timeout: float) -> Result:
        if not model:
            raise bad_request("a fal audio model must be named (e.g. fal-ai/kokoro/american-english)")
        text = request.get("input")
        if not isinstance(text, str) or not text.strip():
            raise bad_request("'input' must be the text to speak")
        spec = self.audio_spec(model)
        wanted = request.get("response_format") or "mp3"
        if wanted not in AUDIO_TYPES:
            raise bad_request(f"'response_format' must be one of {', '.join(AUDIO_TYPES)}")
        if wanted != spec.format:
            raise UnsupportedRequest(
                f"fal model {model} makes {spec.format} audio, not the {wanted} asked for; "
                f"ask for response_format {spec.format!r} or use another target",
                reason="unsupported_format",
            )
        if request.get("instructions"):
            raise UnsupportedRequest(f"fal model {model} takes no speaking 'instructions'")
        inputs = self._defaults(request.get("fal_input"), "fal_input")
        inputs[spec.text_input] = text
        voice = self._voice(request.get("voice"))
        if voice is not None:
            inputs["voice"] = voice
        if request.get("speed") is not None:
            inputs["speed"] = request["speed"]
        inputs.update(request.get("fal_input") or {})
        deadline = self.clock() + timeout
        result = await self.run(model, inputs, deadline)
        url = _audio_url(result)
        if url is None:
            raise malformed("the result has no audio file", data=result)
        content, media_type = await self._download(url, deadline, "the generated audio")
        declared = _declared_type(result)
        made = audio_format(declared or media_type, content)
        if made is not None and made != wanted:
            raise UpstreamError(
                Classification(Outcome.FAILURE, "wrong_audio_format"),
                status=200,
                message=f"fal model {model} answered {made} audio where {wanted} was asked for",
                body=json.dumps(result).encode(),
            )
        seconds = _duration(result)
        if seconds is None:
            seconds = wav_seconds(content) or 0.0
        usage = Usage(characters=len(text), audio_seconds=seconds)
        return Result(content=content, media_type=AUDIO_TYPES[wanted], usage=usage, model=model)

    def _voice(self, voice: Any) -> Any:
        """The model's voice for the request's: mapped by `options["voices"]`; one of OpenAI's
        own names, unmapped, means nothing to a fal model and is left out (its default voice)."""
        voices = self.config.options.get("voices") or {}
        if voice in voices:
            return voices[voice]
        return None if voice in OPENAI_VOICES else voice

    def audio_spec(self, model: str) -> AudioSpec:
        """The text field and format of an audio model: configured, known, or the default."""
        configured = _audio_specs(self.config.options.get("audio_models"))
        return configured.get(model) or _known_spec(model)

    # -- the queue ------------------------------------------------------------------------------

    async def run(self, model: str, inputs: dict[str, Any], deadline: float) -> dict[str, Any]:
        """Submit `inputs` to `model`, wait for the request to complete and return its result."""
        segments = _endpoint(model)
        submitted = await self._call("POST", "/" + "/".join(segments), deadline, json=inputs)
        request_id = submitted.get("request_id")
        if not isinstance(request_id, str) or not _REQUEST_ID.match(request_id):
            raise malformed("the submit answer has no usable request_id", data=submitted)
        path = f"/{'/'.join(_app(segments))}/requests/{request_id}"
        state: dict[str, Any] = {
            "status": submitted.get("status") or "IN_QUEUE",
            "queue_position": submitted.get("queue_position"),
        }

        async def step(remaining: float) -> bool:
            data = await self._call("GET", path + "/status", self.clock() + remaining)
            status = data.get("status")
            if status in WAITING:
                state.update(status=status, queue_position=data.get("queue_position"))
                return False
            if status == "COMPLETED":
                return True
            if not isinstance(status, str):
                raise malformed("the status answer has no status", data=data)
            state["status"] = status  # it has ended: nothing to cancel
            raise UpstreamError(
                Classification(Outcome.FAILURE, "request_failed"),
                status=200,
                message=f"fal request {request_id} is {status!r}",
                body=json.dumps(data).encode(),
            )

        def expired() -> UpstreamError:
            where = f"{state['status']}" + (
                f" at queue position {state['queue_position']}"
                if state["status"] == "IN_QUEUE" and state["queue_position"] is not None
                else ""
            )
            return UpstreamError(
                Classification(Outcome.DEADLINE, "queue_timeout"),
                message=f"fal request {request_id} was still {where} when the attempt's time ran out",
                body=json.dumps({"request_id": request_id, **state}).encode(),
            )

        if state["status"] != "COMPLETED":

            def cancel(seconds: float) -> Awaitable[httpx.Response]:
                return self.client.put(
                    f"{self.base_url}{path}/cancel", headers=self._headers(), timeout=self.timeout(seconds)
                )

            await self.poller.wait(
                step,
                deadline=deadline,
                expired=expired,
                running=lambda: state["status"] in WAITING,
                cancel=cancel,
                what=f"fal {self.config.name}: request {request_id}",
            )
        return await self._call("GET", path, deadline)

    # -- models, prices and probes ----------------------------------------------------------------

    async def list_models(self, *, timeout: float) -> list[ModelInfo]:
        options = self.config.options
        audio = list(_audio_specs(options.get("audio_models")))
        images = options.get("models") or ([] if audio else [DEFAULT_MODEL])
        return [ModelInfo(name=str(m), capabilities=frozenset({"image"})) for m in images] + [
            ModelInfo(name=m, capabilities=frozenset({"tts"}), details={"format": self.audio_spec(m).format})
            for m in audio
        ]

    async def prices(self, endpoint_ids: list[str], *, timeout: float) -> list[dict[str, Any]]:
        """fal's unit prices for `endpoint_ids`: [{"endpoint_id", "unit_price", "unit", "currency"}]."""
        platform = str(self.config.options.get("platform_url") or DEFAULT_PLATFORM_URL).rstrip("/")
        response = await self.client.get(
            f"{platform}/v1/models/pricing",
            params={"endpoint_id": ",".join(endpoint_ids)},
            headers=self._headers(),
            timeout=self.timeout(timeout),
        )
        if not response.is_success:
            raise _error(response)
        data = _object(response)
        prices = data.get("prices")
        if not isinstance(prices, list):
            raise malformed("the pricing answer has no prices list", response=response)
        return [p for p in prices if isinstance(p, dict)]

    async def probe(self, *, timeout: float, deep: bool = False, model: str | None = None) -> dict[str, Any]:
        models = await self.list_models(timeout=timeout)
        names = [m.name for m in models][:50]
        prices = await self.prices(names, timeout=timeout)
        details: dict[str, Any] = {
            "models": len(models),
            "prices": {
                str(p.get("endpoint_id")): f"{p.get('unit_price')} {p.get('currency', 'USD')}/{p.get('unit')}"
                for p in prices
            },
        }
        if deep:
            target = model or names[0]
            if any(m.name == target and "tts" in m.capabilities for m in models):
                spec = self.audio_spec(target)
                spoken = await self.speech(
                    {"input": "ok", "response_format": spec.format}, model=target, timeout=timeout
                )
                details["audio_bytes"] = len(spoken.content)
            else:
                made = await self.images({"prompt": "a dot"}, model=target, timeout=timeout)
                details["images"] = made.usage.images
        return details

    # -- plumbing -------------------------------------------------------------------------------

    def _defaults(self, extra: Any, name: str) -> dict[str, Any]:
        """`options["input"]` with the request's own fields (`extra`) checked: applied last."""
        if extra is not None and not isinstance(extra, dict):
            raise bad_request(f"'{name}' must be an object of fal input fields")
        return dict(self.config.options.get("input") or {})

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Key {self.config.api_key}"} if self.config.api_key else {}

    async def _call(self, method: str, path: str, deadline: float, **kwargs: Any) -> dict[str, Any]:
        remaining = max(0.001, deadline - self.clock())
        response = await self.client.request(
            method, f"{self.base_url}{path}", headers=self._headers(), timeout=self.timeout(remaining), **kwargs
        )
        if not response.is_success:
            raise _error(response, submitting=method == "POST")
        return _object(response)

    async def _download(self, url: str, deadline: float, what: str) -> tuple[bytes, str]:
        remaining = max(0.001, deadline - self.clock())
        return await download(
            self.client,
            url,
            timeout=remaining,
            supplied_by="upstream",
            what=what,
            base_url=self.base_url,
            connect_timeout=self.config.connect_timeout_s,
        )


def _endpoint(model: str) -> list[str]:
    """The endpoint id's path segments, each a plain identifier (nothing can climb or add a query)."""
    segments = model.split("/")
    if len(segments) < 2:
        raise bad_request(f"fal model {model!r} must be an endpoint id such as 'fal-ai/flux/schnell'")
    return [path_segment(s, "fal endpoint id segment") for s in segments]


def _app(segments: list[str]) -> list[str]:
    """The app id of an endpoint: owner and name, after a namespace if it has one."""
    size = 3 if segments[0] in NAMESPACES else 2
    if len(segments) < size:
        raise bad_request(f"fal model {'/'.join(segments)!r} has no app name after its namespace")
    return segments[:size]


def _object(response: httpx.Response) -> dict[str, Any]:
    try:
        data = json.loads(response.content)
    except ValueError as exc:
        raise malformed(f"the answer is not JSON: {exc}", response=response) from exc
    if not isinstance(data, dict):
        raise malformed("the answer is not a JSON object", response=response)
    return data


def _detail(body: bytes) -> str:
    """fal's error text: `detail` as a string, or FastAPI's list of {loc, msg} joined."""
    try:
        data = json.loads(body or b"null")
    except ValueError:
        return body[:200].decode(errors="replace").strip()
    detail = data.get("detail") if isinstance(data, dict) else None
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        parts = []
        for item in detail[:5]:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc") or [] if p != "body")
                parts.append(f"{loc}: {item.get('msg')}" if loc else str(item.get("msg")))
        return "; ".join(parts)
    status = data.get("status") if isinstance(data, dict) else None
    return status if isinstance(status, str) else ""


def _error(response: httpx.Response, *, submitting: bool = False) -> UpstreamError:
    message = _detail(response.content) or f"HTTP {response.status_code}"
    media_type = response.headers.get("content-type", "application/json").split(";")[0]
    classification: Classification | None = None
    lowered = message.lower()
    if response.status_code == 403 and "exhausted balance" in lowered:
        # fal locks a key's user when its credit runs out: not the key's fault, and it comes back
        # when someone tops up
        classification = Classification(Outcome.EXHAUSTED, "exhausted_balance", None, False)
    elif response.status_code == 404 and submitting:
        classification = Classification(Outcome.CALLER_ERROR, "model_not_found", None, False)
    return UpstreamError.from_response(
        response.status_code,
        response.headers,
        response.content,
        message=message,
        classification=classification,
        media_type=media_type,
    )


def _audio_specs(raw: Any) -> dict[str, AudioSpec]:
    """`options["audio_models"]` as {id: spec}; ValueError naming the option if malformed."""
    if raw is None:
        return {}
    if isinstance(raw, list):
        if not all(isinstance(m, str) and m for m in raw):
            raise ValueError("audio_models must be a list of fal endpoint ids or {id: {text_input, format}}")
        return {m: _known_spec(m) for m in raw}
    if not isinstance(raw, dict):
        raise ValueError("audio_models must be a list of fal endpoint ids or {id: {text_input, format}}")
    specs = {}
    for name, entry in raw.items():
        entry = entry or {}
        if not isinstance(entry, dict) or set(entry) - {"text_input", "format"}:
            raise ValueError(f"audio_models.{name} must be {{text_input, format}}")
        known = _known_spec(name)
        text_input = entry.get("text_input", known.text_input)
        fmt = entry.get("format", known.format)
        if not isinstance(text_input, str) or not text_input:
            raise ValueError(f"audio_models.{name}.text_input must be the name of the model's text field")
        if fmt not in AUDIO_TYPES:
            raise ValueError(f"audio_models.{name}.format must be one of {', '.join(AUDIO_TYPES)}")
        specs[name] = AudioSpec(text_input, fmt)
    return specs


def _known_spec(model: str) -> AudioSpec:
    for prefix, spec in AUDIO_MODELS.items():
        if model == prefix or model.startswith((prefix + "/", prefix + "-")):
            return spec
    return AudioSpec()


def _audio_file(result: dict[str, Any]) -> Any:
    for key in ("audio", "audio_file", "audio_url"):
        if result.get(key):
            return result[key]
    return None


def _audio_url(result: dict[str, Any]) -> str | None:
    file = _audio_file(result)
    if isinstance(file, dict):
        file = file.get("url")
    return file if isinstance(file, str) and file else None


def _declared_type(result: dict[str, Any]) -> str | None:
    file = _audio_file(result)
    declared = file.get("content_type") if isinstance(file, dict) else None
    return declared if isinstance(declared, str) else None


def _duration(result: dict[str, Any]) -> float | None:
    """Seconds of audio as the model reports them (`duration`, `duration_ms`), if it does."""
    file = _audio_file(result)
    for source in (result, file if isinstance(file, dict) else {}):
        seconds = source.get("duration")
        if isinstance(seconds, int | float) and not isinstance(seconds, bool):
            return float(seconds)
        ms = source.get("duration_ms")
        if isinstance(ms, int | float) and not isinstance(ms, bool):
            return float(ms) / 1000
    return None


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

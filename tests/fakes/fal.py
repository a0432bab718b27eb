"""A fake fal.ai queue (`queue.fal.run`) and the one platform call the adapter makes.

Auth is `Authorization: Key <key_id>:<key_secret>`; a missing header, a key without the colon
and an unknown key are 401s with fal's `{"detail"}` texts; `locked = True` makes every
submission a 403 "User is locked. Reason: Exhausted balance ..." (status polls still answer,
as fal's do for a locked user).

`POST /{endpoint_id}` queues a request and answers `{status: "IN_QUEUE", request_id,
response_url, status_url, cancel_url, queue_position}`; the three URLs name the app id (the
endpoint id without its subpath), as fal's do. `GET /{app}/requests/{id}/status` moves it on:
IN_QUEUE for `queue_polls` polls (queue_position counting down), IN_PROGRESS for
`progress_polls`, then COMPLETED with `metrics.inference_time`. `behaviour` decides how the next
requests go: "succeed", "queue" (IN_QUEUE for ever), "fail" (COMPLETED, but the result is a 500,
a runner that crashed). A request on another app's path is a 404. `GET /{app}/requests/{id}`
is the model's result once COMPLETED (400 before); the model validates its input there, as
fal's runners do: a missing prompt or text, or too many images, is a 422 with FastAPI's
`{"detail": [{"loc", "msg", "type"}]}`. `PUT /{app}/requests/{id}/cancel` is 202
CANCELLATION_REQUESTED for a queued request (which then stays where it was) and 400
ALREADY_COMPLETED once it started.

Results: image models answer `{"images": [{"url", "width", "height", "content_type"}], "timings",
"seed", "has_nsfw_concepts", "prompt"}`; audio models `{"audio": {"url", "content_type",
"file_name", "file_size"}}` (stable-audio: `audio_file`). Files are served by the fake itself
under `/files/` without auth (fal.media's role), at `files_url` (default: the fake's own URL):
real PNGs, WAVs and an MP3-framed body; `audio_format` forces the format of the next sounds.

`GET /v1/models/pricing?endpoint_id=a,b` (api.fal.ai's) answers `{"prices": [{"endpoint_id",
"unit_price", "unit", "currency"}], "next_cursor", "has_more"}` for the known endpoints, with auth.
"""

from __future__ import annotations

import json
import random
import uuid
from typing import Any

from aiohttp import web

from .base import FakeServer, Fault
from .piper import speak
from .sdwebui import png

API_KEY = "5f1c2d3e-4a5b-6c7d-8e9f-0a1b2c3d4e5f:9b8a7c6d5e4f3a2b1c0d9e8f7a6b5c4d"

# endpoint id -> (most images per request, unit price, unit)
IMAGE_MODELS: dict[str, tuple[int, float, str]] = {
    "fal-ai/flux/schnell": (4, 0.003, "megapixels"),
    "fal-ai/flux/dev": (4, 0.025, "megapixels"),
    "fal-ai/fast-sdxl": (8, 0.0, "compute seconds"),
}
# endpoint id -> (text field, format, result key, unit price, unit)
AUDIO_MODELS: dict[str, tuple[str, str, str, float, str]] = {
    "fal-ai/kokoro/american-english": ("prompt", "wav", "audio", 0.02, "1000 characters"),
    "fal-ai/elevenlabs/tts/multilingual-v2": ("text", "mp3", "audio", 0.1, "1000 characters"),
    "fal-ai/stable-audio": ("prompt", "wav", "audio_file", 0.0, "compute seconds"),
}
NAMESPACES = ("workflows", "comfy")
LOCKED = "User is locked. Reason: Exhausted balance. Top up your balance at fal.ai/dashboard/billing."
_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg"}


def app_of(endpoint_id: str) -> str:
    parts = endpoint_id.split("/")
    return "/".join(parts[:3] if parts[0] in NAMESPACES else parts[:2])


def mp3(frames: int = 40) -> bytes:
    """An MP3-shaped body: an ID3v2 header, then MPEG-1 layer III frame headers (silence)."""
    frame = b"\xff\xfb\x90\x64" + bytes(413)
    return b"ID3\x04\x00\x00\x00\x00\x00\x00" + frame * frames


def missing(field: str) -> dict[str, Any]:
    return {"loc": ["body", field], "msg": "field required", "type": "value_error.missing"}


class FakeFal(FakeServer):
    kind = "fal"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        key: str = API_KEY,
        queue_polls: int = 2,
        progress_polls: int = 1,
    ) -> None:
        super().__init__(host, port)
        self.key = key
        self.queue_polls = queue_polls
        self.progress_polls = progress_polls
        self.behaviour = "succeed"
        self.locked = False
        self.audio_format: str | None = None
        self.files_url: str | None = None
        self.failure_detail = "Internal Server Error: the runner crashed (CUDA error: out of memory)"
        self.jobs: dict[str, dict[str, Any]] = {}

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.behaviour = "succeed"
            self.locked = False
            self.audio_format = None
            self.files_url = None
            self.jobs.clear()

    @property
    def last(self) -> dict[str, Any]:
        """The request queued last: {id, endpoint, app, input, status, cancelled, ...}."""
        with self._lock:
            return list(self.jobs.values())[-1]

    # -- frame --------------------------------------------------------------------------------

    def build_app(self) -> web.Application:
        app = super().build_app()
        app.middlewares.append(self._check_key)
        return app

    @web.middleware
    async def _check_key(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith(("/__", "/files/")):
            return await handler(request)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if not scheme:
            return web.json_response({"detail": "Authentication is required to access this application."}, status=401)
        if scheme != "Key" or ":" not in token:
            return web.json_response(
                {"detail": "Invalid Key Authorization header format. Expected '<key_id>:<key_secret>'."}, status=401
            )
        if token != self.key:
            return web.json_response({"detail": "No user found for Key ID and Secret"}, status=401)
        return await handler(request)

    def error_body(self, status: int, fault: Fault) -> dict[str, Any]:
        texts = {
            429: "Rate limit exceeded. Please retry later.",
            500: "Internal Server Error",
            502: "Bad Gateway",
            503: "Service Unavailable",
            504: "Gateway Timeout",
            403: LOCKED,
        }
        return {"detail": fault.error_code or texts.get(status, f"fake fal error {status}")}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/models/pricing", self.pricing)
        app.router.add_get("/files/{id}/{name}", self.file)
        app.router.add_get(r"/{app:.+}/requests/{id}/status", self.status)
        app.router.add_put(r"/{app:.+}/requests/{id}/cancel", self.cancel)
        app.router.add_get(r"/{app:.+}/requests/{id}", self.result)
        app.router.add_post(r"/{endpoint:.+}", self.submit)

    # -- the queue ----------------------------------------------------------------------------

    def _urls(self, app: str, rid: str) -> dict[str, str]:
        base = f"{self.url}/{app}/requests/{rid}"
        return {"request_id": rid, "response_url": base, "status_url": f"{base}/status", "cancel_url": f"{base}/cancel"}

    async def submit(self, request: web.Request) -> web.Response:
        endpoint = request.match_info["endpoint"]
        if endpoint not in IMAGE_MODELS and endpoint not in AUDIO_MODELS:
            return web.json_response({"detail": f"Application '{app_of(endpoint)}' not found"}, status=404)
        if self.locked:
            return web.json_response({"detail": LOCKED}, status=403)
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError:
            return web.json_response({"detail": "Invalid JSON in request body"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"detail": "The request body must be a JSON object"}, status=422)
        rid = str(uuid.uuid4())
        app = app_of(endpoint)
        with self._lock:
            self.jobs[rid] = {
                "id": rid,
                "endpoint": endpoint,
                "app": app,
                "input": body,
                "status": "IN_QUEUE",
                "polls": 0,
                "behaviour": self.behaviour,
                "cancelled": False,
                "audio_format": self.audio_format,
            }
        return web.json_response(
            {
                "status": "IN_QUEUE",
                **self._urls(app, rid),
                "logs": None,
                "metrics": {},
                "queue_position": self.queue_polls,
            }
        )

    def _job(self, request: web.Request) -> dict[str, Any] | None:
        job = self.jobs.get(request.match_info["id"])
        return job if job is not None and job["app"] == request.match_info["app"] else None

    async def status(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if job is None:
            return web.json_response({"detail": "Request not found"}, status=404)
        with self._lock:
            if not job["cancelled"] and job["status"] != "COMPLETED":
                job["polls"] += 1
                polls, behaviour = job["polls"], job["behaviour"]
                if behaviour == "queue" or polls <= self.queue_polls:
                    job["status"] = "IN_QUEUE"
                elif polls <= self.queue_polls + self.progress_polls:
                    job["status"] = "IN_PROGRESS"
                else:
                    job["status"] = "COMPLETED"
            status, polls = job["status"], job["polls"]
        answer: dict[str, Any] = {"status": status, **self._urls(job["app"], job["id"]), "logs": None}
        if status == "IN_QUEUE":
            answer["queue_position"] = (
                0 if job["behaviour"] == "queue" and polls > self.queue_polls else max(0, self.queue_polls - polls)
            )
        elif status == "IN_PROGRESS" and request.query.get("logs") in ("1", "true"):
            answer["logs"] = [
                {"message": "Loading model", "level": "INFO", "source": "stdout", "timestamp": "2025-01-01T00:00:00Z"}
            ]
        elif status == "COMPLETED":
            answer["metrics"] = {"inference_time": 0.42}
        return web.json_response(answer, status=200 if status == "COMPLETED" else 202)

    async def cancel(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if job is None:
            return web.json_response({"detail": "Request not found"}, status=404)
        with self._lock:
            if job["status"] != "IN_QUEUE":
                return web.json_response({"status": "ALREADY_COMPLETED"}, status=400)
            job["cancelled"] = True
        return web.json_response({"status": "CANCELLATION_REQUESTED"}, status=202)

    async def result(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if job is None:
            return web.json_response({"detail": "Request not found"}, status=404)
        if job["status"] != "COMPLETED":
            return web.json_response({"detail": "Request is still in progress"}, status=400)
        if job["behaviour"] == "fail":
            return web.json_response({"detail": self.failure_detail}, status=500)
        if job["endpoint"] in IMAGE_MODELS:
            return self._images(job)
        return self._audio(job)

    def _images(self, job: dict[str, Any]) -> web.Response:
        body, limit = job["input"], IMAGE_MODELS[job["endpoint"]][0]
        if not isinstance(body.get("prompt"), str):
            return web.json_response({"detail": [missing("prompt")]}, status=422)
        count = body.get("num_images", 1)
        if not isinstance(count, int) or not 1 <= count <= limit:
            return web.json_response(
                {
                    "detail": [
                        {
                            "loc": ["body", "num_images"],
                            "msg": f"ensure this value is less than or equal to {limit}",
                            "type": "value_error.number.not_le",
                            "ctx": {"limit_value": limit},
                        }
                    ]
                },
                status=422,
            )
        size = body.get("image_size")
        width, height = (size["width"], size["height"]) if isinstance(size, dict) else (1024, 768)
        seed = body.get("seed", random.randrange(2**31))
        base = self.files_url or self.url
        images = [
            {"url": f"{base}/files/{job['id']}/{i}.png", "width": width, "height": height, "content_type": "image/png"}
            for i in range(count)
        ]
        return web.json_response(
            {
                "images": images,
                "timings": {"inference": 0.31},
                "seed": seed,
                "has_nsfw_concepts": [False] * count,
                "prompt": body["prompt"],
            }
        )

    def _audio(self, job: dict[str, Any]) -> web.Response:
        field, fmt, key, _, _ = AUDIO_MODELS[job["endpoint"]]
        text = job["input"].get(field)
        if not isinstance(text, str) or not text:
            return web.json_response({"detail": [missing(field)]}, status=422)
        fmt = job["audio_format"] or fmt
        content = self._sound(job["id"], fmt)
        base = self.files_url or self.url
        return web.json_response(
            {
                key: {
                    "url": f"{base}/files/{job['id']}/audio.{fmt}",
                    "content_type": _TYPES[fmt],
                    "file_name": f"audio.{fmt}",
                    "file_size": len(content),
                }
            }
        )

    def _sound(self, rid: str, fmt: str) -> bytes:
        job = self.jobs[rid]
        text = str(job["input"].get(AUDIO_MODELS[job["endpoint"]][0]) or "")
        return speak(text) if fmt == "wav" else mp3()

    async def file(self, request: web.Request) -> web.Response:
        rid, name = request.match_info["id"], request.match_info["name"]
        job = self.jobs.get(rid)
        if job is None or job["status"] != "COMPLETED":
            return web.Response(status=404, text="Not Found")
        stem, _, ext = name.partition(".")
        if ext == "png" and stem.isdigit():
            return web.Response(
                body=png(64, 64, int(job["input"].get("seed", 0)) + int(stem)), content_type="image/png"
            )
        if stem == "audio" and ext in _TYPES:
            return web.Response(body=self._sound(rid, ext), content_type=_TYPES[ext])
        return web.Response(status=404, text="Not Found")

    # -- the platform API ---------------------------------------------------------------------

    async def pricing(self, request: web.Request) -> web.Response:
        wanted = [e for value in request.query.getall("endpoint_id", []) for e in value.split(",") if e]
        if not wanted:
            return web.json_response({"detail": [missing("endpoint_id")]}, status=422)
        prices = []
        for endpoint in wanted:
            if endpoint in IMAGE_MODELS:
                _, price, unit = IMAGE_MODELS[endpoint]
            elif endpoint in AUDIO_MODELS:
                price, unit = AUDIO_MODELS[endpoint][3:]
            else:
                continue
            prices.append({"endpoint_id": endpoint, "unit_price": price, "unit": unit, "currency": "USD"})
        return web.json_response({"prices": prices, "next_cursor": None, "has_more": False})

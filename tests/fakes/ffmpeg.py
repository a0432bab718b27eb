"""A fake ffmpeg composition service, speaking the wire format `providers/adapters/ffmpeg.py`
documents (the async-job shape of crisog/ffmpeg-rest, with one `POST /compose`).

`POST /compose` validates the request as the service would (inputs with an http(s) or `data:`
URL and a type, images with a duration, at least one picture; an mp4/webm output with even
sides) and answers 202 `{"job_id", "status": "queued"}`; a wrong or missing Bearer key, when
`api_key` is set, is a 401. `GET /jobs/{id}` moves the job on: queued for one poll, processing
(progress rising) for `processing_polls`, then completed with `result` (content type, size,
duration, size). `behaviour` decides how the next jobs end: "succeed", "fail" (failed, with
`failure_error`) or "hang" (processing for ever). `GET /jobs/{id}/result` is the file (409
before the job completed): a small but structurally valid MP4 as long as the composition, or a
WebM-headed body. `DELETE /jobs/{id}` cancels a job not yet finished. `GET /health` answers
`{"status", "ffmpeg", "queued", "processing"}` (503 when `health` is not "ok").

The fake fetches nothing: it decodes the `data:` inputs (so a test can check what was inlined)
and records the request of each job in `jobs[id]["request"]`.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

from aiohttp import web

from .base import FakeServer, Fault
from .replicate import mp4

FFMPEG_VERSION = "6.1.1"
WEBM = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\x82\x84webm"


def decode(url: str) -> tuple[bytes, str] | None:
    """The bytes and type of a base64 `data:` URL, or None."""
    head, sep, payload = url.partition(",")
    if not url.startswith("data:") or not sep or not head.endswith(";base64"):
        return None
    try:
        return base64.b64decode(payload, validate=True), head[5:-7]
    except ValueError:
        return None


def invalid(request: Any) -> str | None:
    """Why the service would refuse a compose request, or None."""
    if not isinstance(request, dict):
        return "the body must be a JSON object"
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs or len(inputs) > 100:
        return "inputs must be a list of 1 to 100 inputs"
    for i, item in enumerate(inputs):
        url = item.get("url") if isinstance(item, dict) else None
        if not isinstance(url, str) or not url.startswith(("http://", "https://", "data:")):
            return f"inputs[{i}].url must be an http(s) or data: URL"
        if url.startswith("data:") and decode(url) is None:
            return f"inputs[{i}].url is not a base64 data: URL"
        if item.get("type") not in ("image", "audio", "video"):
            return f"inputs[{i}].type must be image, audio or video"
        duration = item.get("duration_s")
        if item["type"] == "image" and (not isinstance(duration, int | float) or duration <= 0):
            return f"inputs[{i}].duration_s must be a positive number of seconds for an image"
    if not any(item["type"] in ("image", "video") for item in inputs):
        return "a composition needs at least one image or video"
    output = request.get("output") or {}
    if not isinstance(output, dict) or output.get("format", "mp4") not in ("mp4", "webm"):
        return "output.format must be mp4 or webm"
    for name in ("width", "height"):
        value = output.get(name, 1280 if name == "width" else 720)
        if not isinstance(value, int) or not 16 <= value <= 4096 or value % 2:
            return f"output.{name} must be an even number of pixels from 16 to 4096"
    return None


class FakeFFmpeg(FakeServer):
    kind = "ffmpeg"

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, api_key: str | None = None, processing_polls: int = 2
    ) -> None:
        super().__init__(host, port)
        self.api_key = api_key
        self.processing_polls = processing_polls
        self.behaviour = "succeed"
        self.health = "ok"
        self.failure_error = "ffmpeg exited with code 1: Invalid data found when processing input"
        self.jobs: dict[str, dict[str, Any]] = {}

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.behaviour = "succeed"
            self.health = "ok"
            self.jobs.clear()

    @property
    def last(self) -> dict[str, Any]:
        with self._lock:
            return list(self.jobs.values())[-1]

    def error_body(self, status: int, fault: Fault) -> dict[str, Any]:
        texts = {429: "the queue is full, retry later", 500: "internal error", 503: "service unavailable"}
        return {"error": fault.error_code or texts.get(status, f"fake ffmpeg error {status}")}

    def build_app(self) -> web.Application:
        app = super().build_app()
        app.middlewares.append(self._check_key)
        return app

    @web.middleware
    async def _check_key(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if (
            self.api_key is not None
            and not request.path.startswith("/__")
            and request.headers.get("Authorization") != f"Bearer {self.api_key}"
        ):
            return web.json_response({"error": "missing or invalid API key"}, status=401)
        return await handler(request)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/compose", self.compose)
        app.router.add_get("/jobs/{id}", self.job)
        app.router.add_delete("/jobs/{id}", self.cancel)
        app.router.add_get("/jobs/{id}/result", self.result)
        app.router.add_get("/health", self.health_check)

    # -- handlers -----------------------------------------------------------------------------

    async def compose(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read() or b"null")
        except ValueError:
            return web.json_response({"error": "the body is not JSON"}, status=400)
        reason = invalid(body)
        if reason is not None:
            return web.json_response({"error": reason}, status=400)
        output = body.get("output") or {}
        pictures = sum(float(i.get("duration_s") or 5) for i in body["inputs"] if i["type"] != "audio")
        job_id = uuid.uuid4().hex
        with self._lock:
            self.jobs[job_id] = {
                "id": job_id,
                "request": body,
                "status": "queued",
                "polls": 0,
                "behaviour": self.behaviour,
                "format": output.get("format", "mp4"),
                "width": output.get("width", 1280),
                "height": output.get("height", 720),
                "duration": float(output.get("duration_s") or pictures),
                "inlined": [decode(i["url"]) for i in body["inputs"] if i["url"].startswith("data:")],
            }
        return web.json_response({"job_id": job_id, "status": "queued"}, status=202)

    def _file(self, job: dict[str, Any]) -> tuple[bytes, str]:
        if job["format"] == "webm":
            return WEBM, "video/webm"
        return mp4(job["duration"]), "video/mp4"

    async def job(self, request: web.Request) -> web.Response:
        job = self.jobs.get(request.match_info["id"])
        if job is None:
            return web.json_response({"error": "no such job"}, status=404)
        with self._lock:
            if job["status"] in ("queued", "processing"):
                job["polls"] += 1
                if job["polls"] > 1:
                    job["status"] = "processing"
                if job["behaviour"] != "hang" and job["polls"] > 1 + self.processing_polls:
                    job["status"] = "failed" if job["behaviour"] == "fail" else "completed"
            status, polls = job["status"], job["polls"]
        answer: dict[str, Any] = {
            "job_id": job["id"],
            "status": status,
            "error": None,
            "result": None,
            "progress": {"queued": 0, "completed": 100}.get(
                status, min(99, 100 * (polls - 1) // (self.processing_polls + 1))
            ),
        }
        if status == "failed":
            answer["error"] = self.failure_error
        if status == "completed":
            content, content_type = self._file(job)
            answer["result"] = {
                "content_type": content_type,
                "size_bytes": len(content),
                "duration_s": job["duration"],
                "width": job["width"],
                "height": job["height"],
            }
        return web.json_response(answer)

    async def result(self, request: web.Request) -> web.Response:
        job = self.jobs.get(request.match_info["id"])
        if job is None:
            return web.json_response({"error": "no such job"}, status=404)
        if job["status"] != "completed":
            return web.json_response({"error": f"the job is {job['status']}, not completed"}, status=409)
        content, content_type = self._file(job)
        return web.Response(body=content, content_type=content_type)

    async def cancel(self, request: web.Request) -> web.Response:
        job = self.jobs.get(request.match_info["id"])
        if job is None:
            return web.json_response({"error": "no such job"}, status=404)
        with self._lock:
            if job["status"] not in ("queued", "processing"):
                return web.json_response({"error": f"the job is already {job['status']}"}, status=409)
            job["status"] = "cancelled"
        return web.json_response({"job_id": job["id"], "status": "cancelled"})

    async def health_check(self, request: web.Request) -> web.Response:
        with self._lock:
            queued = sum(1 for j in self.jobs.values() if j["status"] == "queued")
            processing = sum(1 for j in self.jobs.values() if j["status"] == "processing")
        return web.json_response(
            {"status": self.health, "ffmpeg": FFMPEG_VERSION, "queued": queued, "processing": processing},
            status=200 if self.health == "ok" else 503,
        )

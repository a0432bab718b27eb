"""A fake Replicate API (`/v1/*`), token in `Authorization: Bearer`.

Predictions are created on an official model (`POST /v1/models/{owner}/{name}/predictions`) or
on a version (`POST /v1/predictions` with `version` as a 64-hex id, "owner/name:id" or an
official "owner/name"), answer 201 with Replicate's prediction object (`id`, `model`,
`version`, `input`, `logs`, `output`, `error`, `status`, `created_at`, `urls`), and go
`starting` → `processing` → `succeeded` over `polls_to_finish` polls of
`GET /v1/predictions/{id}`. `behaviour` decides how the next predictions end: "succeed",
"fail" (status `failed` with `failure_error`) or "hang" (processing for ever). With
`Prefer: wait[=N]` a prediction that will end is answered finished; a hanging one holds the
request for N seconds (60 at most, as Replicate does) and answers still processing.
`POST /v1/predictions/{id}/cancel` cancels a running prediction. Outputs are real PNGs
served by the fake itself under `/delivery/` (replicate.delivery's role), without auth. A video
model (`VIDEO`) answers one URL, not a list, as Replicate's video models do, and the file there
is a small MP4 (an ISO base media file: `ftyp`, `moov` with its `mvhd`, an empty `mdat`) as
long as the input's `duration` (5 s by default).

Errors are Replicate's problem details `{"title", "detail", "status"}`: 401 `Unauthenticated`,
402 insufficient credit, 404 unknown model or prediction, 422 `Input validation failed`
(with `invalid_fields`) or `Invalid version or not permitted`, 429 throttled with
`retry_after` in the body.
"""

from __future__ import annotations

import asyncio
import json
import random
import string
import struct
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from .base import FakeServer, Fault
from .sdwebui import png

API_TOKEN = "r8_fake_replicate_token"

# official model -> (version id, most outputs per prediction)
OFFICIAL = {
    "black-forest-labs/flux-schnell": ("dp-4d0bcc010b3049749a251855f12800be", 4),
    "black-forest-labs/flux-dev": ("dp-9e1d8d7b1b6e4bfa9f2d5c5c0d1e2f3a", 4),
}
# video models: one output, a URL to an MP4
VIDEO = {
    "minimax/video-01": ("dp-5f3c1e0a6b2d4c8e9a7b1d2e3f4a5b6c", 1),
    "wan-video/wan-2.2-t2v-fast": ("dp-0a1b2c3d4e5f40718293a4b5c6d7e8f9", 1),
}
OFFICIAL.update(VIDEO)
# community model -> (version id, most outputs)
VERSIONS = {
    "stability-ai/sdxl": ("39ed52f2a78e934b3ba6e2a89f5b1c712de7dfea535525255b1aa35c5565e08b", 4),
}

_TITLES = {
    401: "Unauthenticated",
    402: "Insufficient credit",
    404: "Not found",
    422: "Input validation failed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
_DETAILS = {
    401: "You did not pass a valid authentication token",
    402: "You have insufficient credit to run this model. Go to https://replicate.com/account/billing#billing "
    "to purchase credit. Once you purchase credit, please wait a few minutes before trying again.",
    404: "The requested resource could not be found.",
    422: "- input: prompt is required",
    429: "Request was throttled. Your rate limit for creating predictions is reduced to 6 requests per "
    "minute with a burst of 1 requests while you have less than $5.0 in credit. Your rate limit "
    "resets in ~5s.",
}


def problem(status: int, detail: str | None = None, title: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "title": title or _TITLES.get(status, "Error"),
        "detail": detail or _DETAILS.get(status, "Something went wrong."),
        "status": status,
        **extra,
    }


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _prediction_id() -> str:
    return "".join(random.choices(string.ascii_lowercase + "234567", k=26))


class FakeReplicate(FakeServer):
    kind = "replicate"

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, token: str = API_TOKEN, polls_to_finish: int = 2
    ) -> None:
        super().__init__(host, port)
        self.token = token
        self.polls_to_finish = polls_to_finish
        self.behaviour = "succeed"
        self.failure_error = "CUDA out of memory. Tried to allocate 2.00 GiB"
        self.predictions: dict[str, dict[str, Any]] = {}
        self._plans: dict[str, dict[str, Any]] = {}

    def reset(self) -> None:
        super().reset()
        self.behaviour = "succeed"
        with self._lock:
            self.predictions.clear()
            self._plans.clear()

    @property
    def last(self) -> dict[str, Any]:
        """The prediction created last."""
        with self._lock:
            return list(self.predictions.values())[-1]

    # -- frame --------------------------------------------------------------------------------

    def build_app(self) -> web.Application:
        app = super().build_app()
        app.middlewares.append(self._check_token)
        return app

    @web.middleware
    async def _check_token(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/v1/"):
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if not token:
                return web.json_response(problem(401, "You did not pass an authentication token"), status=401)
            if scheme.lower() != "bearer" or token != self.token:
                return web.json_response(problem(401), status=401)
        return await handler(request)

    def error_body(self, status: int, fault: Fault) -> dict[str, Any]:
        if status == 429:
            return problem(429, retry_after=5)
        return problem(status, fault.error_code)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/models/{owner}/{name}/predictions", self.create_on_model)
        app.router.add_post("/v1/predictions", self.create_on_version)
        app.router.add_get("/v1/predictions/{id}", self.get_prediction)
        app.router.add_post("/v1/predictions/{id}/cancel", self.cancel)
        app.router.add_get("/v1/account", self.account)
        app.router.add_get("/delivery/{id}/{file}", self.delivery)

    # -- handlers -----------------------------------------------------------------------------

    async def create_on_model(self, request: web.Request) -> web.Response:
        model = f"{request.match_info['owner']}/{request.match_info['name']}"
        if model not in OFFICIAL:
            return web.json_response(problem(404, f"Model {model} not found or is not an official model"), status=404)
        version, max_outputs = OFFICIAL[model]
        return await self._create(request, model, version, max_outputs)

    async def create_on_version(self, request: web.Request) -> web.Response:
        body = await _json(request)
        if body is None:
            return web.json_response(problem(400, "The request body is not valid JSON", "Bad request"), status=400)
        wanted = str(body.get("version") or "")
        name, _, version = wanted.partition(":")
        for model, (known, max_outputs) in [*VERSIONS.items(), *OFFICIAL.items()]:
            if known in (wanted, version) or (not version and name == model and model in OFFICIAL):
                return await self._create(request, model, known, max_outputs, body)
        return web.json_response(
            problem(
                422,
                "The specified version does not exist (or perhaps you don't have permission to use it?)",
                "Invalid version or not permitted",
            ),
            status=422,
        )

    async def _create(
        self, request: web.Request, model: str, version: str, max_outputs: int, body: dict[str, Any] | None = None
    ) -> web.Response:
        if body is None:
            body = await _json(request)
            if body is None:
                return web.json_response(problem(400, "The request body is not valid JSON", "Bad request"), status=400)
        inputs = body.get("input")
        if not isinstance(inputs, dict) or not isinstance(inputs.get("prompt"), str):
            return web.json_response(
                problem(
                    422, invalid_fields=[{"type": "required", "field": "input", "description": "prompt is required"}]
                ),
                status=422,
            )
        count = inputs.get("num_outputs", 1)
        if not isinstance(count, int) or not 1 <= count <= max_outputs:
            description = f"Must be less than or equal to {max_outputs}"
            return web.json_response(
                problem(
                    422,
                    f"- input.num_outputs: {description}",
                    invalid_fields=[
                        {"type": "less_than_equal", "field": "input.num_outputs", "description": description}
                    ],
                ),
                status=422,
            )
        pid = _prediction_id()
        prediction = {
            "id": pid,
            "model": model,
            "version": version,
            "input": inputs,
            "logs": "",
            "output": None,
            "data_removed": False,
            "error": None,
            "status": "starting",
            "created_at": _now(),
            "urls": {
                "cancel": f"{self.url}/v1/predictions/{pid}/cancel",
                "get": f"{self.url}/v1/predictions/{pid}",
                "web": f"https://replicate.com/p/{pid}",
            },
        }
        with self._lock:
            self.predictions[pid] = prediction
            self._plans[pid] = {
                "behaviour": self.behaviour,
                "polls": 0,
                "count": count,
                "seed": inputs.get("seed", random.randrange(2**31)),
                "video": model in VIDEO,
                "duration": inputs.get("duration", 5),
            }
        wait = _prefer_wait(request.headers.get("Prefer", ""))
        if wait is not None:
            if self._plans[pid]["behaviour"] == "hang":
                await asyncio.sleep(wait)
                self._advance(pid, to_processing=True)
            else:
                self._finish(pid)
        with self._lock:
            return web.json_response(prediction, status=201)

    async def get_prediction(self, request: web.Request) -> web.Response:
        pid = request.match_info["id"]
        if pid not in self.predictions:
            return web.json_response(problem(404), status=404)
        self._advance(pid)
        with self._lock:
            return web.json_response(self.predictions[pid])

    async def cancel(self, request: web.Request) -> web.Response:
        pid = request.match_info["id"]
        if pid not in self.predictions:
            return web.json_response(problem(404), status=404)
        with self._lock:
            prediction = self.predictions[pid]
            if prediction["status"] in ("starting", "processing"):
                prediction.update(status="canceled", completed_at=_now())
            return web.json_response(prediction)

    async def account(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "type": "user",
                "username": "fake-artist",
                "name": "Fake Artist",
                "github_url": "https://github.com/fake-artist",
            }
        )

    async def delivery(self, request: web.Request) -> web.Response:
        pid, name = request.match_info["id"], request.match_info["file"]
        plan = self._plans.get(pid)
        if plan is not None and plan["video"] and name == "output.mp4":
            return web.Response(body=mp4(float(plan["duration"])), content_type="video/mp4")
        if plan is None or plan["video"] or not name.startswith("out-"):
            return web.Response(status=404, text="Not Found")
        index = int(name.removeprefix("out-").split(".")[0])
        return web.Response(body=png(64, 64, plan["seed"] + index), content_type="image/png")

    # -- the prediction's progress ------------------------------------------------------------

    def _advance(self, pid: str, *, to_processing: bool = False) -> None:
        with self._lock:
            prediction, plan = self.predictions[pid], self._plans[pid]
            if prediction["status"] not in ("starting", "processing"):
                return
            if not to_processing:
                plan["polls"] += 1
            if prediction["status"] == "starting":
                prediction.update(status="processing", started_at=_now(), logs=f"Using seed: {plan['seed']}\n")
            finish = not to_processing and plan["behaviour"] != "hang" and plan["polls"] >= self.polls_to_finish
        if finish:
            self._finish(pid)

    def _finish(self, pid: str) -> None:
        with self._lock:
            prediction, plan = self.predictions[pid], self._plans[pid]
            prediction.setdefault("started_at", _now())
            prediction["completed_at"] = _now()
            if plan["behaviour"] == "fail":
                prediction.update(
                    status="failed",
                    error=self.failure_error,
                    logs=prediction["logs"] + "Traceback (most recent call last):\n",
                )
                return
            output: str | list[str] = [f"{self.url}/delivery/{pid}/out-{i}.png" for i in range(plan["count"])]
            if plan["video"]:
                output = f"{self.url}/delivery/{pid}/output.mp4"
            prediction.update(
                status="succeeded",
                output=output,
                metrics={"image_count": plan["count"], "predict_time": 0.42, "total_time": 0.61},
            )


def mp4(seconds: float, timescale: int = 1000) -> bytes:
    """A small, structurally valid MP4: `ftyp`, then `moov` holding an `mvhd` that says how long
    the movie is, then an empty `mdat`."""

    def box(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", 8 + len(payload)) + kind + payload

    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    mvhd = (
        struct.pack(">B3xIIII", 0, 0, 0, timescale, int(seconds * timescale))
        + struct.pack(">IH10x", 0x10000, 0x100)
        + matrix
        + bytes(24)
        + struct.pack(">I", 2)
    )
    return (
        box(b"ftyp", b"isom" + struct.pack(">I", 0x200) + b"isomiso2mp41")
        + box(b"moov", box(b"mvhd", mvhd))
        + box(b"mdat", b"")
    )


def _prefer_wait(header: str) -> float | None:
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "wait":
            try:
                return min(60.0, max(1.0, float(value))) if value else 60.0
            except ValueError:
                return 60.0
    return None


async def _json(request: web.Request) -> dict[str, Any] | None:
    try:
        data = json.loads(await request.read() or b"{}")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None

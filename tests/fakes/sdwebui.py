"""A fake AUTOMATIC1111 Stable Diffusion WebUI API (`/sdapi/v1/*`).

txt2img answers real PNGs (built with zlib and struct) in A1111's shape
`{"images": [b64...], "parameters": {...}, "info": "<json string>"}`; errors are A1111's
`{"error": <exception name>, "detail", "body", "errors"}` (FastAPI's `{"detail": [...]}` for a
422). An unknown `override_settings.sd_model_checkpoint` is ignored, as the real server does;
setting an unknown checkpoint through /options is a 500 RuntimeError. `auth=(user, password)`
turns on HTTP Basic auth, as `--api-auth` does. `GET /` is the Gradio HTML page.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import struct
import time
import zlib
from typing import Any

from aiohttp import web

from .base import FakeServer, Fault


def png(width: int, height: int, seed: int = 0) -> bytes:
    """A valid RGB PNG: a vertical gradient whose colours depend on `seed`."""
    rng = random.Random(seed)
    top = [rng.randrange(256) for _ in range(3)]
    bottom = [rng.randrange(256) for _ in range(3)]
    rows = bytearray()
    for y in range(height):
        t = y / max(1, height - 1)
        pixel = bytes(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        rows += b"\x00" + pixel * width

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 6))
        + chunk(b"IEND", b"")
    )


def _checkpoint(filename: str) -> dict[str, Any]:
    sha = hashlib.sha256(filename.encode()).hexdigest()
    name = filename.rsplit(".", 1)[0]
    return {
        "title": f"{filename} [{sha[:10]}]",
        "model_name": name,
        "hash": sha[:8],
        "sha256": sha,
        "filename": f"/home/sd/stable-diffusion-webui/models/Stable-diffusion/{filename}",
        "config": None,
    }


class FakeSDWebUI(FakeServer):
    kind = "sdwebui"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        auth: tuple[str, str] | None = None,
        checkpoints: tuple[str, ...] = ("v1-5-pruned-emaonly.safetensors", "sd_xl_base_1.0.safetensors"),
    ) -> None:
        super().__init__(host, port)
        self.auth = auth
        self.checkpoints = [_checkpoint(f) for f in checkpoints]
        self.options: dict[str, Any] = self._default_options()

    def _default_options(self) -> dict[str, Any]:
        return {
            "samples_save": True,
            "samples_format": "png",
            "return_grid": True,
            "sd_model_checkpoint": self.checkpoints[0]["title"],
            "sd_checkpoint_hash": self.checkpoints[0]["sha256"],
            "CLIP_stop_at_last_layers": 1,
            "sd_vae": "Automatic",
            "eta_noise_seed_delta": 0,
        }

    def reset(self) -> None:
        super().reset()
        self.options = self._default_options()

    # -- frame --------------------------------------------------------------------------------

    def build_app(self) -> web.Application:
        app = super().build_app()
        app.middlewares.append(self._check_auth)
        return app

    @web.middleware
    async def _check_auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.auth and request.path.startswith("/sdapi/"):
            expected = "Basic " + base64.b64encode(":".join(self.auth).encode()).decode()
            if request.headers.get("Authorization") != expected:
                return web.json_response(
                    _a1111_error(
                        "HTTPException", "Incorrect username or password", "401: Incorrect username or password"
                    ),
                    status=401,
                    headers={"WWW-Authenticate": "Basic"},
                )
        return await handler(request)

    def error_body(self, status: int, fault: Fault) -> dict[str, Any]:
        if status == 422:
            return {
                "detail": [
                    {"loc": ["body", "width"], "msg": "value is not a valid integer", "type": "type_error.integer"}
                ]
            }
        if status >= 500:
            name = fault.error_code or "OutOfMemoryError"
            return _a1111_error(name, "", "CUDA out of memory. Tried to allocate 2.00 GiB")
        detail = {401: "Incorrect username or password", 404: "Not Found"}.get(status, "Bad Request")
        return _a1111_error("HTTPException", detail, f"{status}: {detail}")

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/", self.page)
        app.router.add_get("/sdapi/v1/sd-models", self.sd_models)
        app.router.add_get("/sdapi/v1/options", self.get_options)
        app.router.add_post("/sdapi/v1/options", self.set_options)
        app.router.add_get("/sdapi/v1/memory", self.memory)
        app.router.add_post("/sdapi/v1/txt2img", self.txt2img)

    def _find(self, name: str) -> dict[str, Any] | None:
        for ckpt in self.checkpoints:
            aliases = {
                ckpt["title"],
                ckpt["model_name"],
                ckpt["filename"].rsplit("/", 1)[-1],
                ckpt["sha256"],
                ckpt["hash"],
            }
            if name in aliases:
                return ckpt
        return None

    # -- handlers -----------------------------------------------------------------------------

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(
            text="<!DOCTYPE html><html><head><title>Stable Diffusion</title></head>"
            "<body><gradio-app></gradio-app></body></html>",
            content_type="text/html",
        )

    async def sd_models(self, request: web.Request) -> web.Response:
        return web.json_response(self.checkpoints)

    async def get_options(self, request: web.Request) -> web.Response:
        return web.json_response(self.options)

    async def set_options(self, request: web.Request) -> web.Response:
        data = await request.json()
        name = data.get("sd_model_checkpoint")
        if name is not None:
            ckpt = self._find(name)
            if ckpt is None:
                return web.json_response(_a1111_error("RuntimeError", "", f"model {name!r} not found"), status=500)
            data["sd_model_checkpoint"] = ckpt["title"]
            self.options["sd_checkpoint_hash"] = ckpt["sha256"]
        self.options.update(data)
        return web.json_response(None)

    async def memory(self, request: web.Request) -> web.Response:
        gib = 1024**3
        return web.json_response(
            {
                "ram": {"free": 22.4 * gib, "used": 9.6 * gib, "total": 32.0 * gib},
                "cuda": {
                    "system": {"free": 6.1 * gib, "used": 5.9 * gib, "total": 12.0 * gib},
                    "active": {"current": 2.1 * gib, "peak": 4.3 * gib},
                    "allocated": {"current": 2.1 * gib, "peak": 4.3 * gib},
                    "reserved": {"current": 4.6 * gib, "peak": 4.6 * gib},
                    "inactive": {"current": 0.2 * gib, "peak": 0.9 * gib},
                    "events": {"retries": 0, "oom": 0},
                },
            }
        )

    async def txt2img(self, request: web.Request) -> web.Response:
        try:
            data = json.loads(await request.read() or b"{}")
        except ValueError:
            return web.json_response(
                {"detail": [{"loc": ["body"], "msg": "invalid json", "type": "value_error.jsondecode"}]}, status=422
            )
        for key in ("width", "height", "steps", "batch_size", "n_iter"):
            if key in data and not isinstance(data[key], int):
                return web.json_response(
                    {
                        "detail": [
                            {"loc": ["body", key], "msg": "value is not a valid integer", "type": "type_error.integer"}
                        ]
                    },
                    status=422,
                )
        width, height = data.get("width", 512), data.get("height", 512)
        count = data.get("batch_size", 1) * data.get("n_iter", 1)
        seed = data.get("seed", -1)
        if seed == -1:
            seed = random.randrange(2**32)
        current = self._find(self.options["sd_model_checkpoint"]) or self.checkpoints[0]
        override = (data.get("override_settings") or {}).get("sd_model_checkpoint")
        model = (self._find(override) if override else None) or current
        images = [base64.b64encode(png(width, height, seed + i)).decode() for i in range(count)]
        info = {
            "prompt": data.get("prompt", ""),
            "all_prompts": [data.get("prompt", "")] * count,
            "negative_prompt": data.get("negative_prompt", ""),
            "seed": seed,
            "all_seeds": [seed + i for i in range(count)],
            "width": width,
            "height": height,
            "sampler_name": data.get("sampler_name", "DPM++ 2M"),
            "cfg_scale": data.get("cfg_scale", 7.0),
            "steps": data.get("steps", 20),
            "batch_size": data.get("batch_size", 1),
            "sd_model_name": model["model_name"],
            "sd_model_hash": model["hash"],
            "job_timestamp": time.strftime("%Y%m%d%H%M%S"),
            "infotexts": [
                f"{data.get('prompt', '')}\nSteps: {data.get('steps', 20)}, Seed: {seed + i}" for i in range(count)
            ],
        }
        return web.json_response({"images": images, "parameters": data, "info": json.dumps(info)})


def _a1111_error(name: str, detail: str, errors: str) -> dict[str, Any]:
    return {"error": name, "detail": detail, "body": "", "errors": errors}

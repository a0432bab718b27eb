"""AUTOMATIC1111 Stable Diffusion WebUI (`/sdapi/v1/*`, started with `--api`).

An OpenAI images request becomes a txt2img call: `n` is `batch_size`, `size` "WxH" is
width/height, and A1111's own fields (`negative_prompt`, `steps`, `cfg_scale`, `seed`,
`sampler_name`, `scheduler`) pass through from the request's extra fields. The upstream model
is a checkpoint name, applied for this request only through `override_settings` (A1111 ignores
an unknown one and uses the loaded checkpoint; the answer names the one that served).

Credentials: `api_key` "user:password" is sent as HTTP Basic auth (`--api-auth`). Errors are
A1111's `{"error": <exception>, "detail", "errors"}`; a CUDA out-of-memory is a 500 FAILURE.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from providers.engine import Classification, Outcome, UpstreamError

from .base import Adapter, ModelInfo, Result, Usage, bad_request, json_answer, malformed

_PASSTHROUGH = (
    "negative_prompt",
    "steps",
    "cfg_scale",
    "seed",
    "sampler_name",
    "scheduler",
    "restore_faces",
    "enable_hr",
    "hr_scale",
    "denoising_strength",
)
_MAX_IMAGES = 16


class SDWebUIAdapter(Adapter):
    kind = "sdwebui"
    capabilities = frozenset({"image"})
    default_base_url = "http://127.0.0.1:7860"

    async def images(self, request: dict[str, Any], *, model: str, timeout: float) -> Result:
        prompt = request.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise bad_request("'prompt' is required")
        n = request.get("n", 1)
        if not isinstance(n, int) or not 1 <= n <= _MAX_IMAGES:
            raise bad_request(f"'n' must be an integer from 1 to {_MAX_IMAGES}")
        width, height = _size(request.get("size"))
        response_format = request.get("response_format") or "b64_json"
        if response_format not in ("b64_json", "url"):
            raise bad_request("'response_format' must be 'b64_json' or 'url'")
        body: dict[str, Any] = dict(self.config.options.get("txt2img_defaults") or {})
        body.update(
            {
                "prompt": prompt,
                "batch_size": n,
                "n_iter": 1,
                "width": width,
                "height": height,
                "send_images": True,
                "save_images": False,
            }
        )
        for name in _PASSTHROUGH:
            if request.get(name) is not None:
                body[name] = request[name]
        if model and model != "default":
            body["override_settings"] = {"sd_model_checkpoint": model}
        data = await self._call("POST", "/sdapi/v1/txt2img", timeout, json=body)
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise malformed("no 'images' in the txt2img answer", data=data)
        # With `return_grid` on, A1111 may put a grid first: the last n are the images.
        images = [str(i) for i in data["images"][-n:]]
        info = _info(data.get("info"))
        items = [
            {"b64_json": i} if response_format == "b64_json" else {"url": f"data:image/png;base64,{i}"} for i in images
        ]
        answer: dict[str, Any] = {"created": int(time.time()), "data": items}
        if info.get("all_seeds"):
            answer["seeds"] = info["all_seeds"][-n:]
        served = str(info.get("sd_model_name") or model)
        return Result.json(answer, usage=Usage(images=len(images)), model=served)

    async def list_models(self, *, timeout: float) -> list[ModelInfo]:
        data = await self._call("GET", "/sdapi/v1/sd-models", timeout)
        if not isinstance(data, list):
            raise malformed("sd-models is not a list", data=data)
        return [
            ModelInfo(
                name=str(m.get("model_name") or m.get("title")),
                capabilities=frozenset({"image"}),
                details={"title": m.get("title"), "hash": m.get("hash"), "filename": m.get("filename")},
            )
            for m in data
            if isinstance(m, dict)
        ]

    async def current_model(self, *, timeout: float = 10.0) -> str:
        """The loaded checkpoint's title, e.g. "v1-5-pruned-emaonly.safetensors [6ce0161689]"."""
        options = await self._call("GET", "/sdapi/v1/options", timeout)
        if not isinstance(options, dict):
            raise malformed("options is not an object", data=options)
        return str(options.get("sd_model_checkpoint") or "")

    async def set_model(self, name: str, *, timeout: float = 120.0) -> None:
        """Load another checkpoint (slow: A1111 loads it before answering)."""
        try:
            await self._call("POST", "/sdapi/v1/options", timeout, json={"sd_model_checkpoint": name})
        except UpstreamError as exc:
            # A1111 reports an unknown checkpoint as a 500 RuntimeError; it is the caller's.
            if exc.status == 500 and "not found" in exc.message:
                raise UpstreamError(
                    Classification(Outcome.CALLER_ERROR, "model_not_found"),
                    status=404,
                    message=exc.message,
                    headers=exc.headers,
                    body=exc.body,
                ) from exc
            raise

    async def memory(self, *, timeout: float = 10.0) -> dict[str, Any]:
        data = await self._call("GET", "/sdapi/v1/memory", timeout)
        if not isinstance(data, dict):
            raise malformed("memory is not an object", data=data)
        return data

    async def probe(self, *, timeout: float, deep: bool = False, model: str | None = None) -> dict[str, Any]:
        memory = await self.memory(timeout=timeout)
        details: dict[str, Any] = {"ram_free_gb": _gib((memory.get("ram") or {}).get("free"))}
        cuda = (memory.get("cuda") or {}).get("system")
        if isinstance(cuda, dict):
            details["vram_free_gb"] = _gib(cuda.get("free"))
        if deep:
            result = await self.images(
                {"prompt": "a dot", "size": "64x64", "steps": 1}, model=model or "", timeout=timeout
            )
            details["images"] = result.usage.images
        return details

    # -- plumbing -----------------------------------------------------------------------------

    async def _call(self, method: str, path: str, timeout: float, **kwargs: Any) -> Any:
        response = await self.client.request(
            method, f"{self.base_url}{path}", auth=self._auth(), timeout=self.timeout(timeout), **kwargs
        )
        return json_answer(response, _message)

    def _auth(self) -> httpx.BasicAuth | None:
        key = self.config.api_key
        if not key:
            return None
        user, _, password = key.partition(":")
        return httpx.BasicAuth(user, password)


def _size(size: Any) -> tuple[int, int]:
    if size in (None, "", "auto"):
        return 512, 512
    try:
        width, height = (int(v) for v in str(size).lower().split("x"))
    except ValueError:
        raise bad_request("'size' must look like '512x512'") from None
    if not (64 <= width <= 2048 and 64 <= height <= 2048):
        raise bad_request("'size' sides must be between 64 and 2048 pixels")
    return width, height


def _info(raw: Any) -> dict[str, Any]:
    try:
        info = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}


def _message(body: bytes) -> str:
    """A1111's error text: `detail` holds an HTTP reason, `errors` the exception message."""
    try:
        data = json.loads(body or b"null")
    except ValueError:
        return body[:200].decode(errors="replace").strip()
    if isinstance(data, dict):
        for key in ("detail", "errors", "error"):
            value = data.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, list) and value and isinstance(value[0], dict):
                return "; ".join(str(v.get("msg", "")) for v in value)
    return ""


def _gib(value: Any) -> float | None:
    return round(float(value) / 1024**3, 2) if isinstance(value, int | float) else None

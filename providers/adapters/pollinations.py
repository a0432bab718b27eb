"""Pollinations images (`https://image.pollinations.ai`): the prompt in the URL, image bytes back.

An OpenAI images request becomes `GET /prompt/{url-encoded prompt}?width=&height=&seed=
&model=&nologo=true&private=true`, answered with the image itself (JPEG). `size` "WxH" is
width/height (left out, Pollinations draws 1024x1024), the upstream model is `model` ("flux",
"turbo", ...; empty or "default" leaves it to Pollinations), and the request's own
`negative_prompt`, `enhance`, `safe`, `quality`, `transparent` and `guidance_scale` pass through.

One call makes one image, and Pollinations answers the same URL with the same (cached) image,
so `n` > 1 is n calls with seeds seed, seed+1, ..., sent together (Pollinations queues each
caller's requests, so they may be served one after another; the attempt's time bounds them
all, and one failing call fails the request). Without a `seed` in the request a random one is
chosen, so that every URL names its image for good. Usage: one image per call.

`response_format` is `b64_json` (the default here, since the bytes are in hand) or `url`: the
request URL, which answers the same image again. The token (`api_key`) goes in the
`Authorization: Bearer` header, never in the URL, so the URL can be handed out.

Errors are Pollinations' `{"error": <status text>, "message", ...}`: 400 (bad parameters, an
unknown model), 401 and 403 are CALLER_ERROR, 402 EXHAUSTED, 429 (queue full) RATE_LIMITED,
5xx FAILURE. A 200 whose content type is not an image is a malformed FAILURE.

Options (`ProviderConfig.options`):
    nologo     ask for no logo (default true)
    private    keep the images out of the public feed (default true)
    enhance    let Pollinations rewrite the prompt (default false)
    referrer   sent as `referrer`, how Pollinations recognises a registered app
    max_n      the most images one request may ask for (default 4)
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
from typing import Any
from urllib.parse import urlencode

import httpx

from providers.engine import UpstreamError

from .base import Adapter, ModelInfo, Result, Usage, bad_request, malformed
from .urlguard import path_text

_PASSTHROUGH = ("negative_prompt", "enhance", "safe", "quality", "transparent", "guidance_scale")


class PollinationsAdapter(Adapter):
    kind = "pollinations"
    capabilities = frozenset({"image"})
    default_base_url = "https://image.pollinations.ai"

    async def images(self, request: dict[str, Any], *, model: str, timeout: float) -> Result:
        prompt = request.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise bad_request("'prompt' is required")
        max_n = int(self.config.options.get("max_n", 4))
        n = request.get("n", 1)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= max_n:
            raise bad_request(f"'n' must be an integer from 1 to {max_n}")
        response_format = request.get("response_format") or "b64_json"
        if response_format not in ("b64_json", "url"):
            raise bad_request("'response_format' must be 'b64_json' or 'url'")
        seed = request.get("seed")
        if seed is None:
            seed = random.randrange(2**31)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise bad_request("'seed' must be an integer")
        params = self._params(request, model)
        urls = [self._url(prompt, {**params, "seed": seed + i}) for i in range(n)]
        if n == 1:
            images = [await self._fetch(urls[0], timeout)]
        else:
            images = await _all([self._fetch(url, timeout) for url in urls])
        items = (
            [{"b64_json": base64.b64encode(image).decode()} for image in images]
            if response_format == "b64_json"
            else [{"url": url} for url in urls]
        )
        answer = {"created": int(time.time()), "data": items}
        return Result.json(answer, usage=Usage(images=n), model=params.get("model", ""))

    async def list_models(self, *, timeout: float) -> list[ModelInfo]:
        response = await self.client.get(f"{self.base_url}/models", timeout=self.timeout(timeout))
        await self.check(response)
        try:
            data = response.json()
        except ValueError as exc:
            raise malformed(f"the model list is not JSON: {exc}", response=response) from exc
        if not isinstance(data, list):
            raise malformed("the model list is not a list", response=response)
        models = []
        for item in data:
            # A list of names; newer deployments describe each model in an object.
            name = item.get("name") if isinstance(item, dict) else item
            if isinstance(name, str):
                details = {k: v for k, v in item.items() if k != "name"} if isinstance(item, dict) else {}
                models.append(ModelInfo(name=name, capabilities=frozenset({"image"}), details=details))
        return models

    async def probe(self, *, timeout: float, deep: bool = False, model: str | None = None) -> dict[str, Any]:
        details: dict[str, Any] = {"models": len(await self.list_models(timeout=timeout))}
        if deep:
            result = await self.images(
                {"prompt": "a dot", "size": "64x64", "seed": 1}, model=model or "", timeout=timeout
            )
            details["images"] = result.usage.images
        return details

    # -- plumbing -----------------------------------------------------------------------------

    def _params(self, request: dict[str, Any], model: str) -> dict[str, Any]:
        options = self.config.options
        params: dict[str, Any] = {}
        size = request.get("size")
        if size not in (None, "", "auto"):
            try:
                width, height = (int(v) for v in str(size).lower().split("x"))
            except ValueError:
                raise bad_request("'size' must look like '1024x1024'") from None
            if not (16 <= width <= 2048 and 16 <= height <= 2048):
                raise bad_request("'size' sides must be between 16 and 2048 pixels")
            params.update(width=width, height=height)
        if model and model != "default":
            params["model"] = model
        params["nologo"] = options.get("nologo", True)
        params["private"] = options.get("private", True)
        if options.get("enhance"):
            params["enhance"] = True
        if options.get("referrer"):
            params["referrer"] = options["referrer"]
        for name in _PASSTHROUGH:
            if request.get(name) is not None:
                params[name] = request[name]
        return params

    def _url(self, prompt: str, params: dict[str, Any]) -> str:
        query = urlencode({k: json.dumps(v) if isinstance(v, bool) else v for k, v in params.items()})
        segment = path_text(prompt, "'prompt'")
        return f"{self.base_url}/prompt/{segment}?{query}"

    async def _fetch(self, url: str, timeout: float) -> bytes:
        headers = {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}
        response = await self.client.get(url, headers=headers, timeout=self.timeout(timeout))
        if not response.is_success:
            raise _error(response)
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        if not media_type.startswith("image/"):
            raise malformed(f"expected an image, got {media_type or 'no content type'}", response=response)
        return response.content


def _error(response: httpx.Response) -> UpstreamError:
    message = ""
    try:
        data = json.loads(response.content or b"null")
    except ValueError:
        data = None
    if isinstance(data, dict):
        message = str(data.get("message") or data.get("error") or "")
    return UpstreamError.from_response(
        response.status_code,
        response.headers,
        response.content,
        message=message or f"HTTP {response.status_code}",
        media_type=response.headers.get("content-type", "application/json").split(";")[0],
    )


async def _all(calls: list[Any]) -> list[bytes]:
    """Run the calls together; the first failure cancels the rest and is raised as itself."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(call) for call in calls]
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]

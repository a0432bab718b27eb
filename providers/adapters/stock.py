"""Stock photos from a Pexels-style search (`https://api.pexels.com/v1`), the last resort of an
image chain: when nothing can draw the picture, a photo that matches the prompt still serves.

An OpenAI images request becomes `GET /v1/search?query=<prompt>&per_page=<n>&orientation=`
with the key in a bare `Authorization: <key>` header. The query is the prompt cut at a word
boundary (`options["max_query_chars"]`), the orientation follows `size` (wider: landscape,
taller: portrait, equal: square). Each photo becomes `{"url": <src>, "revised_prompt": <alt>}`,
the src picked to fit `size` (`portrait`, `landscape`, `large` up to 940 px, else `large2x`;
`options["src"]` forces one); with `response_format: "b64_json"` it is downloaded instead,
without the key (the image host is public). Pexels asks that photographers be credited, so the
answer also carries `attributions` (photographer, their page, the photo's page). Pexels may
find fewer photos than asked for: usage counts the images returned.

No photo for the query is a FAILURE with reason `no_results` and `should_retry` false: the
prompt is not wrong (the generators before this target took it), so a CALLER_ERROR, which
ends the chain with a 400, would be the wrong answer; as a FAILURE the engine moves on to the
next target at once, without repeating a search that would find nothing again.

Rate limits: every 2xx answer carries `X-Ratelimit-Limit`, `-Remaining` and `-Reset` (a Unix
time); a 429 (the hourly or monthly quota used up) is RATE_LIMITED. Pexels leaves the reset
header off its 429s, so the adapter keeps the last reset it saw and adds it to the error's
headers, where the engine reads how long to wait. 401/403 (no key, a bad or disabled one) are
CALLER_ERROR; 5xx FAILURE.

Options (`ProviderConfig.options`):
    locale           Pexels' `locale` (e.g. "en-US")
    max_query_chars  the longest query sent (default 100)
    src              always use this src size ("original", "large2x", "large", "medium", ...)
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx

from providers.engine import Classification, Outcome, UpstreamError

from .base import Adapter, ModelInfo, Result, Usage, bad_request, malformed
from .client import fetch

_MAX_PER_PAGE = 80


class StockPhotoAdapter(Adapter):
    kind = "stock"
    capabilities = frozenset({"image"})
    default_base_url = "https://api.pexels.com"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reset_at: str | None = None  # the last X-Ratelimit-Reset seen (Unix time)

    async def images(self, request: dict[str, Any], *, model: str, timeout: float) -> Result:
        prompt = request.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise bad_request("'prompt' is required")
        n = request.get("n", 1)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= _MAX_PER_PAGE:
            raise bad_request(f"'n' must be an integer from 1 to {_MAX_PER_PAGE}")
        response_format = request.get("response_format") or "url"
        if response_format not in ("url", "b64_json"):
            raise bad_request("'response_format' must be 'url' or 'b64_json'")
        size = _size(request.get("size"))
        params: dict[str, Any] = {
            "query": query_of(prompt, int(self.config.options.get("max_query_chars", 100))),
            "per_page": n,
        }
        if size is not None:
            params["orientation"] = _orientation(*size)
        if self.config.options.get("locale"):
            params["locale"] = self.config.options["locale"]
        data = await self.search(params, timeout=timeout)
        photos = [p for p in data.get("photos") or [] if isinstance(p, dict) and isinstance(p.get("src"), dict)]
        if not photos:
            raise UpstreamError(
                Classification(Outcome.FAILURE, "no_results", should_retry=False),
                status=200,
                message=f"no stock photo matches {params['query']!r}",
                body=json.dumps(data).encode(),
            )
        photos = photos[:n]
        src = self.config.options.get("src") or _src_for(size)
        items = []
        for photo in photos:
            url = photo["src"].get(src) or photo["src"].get("large") or photo["src"].get("original")
            if not isinstance(url, str):
                raise malformed("a photo has no usable src", data=photo)
            item: dict[str, Any] = (
                {"b64_json": await self._download(url, timeout)} if response_format == "b64_json" else {"url": url}
            )
            if photo.get("alt"):
                item["revised_prompt"] = photo["alt"]
            items.append(item)
        answer = {
            "created": int(time.time()),
            "data": items,
            "attributions": [
                {
                    "photographer": p.get("photographer"),
                    "photographer_url": p.get("photographer_url"),
                    "page": p.get("url"),
                }
                for p in photos
            ],
        }
        return Result.json(answer, usage=Usage(images=len(items)), model=model or "search")

    async def search(self, params: dict[str, Any], *, timeout: float) -> dict[str, Any]:
        """One `GET /v1/search`; the answer as Pexels gives it."""
        response = await self.client.get(
            f"{self.base_url}/v1/search", params=params, headers=self._headers(), timeout=self.timeout(timeout)
        )
        if response.is_success and response.headers.get("x-ratelimit-reset"):
            self._reset_at = response.headers["x-ratelimit-reset"]
        if not response.is_success:
            raise self._error(response)
        try:
            data = response.json()
        except ValueError as exc:
            raise malformed(f"the search answer is not JSON: {exc}", response=response) from exc
        if not isinstance(data, dict) or not isinstance(data.get("photos", []), list):
            raise malformed("the search answer has no photos list", response=response)
        return data

    async def list_models(self, *, timeout: float) -> list[ModelInfo]:
        return [
            ModelInfo(name="search", capabilities=frozenset({"image"}), details={"description": "stock photo search"})
        ]

    async def probe(self, *, timeout: float, deep: bool = False, model: str | None = None) -> dict[str, Any]:
        """A one-photo search: Pexels has no cheaper call, and it reports the quota left."""
        data = await self.search({"query": "nature", "per_page": 1}, timeout=timeout)
        return {"total_results": data.get("total_results"), "reset_at": self._reset_at}

    # -- plumbing -----------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"Authorization": self.config.api_key} if self.config.api_key else {}

    def _error(self, response: httpx.Response) -> UpstreamError:
        headers = httpx.Headers(response.headers)
        if response.status_code == 429 and "x-ratelimit-reset" not in headers and self._reset_ahead():
            headers["x-ratelimit-reset"] = str(self._reset_at)
        message = ""
        try:
            data = json.loads(response.content or b"null")
        except ValueError:
            data = None
        if isinstance(data, dict):
            message = str(data.get("error") or data.get("message") or data.get("code") or "")
        return UpstreamError.from_response(
            response.status_code,
            headers,
            response.content,
            message=message or f"HTTP {response.status_code}",
            media_type=response.headers.get("content-type", "application/json").split(";")[0],
        )

    def _reset_ahead(self) -> bool:
        try:
            return self._reset_at is not None and float(self._reset_at) > time.time()
        except ValueError:
            return False

    async def _download(self, url: str, timeout: float) -> str:
        # The upstream's URL: judged by the fetch policy (a refused one is this provider's
        # FAILURE), unless it is on the provider's own origin.
        response = await fetch(
            self.client,
            url,
            timeout=timeout,
            supplied_by="upstream",
            what="the photo",
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


def query_of(prompt: str, limit: int) -> str:
    """The prompt as a search query: one line, cut at a word boundary under `limit`."""
    words = " ".join(prompt.split())
    if len(words) <= limit:
        return words
    head = words[: limit + 1]
    return head.rsplit(" ", 1)[0] if " " in head else words[:limit]


def _size(size: Any) -> tuple[int, int] | None:
    if size in (None, "", "auto"):
        return None
    try:
        width, height = (int(v) for v in str(size).lower().split("x"))
    except ValueError:
        raise bad_request("'size' must look like '1024x1024'") from None
    if width <= 0 or height <= 0:
        raise bad_request("'size' sides must be positive")
    return width, height


def _orientation(width: int, height: int) -> str:
    return "landscape" if width > height else "portrait" if height > width else "square"


def _src_for(size: tuple[int, int] | None) -> str:
    """The Pexels src that fits: its portrait and landscape crops, else large (940x650) or large2x."""
    if size is None:
        return "large"
    width, height = size
    if width != height:
        return "landscape" if width > height else "portrait"
    return "large" if width <= 940 else "large2x"

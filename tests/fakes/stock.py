"""A fake Pexels API (`/v1/search`), the key in a bare `Authorization: <key>` header.

A search answers Pexels' shape `{"total_results", "page", "per_page", "photos", "next_page"}`
with photos that follow from the query (the same query finds the same photos), each with
`id`, `width`, `height`, `url`, `photographer`, `photographer_url`, `photographer_id`,
`avg_color`, `src` (original, large2x, large, medium, small, portrait, landscape, tiny),
`liked` and `alt`. `orientation` shapes the photos; `per_page` is capped at 80 as Pexels does.
The query `NO_RESULTS` finds nothing (`total_results` 0, no photos).

Each src is a real JPEG served by the fake under `/photos/{id}/pexels-photo-{id}.jpeg`, sized
by its `w`, `h`, `dpr` and `fit=crop` parameters as images.pexels.com does (originals are
capped at 1880 px here, to stay quick), in the photo's average colour, without auth.

Rate limits as Pexels documents them: every 2xx search carries `X-Ratelimit-Limit`,
`X-Ratelimit-Remaining` and `X-Ratelimit-Reset` (a Unix time); once `remaining` reaches 0 a
search is a 429 that carries none of them. Errors are `{"error": <message>}`: 401 for a missing
or wrong key.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any
from urllib.parse import quote_plus

from aiohttp import web

from .base import FakeServer, Fault
from .pollinations import jpeg

API_KEY = "pexels-fake-key-563492ad6f91700001000001"
NO_RESULTS = "qwxzv nothing matches this"

_PHOTOGRAPHERS = ("Lukas Rodriguez", "Pixabay", "Eberhard Grossgasteiger", "Jaime Reimer", "Ana Arantes")
_ERRORS = {
    401: "Authorization field missing",
    403: "Forbidden",
    429: "Rate limit exceeded",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
_MAX_SIDE = 1880


class FakeStockPhotos(FakeServer):
    kind = "stock"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, api_key: str = API_KEY, limit: int = 20_000) -> None:
        super().__init__(host, port)
        self.api_key = api_key
        self.limit = limit
        self.remaining = limit
        self.reset_at = int(time.time()) + 30 * 24 * 3600
        self.photos: dict[int, dict[str, Any]] = {}

    def reset(self) -> None:
        super().reset()
        self.remaining = self.limit
        self.reset_at = int(time.time()) + 30 * 24 * 3600
        with self._lock:
            self.photos.clear()

    def error_body(self, status: int, fault: Fault) -> dict[str, Any]:
        return {"error": fault.error_code or _ERRORS.get(status, "Something went wrong")}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/search", self.search)
        app.router.add_get("/photos/{id}/{file}", self.photo_file)

    # -- handlers -----------------------------------------------------------------------------

    async def search(self, request: web.Request) -> web.Response:
        key = request.headers.get("Authorization")
        if not key:
            return web.json_response({"error": "Authorization field missing"}, status=401)
        if key != self.api_key:
            return web.json_response({"error": "Invalid API key"}, status=401)
        if self.remaining <= 0:
            # Pexels' 429 carries no rate-limit headers (its help centre says so).
            return web.json_response({"error": "Rate limit exceeded"}, status=429)
        self.remaining -= 1
        query = request.query.get("query", "").strip()
        if not query:
            return web.json_response({"error": "query is required"}, status=400, headers=self._limits())
        per_page = max(1, min(80, _int(request.query.get("per_page"), 15)))
        page = max(1, _int(request.query.get("page"), 1))
        orientation = request.query.get("orientation", "")
        seed = int(hashlib.sha256(query.lower().encode()).hexdigest()[:8], 16)
        total = 0 if query == NO_RESULTS else 40 + seed % 5000
        first = (page - 1) * per_page
        photos = [self._photo(seed, i, query, orientation) for i in range(first, min(total, first + per_page))]
        body: dict[str, Any] = {"total_results": total, "page": page, "per_page": per_page, "photos": photos}
        if first + per_page < total:
            body["next_page"] = (
                f"https://api.pexels.com/v1/search/?page={page + 1}&per_page={per_page}&query={quote_plus(query)}"
            )
        if page > 1:
            body["prev_page"] = (
                f"https://api.pexels.com/v1/search/?page={page - 1}&per_page={per_page}&query={quote_plus(query)}"
            )
        return web.json_response(body, headers=self._limits())

    async def photo_file(self, request: web.Request) -> web.Response:
        try:
            photo = self.photos[int(request.match_info["id"])]
        except (KeyError, ValueError):
            return web.Response(status=404, text="Not Found")
        width, height = _served_size(photo["width"], photo["height"], request.query)
        rgb = tuple(int(photo["avg_color"][i : i + 2], 16) for i in (1, 3, 5))
        return web.Response(
            body=jpeg(width, height, rgb),
            content_type="image/jpeg",  # type: ignore[arg-type]
            headers={"Cache-Control": "public, max-age=31536000"},
        )

    # -- photos -------------------------------------------------------------------------------

    def _limits(self) -> dict[str, str]:
        return {
            "X-Ratelimit-Limit": str(self.limit),
            "X-Ratelimit-Remaining": str(self.remaining),
            "X-Ratelimit-Reset": str(self.reset_at),
        }

    def _photo(self, seed: int, index: int, query: str, orientation: str) -> dict[str, Any]:
        photo_id = 1_000_000 + (seed * 31 + index * 7919) % 9_000_000
        digest = hashlib.sha256(f"{photo_id}".encode()).digest()
        width, height = {"landscape": (6000, 4000), "portrait": (4000, 6000), "square": (4000, 4000)}.get(
            orientation, (4000 + digest[0] * 8, 3000 + digest[1] * 8)
        )
        photographer = _PHOTOGRAPHERS[digest[2] % len(_PHOTOGRAPHERS)]
        slug = "-".join(query.lower().split()[:6])
        original = f"{self.url}/photos/{photo_id}/pexels-photo-{photo_id}.jpeg"
        photo = {
            "id": photo_id,
            "width": width,
            "height": height,
            "url": f"https://www.pexels.com/photo/{slug}-{photo_id}/",
            "photographer": photographer,
            "photographer_url": f"https://www.pexels.com/@{photographer.lower().replace(' ', '-')}",
            "photographer_id": 100_000 + digest[3] * 97,
            "avg_color": "#{:02X}{:02X}{:02X}".format(*digest[4:7]),
            "src": {
                "original": original,
                "large2x": f"{original}?auto=compress&cs=tinysrgb&dpr=2&h=650&w=940",
                "large": f"{original}?auto=compress&cs=tinysrgb&h=650&w=940",
                "medium": f"{original}?auto=compress&cs=tinysrgb&h=350",
                "small": f"{original}?auto=compress&cs=tinysrgb&h=130",
                "portrait": f"{original}?auto=compress&cs=tinysrgb&fit=crop&h=1200&w=800",
                "landscape": f"{original}?auto=compress&cs=tinysrgb&fit=crop&h=627&w=1200",
                "tiny": f"{original}?auto=compress&cs=tinysrgb&dpr=1&fit=crop&h=200&w=280",
            },
            "liked": False,
            "alt": f"{query.capitalize()} (photo {index + 1})",
        }
        with self._lock:
            self.photos[photo_id] = photo
        return photo


def _served_size(width: int, height: int, query: Any) -> tuple[int, int]:
    """The size images.pexels.com would serve for these parameters (fit within w×h, or crop)."""
    dpr = max(1, _int(query.get("dpr"), 1))
    w, h = _int(query.get("w"), 0), _int(query.get("h"), 0)
    if query.get("fit") == "crop" and w and h:
        out = (w * dpr, h * dpr)
    elif w or h:
        scale = min(w / width if w else float("inf"), h / height if h else float("inf"))
        out = (round(width * scale * dpr), round(height * scale * dpr))
    else:
        out = (width, height)
    shrink = max(out) / _MAX_SIDE
    if shrink > 1:
        out = (round(out[0] / shrink), round(out[1] / shrink))
    return max(1, out[0]), max(1, out[1])


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default

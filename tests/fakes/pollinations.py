"""A fake Pollinations image API (`image.pollinations.ai`).

`GET /prompt/{prompt}?width=&height=&seed=&model=&nologo=&private=&enhance=&negative_prompt=`
answers a real baseline JPEG of the asked size (1024x1024 by default), one solid colour chosen
from (prompt, seed, model), so the same URL always answers the same image, as Pollinations'
cache does; headers as the real server sends them (`Content-Type: image/jpeg`, an immutable
`Cache-Control`, `Content-Disposition` named after the prompt, `X-Auth-Status`).
`GET /models` is the JSON list of model names. An unknown model is a 400; with `token` set,
a wrong `Authorization: Bearer` token is a 401 (no token at all is the anonymous tier).

Errors are Pollinations' `{"error": <status text>, "message", "details", "timingInfo",
"requestId", "requestParameters", "queueInfo"}` with an `X-Error-Type` header; unknown paths
answer `{"error": "Not Found", "message", "path"}`.
"""

from __future__ import annotations

import hashlib
import re
import struct
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from .base import FakeServer, Fault

MODELS = ("flux", "kontext", "turbo", "gptimage")
_ERROR_TYPES = {
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    429: "Too Many Requests",
}

# JPEG (ITU T.81) pieces for a baseline, 3-component, unsubsampled image whose 8x8 blocks are
# each one flat colour: every block is its DC coefficient followed by end-of-block.
_DC_COUNTS = bytes([0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0])  # Annex K.3, luminance DC
_DC_CODES: dict[int, tuple[int, int]] = {}
_code, _size = 0, 1
_symbol = 0
for _count in _DC_COUNTS:
    for _ in range(_count):
        _DC_CODES[_symbol] = (_code, _size)
        _code += 1
        _symbol += 1
    _code <<= 1
    _size += 1
_AC_COUNTS = bytes([1] + [0] * 15)  # one AC symbol, end-of-block (0x00), coded as "0"


def jpeg(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A valid baseline JPEG of one solid colour (decodes with any JPEG decoder)."""
    r, g, b = rgb
    ycc = (
        0.299 * r + 0.587 * g + 0.114 * b,
        128 - 0.168736 * r - 0.331264 * g + 0.5 * b,
        128 + 0.5 * r - 0.418688 * g - 0.081312 * b,
    )
    # With every quantiser 1, a flat block's DC coefficient is 8 × (sample − 128).
    dcs = [round(8 * (min(255.0, max(0.0, v)) - 128)) for v in ycc]
    bits = _BitWriter()
    previous = [0, 0, 0]
    blocks = ((width + 7) // 8) * ((height + 7) // 8)
    for _ in range(blocks):
        for component in range(3):
            diff = dcs[component] - previous[component]
            previous[component] = dcs[component]
            category = abs(diff).bit_length()
            bits.write(*_DC_CODES[category])
            if category:
                bits.write(diff if diff > 0 else diff + (1 << category) - 1, category)
            bits.write(0, 1)  # end of block
    scan = bits.finish()

    def segment(marker: int, payload: bytes) -> bytes:
        return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload

    quant = segment(0xDB, b"\x00" + bytes([1] * 64))
    frame = segment(0xC0, struct.pack(">BHHB", 8, height, width, 3) + b"".join(bytes([i, 0x11, 0]) for i in (1, 2, 3)))
    tables = segment(0xC4, b"\x00" + _DC_COUNTS + bytes(range(12)) + b"\x10" + _AC_COUNTS + b"\x00")
    start = segment(0xDA, bytes([3, 1, 0x00, 2, 0x00, 3, 0x00, 0, 63, 0]))
    app0 = segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    return b"\xff\xd8" + app0 + quant + frame + tables + start + scan + b"\xff\xd9"


class _BitWriter:
    def __init__(self) -> None:
        self.out = bytearray()
        self.acc = 0
        self.count = 0

    def write(self, value: int, size: int) -> None:
        self.acc = (self.acc << size) | (value & ((1 << size) - 1))
        self.count += size
        while self.count >= 8:
            self.count -= 8
            byte = (self.acc >> self.count) & 0xFF
            self.out.append(byte)
            if byte == 0xFF:
                self.out.append(0)  # byte stuffing
        self.acc &= (1 << self.count) - 1

    def finish(self) -> bytes:
        if self.count:
            self.write((1 << (8 - self.count)) - 1, 8 - self.count)  # pad with ones
        return bytes(self.out)


def colour(*parts: object) -> tuple[int, int, int]:
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return digest[0], digest[1], digest[2]


def _slug(prompt: str) -> str:
    slug = re.sub(r"[^a-z0-9\s-]", "", prompt[:100], flags=re.IGNORECASE)
    slug = re.sub(r"-+", "-", re.sub(r"\s+", "-", slug)).strip("-").lower()
    return slug or "generated-image"


class FakePollinations(FakeServer):
    kind = "pollinations"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, token: str | None = None) -> None:
        super().__init__(host, port)
        self.token = token

    def error_body(self, status: int, fault: Fault) -> dict[str, Any]:
        kind = _ERROR_TYPES.get(status, "Internal Server Error")
        message = fault.error_code or {
            429: "Queue full for IP: 127.0.0.1 - please wait for your previous requests to finish",
            402: "Insufficient pollen balance",
        }.get(status, "An error occurred while processing your request")
        body = _error(kind, message)
        if status == 429:
            body["queueInfo"] = {"position": 10, "total": 10}
        return body

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/models", self.models)
        app.router.add_get("/prompt/{prompt:.*}", self.prompt)
        app.router.add_route("*", "/{tail:.*}", self.not_found)

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response(list(MODELS), headers={"Cache-Control": "no-store, no-cache, must-revalidate"})

    async def prompt(self, request: web.Request) -> web.Response:
        # Pollinations reads the prompt from the raw path, then URL-decodes it.
        raw = request.raw_path.split("?", 1)[0].split("/prompt/", 1)[1]
        prompt = unquote(raw) or "random_prompt"
        query = request.query
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        authenticated = False
        if token:
            if self.token is not None and (scheme.lower() != "bearer" or token != self.token):
                return _fail(401, "Unauthorized", "Invalid or expired token")
            authenticated = True
        model = query.get("model", "flux")
        if model not in MODELS:
            return _fail(
                400,
                "Bad Request",
                f"Invalid option: expected one of {'|'.join(repr(m) for m in MODELS)}".replace("'", '"'),
            )
        width = _side(query.get("width"))
        height = _side(query.get("height"))
        seed = query.get("seed", "42")
        body = jpeg(width, height, colour(prompt, seed, model, query.get("negative_prompt", "")))
        return web.Response(
            body=body,
            headers={
                "Content-Type": "image/jpeg",
                "Cache-Control": "public, max-age=31536000, immutable",
                "Content-Disposition": f'inline; filename="{_slug(prompt)}.jpg"',
                "X-Auth-Status": "authenticated" if authenticated else "unauthenticated",
            },
        )

    async def not_found(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"error": "Not Found", "message": "The requested endpoint was not found", "path": request.path}, status=404
        )


def _side(value: str | None) -> int:
    try:
        return max(8, min(2048, int(value))) if value is not None else 1024
    except ValueError:
        return 1024


def _error(kind: str, message: str) -> dict[str, Any]:
    return {
        "error": kind,
        "message": message,
        "details": {},
        "timingInfo": [],
        "requestId": "k3x9q1",
        "requestParameters": {},
        "queueInfo": None,
    }


def _fail(status: int, kind: str, message: str) -> web.Response:
    return web.json_response(_error(kind, message), status=status, headers={"X-Error-Type": kind})

"""A fake local text-to-speech server in the OpenAI-compatible style of Kokoro-FastAPI and the
Chatterbox TTS API servers: a FastAPI app with `POST /v1/audio/speech` and `GET /health`, and
`GET /v1/models` only when `models` is given (several Chatterbox servers have none: FastAPI
then answers 404 `{"detail": "Not Found"}`).

Speech takes OpenAI's JSON `{model, input, voice, response_format, speed}` and answers silent
audio in the asked format (default `default_format`), under that format's content type, from
`formats`; another format is FastAPI's 422 validation error. With `ignores_format` the server
writes `default_format` whatever is asked, as some Chatterbox servers do (they make WAV only
and never read the field). An empty `input` is a 422 too; no key is needed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp import web

from .base import FakeServer, Fault
from .openai import _AUDIO_TYPES, audio

CHATTERBOX_FORMATS = ("wav",)
KOKORO_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")


def _validation(loc: list[str], message: str, value: Any) -> web.Response:
    detail = [{"type": "value_error", "loc": loc, "msg": message, "input": value}]
    return web.json_response({"detail": detail}, status=422)


class FakeSpeechServer(FakeServer):
    kind = "speech-server"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        formats: Iterable[str] = KOKORO_FORMATS,
        default_format: str = "mp3",
        ignores_format: bool = False,
        models: Iterable[str] | None = None,
    ) -> None:
        super().__init__(host, port)
        self.formats = tuple(formats)
        self.default_format = default_format
        self.ignores_format = ignores_format
        self.models = list(models) if models is not None else None

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/audio/speech", self.speech)
        app.router.add_get("/health", self.health)
        if self.models is not None:
            app.router.add_get("/v1/models", self.list_models)
        app.router.add_route("*", "/{tail:.*}", self.not_found)

    def error_body(self, status: int, fault: Fault) -> dict[str, Any]:
        return {"detail": fault.error_code or f"fake speech server error {status}"}

    async def speech(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _validation(["body"], "JSON decode error", None)
        if not isinstance(body, dict):
            return _validation(["body"], "Input should be a valid dictionary", body)
        text = body.get("input")
        if not isinstance(text, str) or not text:
            return _validation(["body", "input"], "String should have at least 1 character", text)
        fmt = body.get("response_format") or self.default_format
        if self.ignores_format:
            fmt = self.default_format
        elif fmt not in self.formats:
            return _validation(
                ["body", "response_format"], f"Input should be {', '.join(map(repr, self.formats))}", fmt
            )
        return web.Response(body=audio(text, fmt), content_type=_AUDIO_TYPES[fmt])

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "healthy"})

    async def list_models(self, request: web.Request) -> web.Response:
        items = [{"id": m, "object": "model", "created": 1700000000, "owned_by": "local"} for m in self.models or []]
        return web.json_response({"object": "list", "data": items})

    async def not_found(self, request: web.Request) -> web.Response:
        return web.json_response({"detail": "Not Found"}, status=404)

"""A fake Piper HTTP server (`python -m piper.http_server`), in any of its three request forms.

`api="synthesize"` (piper1-gpl today): `GET /` is the test page, `GET /info` the loaded voice,
`GET /voices` the downloaded voices' configurations, `POST /synthesize` takes JSON
`{text, voice, speaker, speaker_id, length_scale, noise_scale, noise_w_scale}`. `api="json"`
(the first piper1-gpl server): the same JSON posted to `/`. `api="text"` (rhasspy/piper): the
text as the raw body of `POST /`, or `GET /?text=`.

Synthesis answers a valid WAV as Piper writes it with Python's `wave` module (RIFF, `fmt `,
`data`; 16-bit mono PCM at the voice's sample rate) whose length grows with the text (about
60 ms a character, times `length_scale`) and whose tone follows the speaker. As from Flask,
the WAV is labelled `text/html; charset=utf-8`. An unknown voice falls back to the default one
and an unknown speaker name to the voice's default speaker, as Piper does (with a warning);
a `speaker_id` outside the voice's speakers is 0.

Errors are Werkzeug's HTML pages: an empty text or a body that is not JSON raise in Flask and
answer 500; unknown paths 404, wrong methods 405. Injected faults answer the same pages.
"""

from __future__ import annotations

import io
import json
import math
import wave
from typing import Any

from aiohttp import web

from .base import FAULT, FakeServer

VOICES: dict[str, dict[str, Any]] = {
    "en_US-lessac-medium": {
        "audio": {"sample_rate": 22050, "quality": "medium"},
        "espeak": {"voice": "en-us"},
        "inference": {"noise_scale": 0.667, "length_scale": 1, "noise_w": 0.8},
        "phoneme_type": "espeak",
        "num_symbols": 256,
        "num_speakers": 1,
        "speaker_id_map": {},
        "piper_version": "1.0.0",
        "language": {
            "code": "en_US",
            "family": "en",
            "region": "US",
            "name_native": "English",
            "name_english": "English",
            "country_english": "United States",
        },
        "dataset": "lessac",
    },
    "en_GB-vctk-medium": {
        "audio": {"sample_rate": 22050, "quality": "medium"},
        "espeak": {"voice": "en-gb-x-rp"},
        "inference": {"noise_scale": 0.667, "length_scale": 1, "noise_w": 0.8},
        "phoneme_type": "espeak",
        "num_symbols": 256,
        "num_speakers": 4,
        "speaker_id_map": {"p225": 0, "p226": 1, "p227": 2, "p228": 3},
        "piper_version": "1.0.0",
        "language": {
            "code": "en_GB",
            "family": "en",
            "region": "GB",
            "name_native": "English",
            "name_english": "English",
            "country_english": "Great Britain",
        },
        "dataset": "vctk",
    },
    "de_DE-thorsten-low": {
        "audio": {"sample_rate": 16000, "quality": "low"},
        "espeak": {"voice": "de"},
        "inference": {"noise_scale": 0.667, "length_scale": 1, "noise_w": 0.8},
        "phoneme_type": "espeak",
        "num_symbols": 256,
        "num_speakers": 1,
        "speaker_id_map": {},
        "piper_version": "1.0.0",
        "language": {
            "code": "de_DE",
            "family": "de",
            "region": "DE",
            "name_native": "Deutsch",
            "name_english": "German",
            "country_english": "Germany",
        },
        "dataset": "thorsten",
    },
}

_PAGES = {
    400: ("Bad Request", "The browser (or proxy) sent a request that this server could not understand."),
    404: (
        "Not Found",
        "The requested URL was not found on the server. If you entered the URL manually "
        "please check your spelling and try again.",
    ),
    405: ("Method Not Allowed", "The method is not allowed for the requested URL."),
    429: ("Too Many Requests", "This user has exceeded an allotted request count. Try again later."),
    500: (
        "Internal Server Error",
        "The server encountered an internal error and was unable to complete "
        "your request. Either the server is overloaded or there is an error in "
        "the application.",
    ),
    502: ("Bad Gateway", "The proxy server received an invalid response from an upstream server."),
    503: (
        "Service Unavailable",
        "The server is temporarily unable to service your request due to maintenance "
        "downtime or capacity problems. Please try again later.",
    ),
}
SECONDS_PER_CHARACTER = 0.06


def werkzeug_page(status: int, description: str | None = None) -> web.Response:
    name, text = _PAGES.get(status, ("Error", "An error occurred."))
    page = (
        f"<!doctype html>\n<html lang=en>\n<title>{status} {name}</title>\n<h1>{name}</h1>\n"
        f"<p>{description or text}</p>\n"
    )
    return web.Response(status=status, text=page, content_type="text/html", charset="utf-8")


def speak(text: str, sample_rate: int = 22050, speaker: int = 0, length_scale: float = 1.0) -> bytes:
    """A WAV as Piper writes it: 16-bit mono PCM, ~60 ms per character, a tone per speaker."""
    frames = int(sample_rate * max(0.1, SECONDS_PER_CHARACTER * len(text) * length_scale))
    pitch = 180.0 + 40.0 * speaker
    samples = bytearray()
    for i in range(frames):
        value = int(3000 * math.sin(2 * math.pi * pitch * i / sample_rate))
        samples += value.to_bytes(2, "little", signed=True)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setframerate(sample_rate)
        out.setsampwidth(2)
        out.setnchannels(1)
        out.writeframes(bytes(samples))
    return buffer.getvalue()


class FakePiper(FakeServer):
    kind = "piper"

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, api: str = "synthesize", voice: str = "en_US-lessac-medium"
    ) -> None:
        super().__init__(host, port)
        if api not in ("synthesize", "json", "text"):
            raise ValueError(api)
        self.api = api
        self.default_voice = voice
        self.last: dict[str, Any] | None = None  # what was synthesized last: text, voice, speaker_id

    def build_app(self) -> web.Application:
        app = super().build_app()
        # Outermost, so injected faults answer Werkzeug's HTML pages like everything else.
        app.middlewares.insert(0, self._html_errors)
        return app

    @web.middleware
    async def _html_errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        response = await handler(request)
        fault = request.get(FAULT)
        if (
            fault is not None
            and fault.body is None
            and response.status >= 400
            and response.content_type == "application/json"
        ):
            page = werkzeug_page(response.status)
            for name, value in response.headers.items():
                if name.lower() not in ("content-type", "content-length"):
                    page.headers[name] = value
            return page
        return response

    def add_routes(self, app: web.Application) -> None:
        if self.api == "synthesize":
            app.router.add_get("/", self.index)
            app.router.add_get("/info", self.info)
            app.router.add_get("/voices", self.voices)
            app.router.add_post("/synthesize", self.synthesize_json)
        elif self.api == "json":
            app.router.add_post("/", self.synthesize_json)
        else:
            app.router.add_get("/", self.synthesize_text)
            app.router.add_post("/", self.synthesize_text)
        app.router.add_route("*", "/{tail:.*}", self.not_found)

    # -- handlers -----------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.Response:
        return web.Response(
            text="<!DOCTYPE html><html><head><title>Piper</title></head><body>"
            "<textarea id=text></textarea><audio id=audio></audio></body></html>",
            content_type="text/html",
        )

    async def info(self, request: web.Request) -> web.Response:
        config = VOICES[self.default_voice]
        return web.json_response(
            {
                "voice": {
                    "name": self.default_voice,
                    "language": config["espeak"]["voice"],
                    "num_speakers": config["num_speakers"],
                },
                "last": {"text": self.last["text"]} if self.last else None,
            }
        )

    async def voices(self, request: web.Request) -> web.Response:
        return web.json_response(VOICES)

    async def synthesize_json(self, request: web.Request) -> web.Response:
        try:
            data = json.loads(await request.read())
        except ValueError:
            return werkzeug_page(500)
        if not isinstance(data, dict):
            return werkzeug_page(500)
        text = str(data.get("text", "")).strip()
        if not text:
            return werkzeug_page(500)  # ValueError("No text provided") in Flask
        name = data.get("voice", self.default_voice)
        if name not in VOICES:
            name = self.default_voice  # Piper warns and uses its default voice
        config = VOICES[name]
        speaker_id = data.get("speaker_id")
        if speaker_id is None and config["num_speakers"] > 1:
            speaker_id = config["speaker_id_map"].get(data.get("speaker"), 0)
        if not isinstance(speaker_id, int) or speaker_id > config["num_speakers"]:
            speaker_id = 0
        length_scale = float(data.get("length_scale", config["inference"]["length_scale"]))
        return self._answer(text, name, speaker_id, length_scale)

    async def synthesize_text(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            text = (await request.read()).decode("utf-8", errors="replace")
        else:
            text = request.query.get("text", "")
        text = text.strip()
        if not text:
            return werkzeug_page(500)
        return self._answer(text, self.default_voice, 0, 1.0)

    async def not_found(self, request: web.Request) -> web.Response:
        known = {"synthesize": {"/", "/info", "/voices", "/synthesize"}, "json": {"/"}, "text": {"/"}}[self.api]
        return werkzeug_page(405 if request.path in known else 404)

    def _answer(self, text: str, voice: str, speaker_id: int, length_scale: float) -> web.Response:
        self.last = {"text": text, "voice": voice, "speaker_id": speaker_id, "length_scale": length_scale}
        audio = speak(text, VOICES[voice]["audio"]["sample_rate"], speaker_id, length_scale)
        # Flask sends bytes from a view as HTML, whatever they are.
        return web.Response(body=audio, content_type="text/html", charset="utf-8")

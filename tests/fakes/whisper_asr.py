"""A fake whisper-asr-webservice (ahmetoner/whisper-asr-webservice, FastAPI, port 9000).

`POST /asr` takes the audio in the multipart field `audio_file` and its settings in the query:
`task` (transcribe | translate), `language` (Whisper's codes only), `initial_prompt`, `encode`,
`word_timestamps`, `vad_filter`, `output` (txt | vtt | srt | tsv | json, default txt). It answers
`text/plain` whatever the output, with `Asr-Engine` and `Content-Disposition` headers, as the
service's StreamingResponse does: json is Whisper's result `{"text", "segments", "language"}`
(the text with Whisper's leading space; `words` in each segment with word_timestamps), txt one
line per segment, srt and vtt as Whisper's writers make them (VTT without hours under an hour).
`POST /detect-language` answers `{"detected_language", "language_code", "confidence"}`.
`GET /openapi.json` is FastAPI's document (`info.title` "Whisper Asr Webservice", the version,
both paths); `GET /docs` the Swagger page; there is no health endpoint, as in the service.

What it hears: audio taught with `learn(audio, text, language)`; an upload that is UTF-8 text is
heard as itself; any other WAV as silence (""). Seconds come from the WAV header (else 0.4 s a
word) and are shared out between the sentences, one segment each. Anything else is audio ffmpeg
cannot decode: the service's unhandled error, a plain-text 500. FastAPI's 422s for a query value
outside its enum or a missing file. `api_key`, when set, stands for a reverse proxy asking for a
Bearer key (401 without it).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import wave
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from aiohttp import web

from .base import FakeServer, Fault

VERSION = "1.8.2"
LANGUAGES = {
    "en": "english",
    "de": "german",
    "fr": "french",
    "es": "spanish",
    "it": "italian",
    "nl": "dutch",
    "pt": "portuguese",
    "ja": "japanese",
    "zh": "chinese",
    "ru": "russian",
    "haw": "hawaiian",
}
OUTPUTS = ("txt", "vtt", "srt", "tsv", "json")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def enum_error(where: str, name: str, value: str, allowed: tuple[str, ...] | list[str]) -> dict[str, Any]:
    expected = ", ".join(f"'{a}'" for a in allowed[:-1]) + f" or '{allowed[-1]}'"
    return {
        "type": "enum",
        "loc": [where, name],
        "msg": f"Input should be {expected}",
        "input": value,
        "ctx": {"expected": expected},
    }


def _stamp(seconds: float, *, comma: bool, hours: bool) -> str:
    millis = round(seconds * 1000)
    h, millis = divmod(millis, 3_600_000)
    m, millis = divmod(millis, 60_000)
    s, millis = divmod(millis, 1000)
    head = f"{h:02d}:" if hours or h else ""
    return f"{head}{m:02d}:{s:02d}{',' if comma else '.'}{millis:03d}"


class FakeWhisperASR(FakeServer):
    kind = "whisper"

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, api_key: str | None = None, engine: str = "openai_whisper"
    ) -> None:
        super().__init__(host, port)
        self.api_key = api_key
        self.engine = engine
        self.heard: dict[str, tuple[str, str]] = {}

    def learn(self, audio: bytes, text: str, language: str = "en") -> None:
        """Hear `audio` as `text`, spoken in `language`, from now on."""
        self.heard[hashlib.sha256(audio).hexdigest()] = (text, language)

    def error_body(self, status: int, fault: Fault) -> dict[str, Any]:
        return {
            "detail": fault.error_code
            or {503: "Service Unavailable", 429: "Too Many Requests"}.get(status, "Internal Server Error")
        }

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/asr", self.asr)
        app.router.add_post("/detect-language", self.detect_language)
        app.router.add_get("/openapi.json", self.openapi)
        app.router.add_get("/docs", self.docs)
        app.router.add_get("/", self.index)

    # -- handlers -----------------------------------------------------------------------------

    def _denied(self, request: web.Request) -> web.Response | None:
        if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response({"detail": "Not authenticated"}, status=401)
        return None

    async def _upload(self, request: web.Request) -> tuple[bytes, str] | None:
        """The `audio_file` part's bytes and file name, if the form has one."""
        content_type = request.headers.get("Content-Type", "")
        if not content_type.startswith("multipart/form-data"):
            return None
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + await request.read()
        )
        for part in message.iter_parts():  # type: ignore[attr-defined]
            if part.get_param("name", header="content-disposition") == "audio_file":
                return part.get_payload(decode=True) or b"", part.get_filename() or "audio"
        return None

    async def asr(self, request: web.Request) -> web.StreamResponse:
        denied = self._denied(request)
        if denied is not None:
            return denied
        query = request.query
        errors = []
        task, language, output = query.get("task", "transcribe"), query.get("language"), query.get("output", "txt")
        if task not in ("transcribe", "translate"):
            errors.append(enum_error("query", "task", task, ("transcribe", "translate")))
        if language is not None and language not in LANGUAGES:
            errors.append(enum_error("query", "language", language, sorted(LANGUAGES)))
        if output not in OUTPUTS:
            errors.append(enum_error("query", "output", output, OUTPUTS))
        upload = await self._upload(request)
        if upload is None:
            errors.append({"type": "missing", "loc": ["body", "audio_file"], "msg": "Field required", "input": None})
        if errors:
            return web.json_response({"detail": errors}, status=422)
        assert upload is not None
        heard = self._hear(upload[0])
        if heard is None:
            return web.Response(status=500, text="Internal Server Error", content_type="text/plain")
        text, spoken, seconds = heard
        words = query.get("word_timestamps") == "true"
        result = self._result(text, language or spoken, seconds, words)
        name = f"{upload[1]}.{output}"
        return web.Response(
            text=_write(result, output),
            content_type="text/plain",
            headers={"Asr-Engine": self.engine, "Content-Disposition": f'attachment; filename="{name}"'},
        )

    async def detect_language(self, request: web.Request) -> web.Response:
        denied = self._denied(request)
        if denied is not None:
            return denied
        upload = await self._upload(request)
        if upload is None:
            return web.json_response(
                {
                    "detail": [
                        {"type": "missing", "loc": ["body", "audio_file"], "msg": "Field required", "input": None}
                    ]
                },
                status=422,
            )
        heard = self._hear(upload[0])
        if heard is None:
            return web.Response(status=500, text="Internal Server Error", content_type="text/plain")
        _, language, _ = heard
        return web.json_response(
            {"detected_language": LANGUAGES[language], "language_code": language, "confidence": 0.9731}
        )

    async def openapi(self, request: web.Request) -> web.Response:
        endpoint = {
            "tags": ["Endpoints"],
            "responses": {"200": {"description": "Successful Response"}, "422": {"description": "Validation Error"}},
        }
        return web.json_response(
            {
                "openapi": "3.1.0",
                "info": {
                    "title": "Whisper Asr Webservice",
                    "version": VERSION,
                    "description": "Whisper ASR Webservice is a general-purpose speech recognition webservice.",
                    "contact": {"url": "https://github.com/ahmetoner/whisper-asr-webservice"},
                    "license": {"name": "MIT License"},
                },
                "paths": {
                    "/asr": {"post": {**endpoint, "summary": "Asr", "operationId": "asr_asr_post"}},
                    "/detect-language": {
                        "post": {
                            **endpoint,
                            "summary": "Detect Language",
                            "operationId": "detect_language_detect_language_post",
                        }
                    },
                },
            }
        )

    async def docs(self, request: web.Request) -> web.Response:
        return web.Response(
            text="<!DOCTYPE html><html><head><title>Whisper Asr Webservice - Swagger UI</title>"
            '</head><body><div id="swagger-ui"></div></body></html>',
            content_type="text/html",
        )

    async def index(self, request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect("/docs")

    # -- what it hears ------------------------------------------------------------------------

    def _hear(self, upload: bytes) -> tuple[str, str, float] | None:
        known = self.heard.get(hashlib.sha256(upload).hexdigest())
        if upload[:4] == b"RIFF" and upload[8:12] == b"WAVE":
            try:
                with wave.open(io.BytesIO(upload)) as audio:
                    seconds = audio.getnframes() / audio.getframerate()
            except (wave.Error, EOFError, ZeroDivisionError):
                return None
            text, language = known or ("", "en")
            return text, language, seconds
        try:
            text = upload.decode("utf-8").strip()
        except UnicodeDecodeError:
            return None
        if not text:
            return None
        text, language = known or (text, "en")
        return text, language, 0.4 * max(1, len(text.split()))

    def _result(self, text: str, language: str, seconds: float, words: bool) -> dict[str, Any]:
        sentences = [s for s in _SENTENCE.split(text) if s] if text else []
        total = sum(len(s.split()) for s in sentences) or 1
        segments, at = [], 0.0
        for i, sentence in enumerate(sentences):
            length = seconds * len(sentence.split()) / total
            segment: dict[str, Any] = {
                "id": i,
                "seek": 0,
                "start": round(at, 2),
                "end": round(at + length, 2),
                "text": f" {sentence}",
                "tokens": [50364 + i, 440, 50464],
                "temperature": 0.0,
                "avg_logprob": -0.21,
                "compression_ratio": 1.07,
                "no_speech_prob": 0.012,
            }
            if words:
                step = length / max(1, len(sentence.split()))
                segment["words"] = [
                    {
                        "word": f" {w}",
                        "start": round(at + k * step, 2),
                        "end": round(at + (k + 1) * step, 2),
                        "probability": 0.97,
                    }
                    for k, w in enumerate(sentence.split())
                ]
            segments.append(segment)
            at += length
        return {"text": "".join(s["text"] for s in segments), "segments": segments, "language": language}


def _write(result: dict[str, Any], output: str) -> str:
    """The result as Whisper's writers write it."""
    segments = result["segments"]
    if output == "json":
        return json.dumps(result)
    if output == "txt":
        return "".join(s["text"].strip() + "\n" for s in segments)
    if output == "tsv":
        return "start\tend\ttext\n" + "".join(
            f"{round(1000 * s['start'])}\t{round(1000 * s['end'])}\t{s['text'].strip()}\n" for s in segments
        )
    if output == "srt":
        return "".join(
            f"{i}\n{_stamp(s['start'], comma=True, hours=True)} --> "
            f"{_stamp(s['end'], comma=True, hours=True)}\n{s['text'].strip()}\n\n"
            for i, s in enumerate(segments, start=1)
        )
    return "WEBVTT\n\n" + "".join(
        f"{_stamp(s['start'], comma=False, hours=False)} --> "
        f"{_stamp(s['end'], comma=False, hours=False)}\n{s['text'].strip()}\n\n"
        for s in segments
    )

"""A fake OpenAI-compatible Whisper server, as faster-whisper-server / speaches run one.

`POST /v1/audio/transcriptions` takes OpenAI's multipart form (`file`, `model`, `language`,
`prompt`, `response_format`, `temperature`, `timestamp_granularities[]`) and answers in the
asked format: `json` is `{"text"}` alone (no usage block, unlike OpenAI), `verbose_json` adds
`task`, `language`, `duration` and `segments`, `text`, `srt` and `vtt` are plain text.
`GET /v1/models` lists the Whisper models it has. No key is needed unless `api_key` is set.

What it "hears": audio taught with `learn(audio, text)` is heard as that text; an upload that
is UTF-8 text is heard as itself; any other WAV as silence (""). The duration is read from the
WAV header (else 0.4 s a word). Errors are FastAPI's: 422 `{"detail": [...]}` for a missing
field, 404 `{"detail": "..."}` for a model it does not have, 400 for a file that is neither
audio nor text.
"""

from __future__ import annotations

import hashlib
import io
import wave
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from aiohttp import web

from .base import FakeServer, Fault

MODELS = ("Systran/faster-whisper-small", "Systran/faster-distil-whisper-large-v3")


class FakeWhisper(FakeServer):
    kind = "whisper"

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, api_key: str | None = None, models: tuple[str, ...] = MODELS
    ) -> None:
        super().__init__(host, port)
        self.api_key = api_key
        self.models = models
        self.heard: dict[str, str] = {}

    def learn(self, audio: bytes, text: str) -> None:
        """Hear `audio` as `text` from now on."""
        self.heard[hashlib.sha256(audio).hexdigest()] = text

    def error_body(self, status: int, fault: Fault) -> dict[str, Any]:
        return {
            "detail": fault.error_code
            or {503: "Service Unavailable", 429: "Too Many Requests"}.get(status, "Internal Server Error")
        }

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/audio/transcriptions", self.transcriptions)
        app.router.add_get("/v1/models", self.list_models)

    def _denied(self, request: web.Request) -> web.Response | None:
        if self.api_key is None:
            return None
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response({"detail": "Invalid API key"}, status=401)
        return None

    async def list_models(self, request: web.Request) -> web.Response:
        denied = self._denied(request)
        if denied is not None:
            return denied
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {"id": m, "object": "model", "created": 1700000000, "owned_by": m.split("/")[0]}
                    for m in self.models
                ],
            }
        )

    async def transcriptions(self, request: web.Request) -> web.Response:
        denied = self._denied(request)
        if denied is not None:
            return denied
        content_type = request.headers.get("Content-Type", "")
        form: dict[str, str] = {}
        upload: bytes | None = None
        if content_type.startswith("multipart/form-data"):
            message = BytesParser(policy=HTTP).parsebytes(
                f"Content-Type: {content_type}\r\n\r\n".encode() + await request.read()
            )
            for part in message.iter_parts():  # type: ignore[attr-defined]
                name = part.get_param("name", header="content-disposition")
                payload = part.get_payload(decode=True) or b""
                if name == "file":
                    upload = payload
                elif name:
                    form[name] = payload.decode()
        missing = [f for f, v in (("file", upload), ("model", form.get("model"))) if v is None]
        if missing:
            return web.json_response(
                {
                    "detail": [
                        {"type": "missing", "loc": ["body", f], "msg": "Field required", "input": None} for f in missing
                    ]
                },
                status=422,
            )
        assert upload is not None
        model = form["model"]
        if model not in self.models:
            return web.json_response(
                {
                    "detail": f"Model '{model}' is not installed locally. You can download "
                    f"the model using `POST /v1/models/{model}`"
                },
                status=404,
            )
        text, seconds = self._hear(upload)
        if text is None:
            return web.json_response({"detail": "Invalid audio file: it could not be decoded"}, status=400)
        fmt = form.get("response_format", "json")
        if fmt == "text":
            return web.Response(text=text, content_type="text/plain")
        if fmt in ("srt", "vtt"):
            sep = "," if fmt == "srt" else "."
            end = f"00:00:{int(seconds):02d}{sep}{int(seconds * 1000) % 1000:03d}"
            head = "1\n" if fmt == "srt" else "WEBVTT\n\n"
            return web.Response(text=f"{head}00:00:00{sep}000 --> {end}\n{text}\n\n", content_type="text/plain")
        if fmt == "verbose_json":
            return web.json_response(
                {
                    "task": "transcribe",
                    "language": form.get("language", "en"),
                    "duration": seconds,
                    "text": text,
                    "words": None,
                    "segments": [
                        {
                            "id": 1,
                            "seek": 0,
                            "start": 0.0,
                            "end": seconds,
                            "text": text,
                            "tokens": [],
                            "temperature": float(form.get("temperature", 0)),
                            "avg_logprob": -0.2,
                            "compression_ratio": 1.1,
                            "no_speech_prob": 0.01,
                        }
                    ]
                    if text
                    else [],
                }
            )
        return web.json_response({"text": text})

    def _hear(self, upload: bytes) -> tuple[str | None, float]:
        known = self.heard.get(hashlib.sha256(upload).hexdigest())
        if upload[:4] == b"RIFF" and upload[8:12] == b"WAVE":
            try:
                with wave.open(io.BytesIO(upload)) as audio:
                    seconds = round(audio.getnframes() / audio.getframerate(), 2)
            except (wave.Error, EOFError, ZeroDivisionError):
                return None, 0.0
            return known or "", seconds
        try:
            text = upload.decode("utf-8").strip()
        except UnicodeDecodeError:
            return None, 0.0
        return known or text, round(0.4 * max(1, len(text.split())), 2)

"""Piper text to speech over its HTTP server (`python -m piper.http_server`, port 5000), WAV back.

Piper's server has changed its request twice; `options["api"]` names the one to speak:

    "synthesize"  (default) piper1-gpl's server (piper-tts 1.3 and later): POST /synthesize
                  with JSON {text, voice, speaker, speaker_id, length_scale, ...}; GET /voices
                  lists the downloaded voices, GET /info the loaded one
    "json"        the same JSON posted to / (the first piper1-gpl server)
    "text"        rhasspy/piper's server (1.2 and before): the text as the raw body of
                  POST / (GET /?text= works too), in the one voice the server was started with

An OpenAI speech request maps as: `input` is the text; the target's model is the Piper voice
("en_US-lessac-medium"; empty or "default" keeps the server's own); `voice` picks a speaker of a
multi-speaker voice, through `options["speakers"]` (OpenAI name -> Piper speaker name or id) or
as itself when it is not one of OpenAI's voice names (those mean nothing to Piper and are left
out); `speed` becomes `length_scale` = 1/speed. The "text" API takes none of these.

Piper only makes WAV (`speech_formats`). A request naming another `response_format` is
refused before anything is sent (`UnsupportedRequest`, reason `unsupported_format`): the
engine skips this target, saying why, and tries the next, so an mp3 asked for is never
answered with WAV; with no format named, the WAV is served as `audio/wav`. (Piper's Flask
server labels its WAV `text/html`; the adapter checks the RIFF header instead.) Usage:
characters = len(input), audio seconds from the WAV header.

Errors: an empty text would be a 500 from Piper (a ValueError in Flask), so it is refused
first as a CALLER_ERROR. Flask answers HTML error pages: 5xx are FAILURE, 400 (a bad speaker
id) CALLER_ERROR, 404/405 mean `options["api"]` does not fit the server (CALLER_ERROR, with
that said). A 200 that is not a WAV is a malformed FAILURE.

Options (`ProviderConfig.options`):
    api       "synthesize" (default), "json" or "text", as above
    voices    the voice names `list_models` reports (else GET /voices, or one "default")
    speakers  OpenAI voice name -> Piper speaker name (str) or speaker id (int)
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

import httpx

from providers.engine import UpstreamError

from .base import Adapter, ModelInfo, Result, Usage, bad_request, malformed, wav_seconds

APIS = ("synthesize", "json", "text")
OPENAI_VOICES = frozenset(
    {"alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse", "marin", "cedar"}
)
_TAG = re.compile(r"<(p|title)>(.*?)</\1>", re.IGNORECASE | re.DOTALL)


class PiperAdapter(Adapter):
    kind = "piper"
    capabilities = frozenset({"tts"})
    default_base_url = "http://127.0.0.1:5000"
    speech_formats = frozenset({"wav"})

    @property
    def api(self) -> str:
        api = self.config.options.get("api", "synthesize")
        if api not in APIS:
            raise bad_request(f"piper option 'api' must be one of {', '.join(APIS)}, not {api!r}")
        return str(api)

    async def speech(self, request: dict[str, Any], *, model: str, timeout: float) -> Result:
        self.speech_format(request)
        text = request.get("input")
        if not isinstance(text, str) or not text.strip():
            raise bad_request("'input' is required")
        speed = request.get("speed")
        if speed is not None and (
            not isinstance(speed, int | float) or isinstance(speed, bool) or not 0.25 <= speed <= 4.0
        ):
            raise bad_request("'speed' must be a number from 0.25 to 4.0")
        api = self.api
        if api == "text":
            response = await self._send(
                "POST", "/", timeout, content=text.encode(), headers={"Content-Type": "text/plain; charset=utf-8"}
            )
        else:
            body: dict[str, Any] = {"text": text}
            if model and model != "default":
                body["voice"] = model
            body.update(self._speaker(request.get("voice")))
            if speed is not None:
                body["length_scale"] = round(1 / speed, 4)
            response = await self._send("POST", "/synthesize" if api == "synthesize" else "/", timeout, json=body)
        audio = response.content
        seconds = wav_seconds(audio)
        if seconds is None:
            raise malformed("the answer is not a WAV file", response=response)
        return Result(
            content=audio,
            media_type="audio/wav",
            usage=Usage(characters=len(text), audio_seconds=round(seconds, 2)),
            model=model or "default",
        )

    async def voices(self, *, timeout: float = 10.0) -> dict[str, Any]:
        """The downloaded voices and their configurations (piper1-gpl's GET /voices)."""
        data = await self._get_json("/voices", timeout)
        if not isinstance(data, dict):
            raise malformed("/voices is not an object", data=data)
        return data

    async def list_models(self, *, timeout: float) -> list[ModelInfo]:
        configured = self.config.options.get("voices")
        if configured:
            return [ModelInfo(name=str(v), capabilities=frozenset({"tts"})) for v in configured]
        if self.api != "synthesize":
            return [ModelInfo(name="default", capabilities=frozenset({"tts"}))]
        return [
            ModelInfo(name=name, capabilities=frozenset({"tts"}), details=_voice_details(config))
            for name, config in (await self.voices(timeout=timeout)).items()
        ]

    async def probe(self, *, timeout: float, deep: bool = False, model: str | None = None) -> dict[str, Any]:
        """GET /info where the server has it; else (or when deep) a one-word synthesis."""
        if not deep and self.api == "synthesize":
            info = await self._get_json("/info", timeout)
            voice = info.get("voice") if isinstance(info, dict) else None
            if not isinstance(voice, dict):
                raise malformed("/info has no voice", data=info)
            return {
                "voice": voice.get("name"),
                "language": voice.get("language"),
                "speakers": voice.get("num_speakers"),
            }
        result = await self.speech({"input": "ok"}, model=model or "", timeout=timeout)
        return {"audio_seconds": result.usage.audio_seconds}

    # -- plumbing -----------------------------------------------------------------------------

    def _speaker(self, voice: Any) -> dict[str, Any]:
        if isinstance(voice, dict):  # OpenAI's custom-voice form {"id": ...}
            voice = voice.get("id")
        if not isinstance(voice, str) or not voice:
            return {}
        speakers = self.config.options.get("speakers") or {}
        chosen = speakers.get(voice)
        if chosen is None:
            return {} if voice in OPENAI_VOICES else {"speaker": voice}
        if isinstance(chosen, int) and not isinstance(chosen, bool):
            return {"speaker_id": chosen}
        return {"speaker": str(chosen)}

    async def _send(self, method: str, path: str, timeout: float, **kwargs: Any) -> httpx.Response:
        response = await self.client.request(method, f"{self.base_url}{path}", timeout=self.timeout(timeout), **kwargs)
        if response.is_success:
            return response
        message = _message(response)
        if response.status_code in (404, 405):
            message = f"{message} (the server does not take {method} {path}: is options['api'] right?)"
        raise UpstreamError.from_response(
            response.status_code,
            response.headers,
            response.content,
            message=message,
            media_type=response.headers.get("content-type", "text/html").split(";")[0],
        )

    async def _get_json(self, path: str, timeout: float) -> Any:
        response = await self._send("GET", path, timeout)
        try:
            return response.json()
        except ValueError as exc:
            raise malformed(f"{path} is not JSON: {exc}", response=response) from exc


def _voice_details(config: Any) -> dict[str, Any]:
    if not isinstance(config, dict):
        return {}
    language = config.get("language") or {}
    audio = config.get("audio") or {}
    return {
        "language": language.get("code"),
        "quality": audio.get("quality"),
        "sample_rate": audio.get("sample_rate"),
        "speakers": list(config.get("speaker_id_map") or {}),
    }


def _message(response: httpx.Response) -> str:
    """Flask's HTML error page says it in its <p> (or <title>); JSON or text as they come."""
    text = response.text
    if "html" in response.headers.get("content-type", "") or text.lstrip().startswith("<"):
        found = {tag.lower(): html.unescape(value).strip() for tag, value in _TAG.findall(text)}
        return found.get("p") or found.get("title") or f"HTTP {response.status_code}"
    try:
        data = json.loads(text)
    except ValueError:
        return text[:200].strip() or f"HTTP {response.status_code}"
    if isinstance(data, dict):
        return str(data.get("error") or data.get("message") or data.get("detail") or f"HTTP {response.status_code}")
    return f"HTTP {response.status_code}"

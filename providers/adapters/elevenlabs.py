"""ElevenLabs text to speech (`/v1/text-to-speech/{voice_id}`), authenticated with `xi-api-key`.

An OpenAI speech request `{model, input, voice, response_format, speed}` becomes
`{text, model_id, voice_settings}` for the voice's id (`options["voices"]` may map OpenAI-style
names such as "alloy" to voice ids; otherwise `voice` is the id), with `output_format` from
`response_format`: of OpenAI's formats ElevenLabs makes mp3 (`mp3_44100_128`, also its
default), pcm (`pcm_24000`, OpenAI's 24 kHz), wav (`wav_44100`) and opus (`opus_48000_128`)
(`speech_formats`); aac and flac are refused before anything is sent, so the engine skips
this target rather than answer in another format. An ElevenLabs `output_format` name
(`mp3_44100_192`, `pcm_16000`, `ulaw_8000`, ...) is taken as it is. The answer is the audio
bytes, checked to be in the format asked and served under that format's Content-Type (speech.py),
billed in characters.

Errors are `{"detail": {"status", "message"}}`; `classify_http` reads `detail.status`, so a 401
`quota_exceeded` is EXHAUSTED while a 401 `invalid_api_key` is a CALLER_ERROR, and a 429
(`too_many_concurrent_requests`, `system_busy`) is RATE_LIMITED.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from providers.engine import Classification, Outcome, UpstreamError

from .base import Adapter, ModelInfo, Result, Usage, bad_request, malformed
from .media import AUDIO_TYPES
from .speech import served_type
from .urlguard import path_segment

DEFAULT_MODEL = "eleven_multilingual_v2"

# OpenAI response_format -> ElevenLabs output_format. OpenAI's pcm is 24 kHz 16-bit mono.
_FORMATS = {"mp3": "mp3_44100_128", "pcm": "pcm_24000", "wav": "wav_44100", "opus": "opus_48000_128"}
# The codecs of ElevenLabs' own `output_format` names (codec_samplerate[_bitrate]).
_CODECS = ("mp3", "pcm", "ulaw", "alaw", "opus", "wav")
_PASSTHROUGH = ("language_code", "seed", "previous_text", "next_text", "apply_text_normalization")


class ElevenLabsAdapter(Adapter):
    kind = "elevenlabs"
    capabilities = frozenset({"tts"})
    default_base_url = "https://api.elevenlabs.io"
    speech_formats = frozenset(_FORMATS)

    def speech_format(self, request: Mapping[str, Any]) -> str | None:
        wanted = request.get("response_format")
        if isinstance(wanted, str) and "_" in wanted and wanted.split("_")[0] in _CODECS:
            return wanted  # already an ElevenLabs output_format
        return super().speech_format(request)

    async def speech(self, request: dict[str, Any], *, model: str, timeout: float) -> Result:
        wanted = self.speech_format(request)
        text = request.get("input")
        if not isinstance(text, str) or not text:
            raise bad_request("'input' is required")
        voice = request.get("voice") or self.config.options.get("default_voice")
        if isinstance(voice, dict):  # OpenAI's custom-voice form {"id": ...}
            voice = voice.get("id")
        if not isinstance(voice, str) or not voice:
            raise bad_request("'voice' is required")
        # The id goes into the path: "../../v1/user" must not reach another endpoint.
        voice_id = path_segment((self.config.options.get("voices") or {}).get(voice, voice), "voice")
        output_format = _output_format(wanted or "mp3")
        body: dict[str, Any] = {"text": text, "model_id": model or DEFAULT_MODEL}
        settings = dict(request.get("voice_settings") or {})
        if request.get("speed") is not None:
            settings["speed"] = request["speed"]
        if settings:
            body["voice_settings"] = settings
        for name in _PASSTHROUGH:
            if request.get(name) is not None:
                body[name] = request[name]
        response = await self.client.post(
            f"{self.base_url}/v1/text-to-speech/{voice_id}",
            params={"output_format": output_format},
            json=body,
            headers=self._headers(),
            timeout=self.timeout(timeout),
        )
        await self.check(response)
        codec = output_format.split("_")[0]
        if codec in AUDIO_TYPES:
            media_type = served_type(self.kind, codec, response)
        else:  # u-law and A-law: no OpenAI name, served as ElevenLabs labels them
            media_type = response.headers.get("content-type", "audio/basic").split(";")[0]
        if media_type == "application/json":  # a 200 that is not audio is not usable
            raise UpstreamError(
                Classification(Outcome.FAILURE, "malformed_response"),
                status=response.status_code,
                message="expected audio, got JSON",
                body=response.content,
            )
        counted = response.headers.get("x-character-count", "")
        usage = Usage(
            characters=int(counted) if counted.isdigit() else len(text),
            audio_seconds=_seconds(output_format, len(response.content)),
        )
        return Result(content=response.content, media_type=media_type, usage=usage, model=body["model_id"])

    async def voices(self, *, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The account's voices: voice_id, name, category, labels."""
        data = await self._get("/v1/voices", timeout)
        voices = data.get("voices") if isinstance(data, dict) else None
        if not isinstance(voices, list):
            raise malformed("no 'voices' in the answer", data=data)
        return [{k: v.get(k) for k in ("voice_id", "name", "category", "labels")} for v in voices]

    async def list_models(self, *, timeout: float) -> list[ModelInfo]:
        data = await self._get("/v1/models", timeout)
        if not isinstance(data, list):
            raise malformed("/v1/models is not a list", data=data)
        return [
            ModelInfo(
                name=str(m.get("model_id")),
                capabilities=frozenset({"tts"}),
                details={
                    "name": m.get("name"),
                    "max_characters": m.get("maximum_text_length_per_request"),
                    "languages": [lang.get("language_id") for lang in m.get("languages") or []],
                    "character_cost_multiplier": (m.get("model_rates") or {}).get("character_cost_multiplier"),
                },
            )
            for m in data
            if isinstance(m, dict) and m.get("can_do_text_to_speech", True)
        ]

    async def user(self, *, timeout: float = 10.0) -> dict[str, Any]:
        data = await self._get("/v1/user", timeout)
        if not isinstance(data, dict):
            raise malformed("/v1/user is not an object", data=data)
        return data

    async def probe(self, *, timeout: float, deep: bool = False, model: str | None = None) -> dict[str, Any]:
        """The subscription's character balance; a key without `user_read` probes the voices."""
        try:
            subscription = (await self.user(timeout=timeout)).get("subscription") or {}
        except UpstreamError as exc:
            if b"missing_permissions" not in exc.body:
                raise
            return {"voices": len(await self.voices(timeout=timeout))}
        used, limit = subscription.get("character_count"), subscription.get("character_limit")
        details: dict[str, Any] = {"tier": subscription.get("tier"), "characters_used": used, "character_limit": limit}
        if isinstance(used, int) and isinstance(limit, int):
            details["characters_left"] = max(0, limit - used)
        return details

    # -- plumbing -----------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"xi-api-key": self.config.api_key} if self.config.api_key else {}

    async def _get(self, path: str, timeout: float) -> Any:
        response = await self.client.get(
            f"{self.base_url}{path}", headers=self._headers(), timeout=self.timeout(timeout)
        )
        await self.check(response)
        try:
            return response.json()
        except ValueError as exc:
            raise UpstreamError(
                Classification(Outcome.FAILURE, "malformed_response"),
                status=response.status_code,
                message=f"the answer is not JSON: {exc}",
                body=response.content,
            ) from exc


def _output_format(response_format: str) -> str:
    if response_format in _FORMATS:
        return _FORMATS[response_format]
    if response_format.split("_")[0] in _CODECS:
        return response_format  # already an ElevenLabs output_format
    raise bad_request(f"response_format {response_format!r} is not available from ElevenLabs")


def _seconds(output_format: str, size: int) -> float:
    """Audio length from its byte size, for constant-bitrate formats; 0 when unknown."""
    parts = output_format.split("_")
    try:
        if parts[0] == "mp3" and len(parts) == 3:
            return round(size * 8 / (int(parts[2]) * 1000), 2)
        if parts[0] == "pcm":
            return round(size / (2 * int(parts[1])), 2)
        if parts[0] in ("ulaw", "alaw"):
            return round(size / int(parts[1]), 2)
    except (ValueError, IndexError, ZeroDivisionError):
        return 0.0
    return 0.0

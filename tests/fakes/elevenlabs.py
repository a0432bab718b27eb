"""A fake ElevenLabs API (`/v1/*`), authenticated with the `xi-api-key` header.

Text to speech answers audio bytes in the asked `output_format` (MPEG frames for mp3, raw
16-bit PCM, a RIFF WAV, ...) with ElevenLabs' headers (`request-id`, `history-item-id`,
`x-character-count`). Errors are ElevenLabs' `{"detail": {"status", "message"}}`: 401
`invalid_api_key`, 401 `quota_exceeded` once the subscription's characters run out, 404
`voice_not_found`, 400 `max_character_limit_exceeded`, 429 `too_many_concurrent_requests`
or `system_busy`; a missing field is FastAPI's 422 `{"detail": [...]}`.
"""

from __future__ import annotations

import io
import uuid
import wave
from typing import Any

from aiohttp import web

from .base import FakeServer, Fault

_MESSAGES = {
    "invalid_api_key": "Invalid API key",
    "quota_exceeded": "This request exceeds your quota of 10000. You have 0 credits remaining, while 120 credits are required for this request.",
    "too_many_concurrent_requests": "You are sending too many concurrent requests. Please wait for the previous requests to finish.",
    "system_busy": "Our services are experiencing high levels of traffic and your request could not be processed.",
    "voice_not_found": "A voice with the voice_id was not found.",
    "internal_server_error": "An internal server error occurred.",
}
_DEFAULT_STATUS = {
    401: "invalid_api_key",
    429: "too_many_concurrent_requests",
    404: "voice_not_found",
    400: "invalid_request",
}

VOICES = [
    {
        "voice_id": "21m00Tcm4TlvDq8ikWAM",
        "name": "Rachel",
        "category": "premade",
        "labels": {"accent": "american", "gender": "female", "age": "young", "use_case": "narration"},
    },
    {
        "voice_id": "pNInz6obpgDQGcFmaJgB",
        "name": "Adam",
        "category": "premade",
        "labels": {"accent": "american", "gender": "male", "age": "middle_aged", "use_case": "narration"},
    },
    {
        "voice_id": "EXAVITQu4vr4xnSDxMaL",
        "name": "Sarah",
        "category": "premade",
        "labels": {"accent": "american", "gender": "female", "age": "young", "use_case": "news"},
    },
]

MODELS = [
    ("eleven_multilingual_v2", "Eleven Multilingual v2", True, 10_000),
    ("eleven_flash_v2_5", "Eleven Flash v2.5", True, 40_000),
    ("eleven_turbo_v2_5", "Eleven Turbo v2.5", True, 40_000),
    ("eleven_multilingual_sts_v2", "Eleven Multilingual v2 (speech to speech)", False, 10_000),
]


def _detail(status: str, message: str | None = None) -> dict[str, Any]:
    return {"detail": {"status": status, "message": message or _MESSAGES.get(status, status)}}


def audio(output_format: str, characters: int) -> tuple[bytes, str]:
    """Bytes of roughly 60 ms of silence per character, in `output_format`, and their type."""
    codec, _, rest = output_format.partition("_")
    rate_text, _, bitrate_text = rest.partition("_")
    rate = int(rate_text) if rate_text.isdigit() else 44100
    seconds = max(0.2, 0.06 * characters)
    if codec == "mp3":
        bitrate = int(bitrate_text or 128) * 1000
        # MPEG-1 Layer III frame header, 44.1 kHz, no padding; the bitrate index for 128 kbps is 9.
        index = {32: 1, 64: 5, 96: 7, 128: 9, 192: 11}.get(bitrate // 1000, 9)
        header = bytes([0xFF, 0xFB, (index << 4) | 0x00, 0x64])
        frame = header + bytes(144 * bitrate // 44100 - 4)
        return frame * max(1, int(seconds * 44100 / 1152)), "audio/mpeg"
    if codec == "pcm":
        return bytes(2 * int(rate * seconds)), "audio/pcm"
    if codec == "ulaw":
        return b"\xff" * int(8000 * seconds), "audio/basic"
    if codec == "wav":
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(rate)
            out.writeframes(bytes(2 * int(rate * seconds)))
        return buffer.getvalue(), "audio/wav"
    if codec == "opus":
        return b"OggS" + bytes(int(16000 * seconds)), "audio/ogg"
    raise ValueError(output_format)


class FakeElevenLabs(FakeServer):
    kind = "elevenlabs"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str = "el-test-key",
        character_limit: int = 10_000,
    ) -> None:
        super().__init__(host, port)
        self.api_key = api_key
        self.character_limit = self._initial_limit = character_limit
        self.character_count = 0
        self.restricted_keys: set[str] = set()  # keys without the user_read permission

    def reset(self) -> None:
        super().reset()
        self.character_limit = self._initial_limit
        self.character_count = 0
        self.restricted_keys.clear()

    def build_app(self) -> web.Application:
        app = super().build_app()
        app.middlewares.append(self._check_key)
        return app

    @web.middleware
    async def _check_key(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/v1/"):
            key = request.headers.get("xi-api-key")
            if key not in {self.api_key, *self.restricted_keys}:
                return web.json_response(_detail("invalid_api_key"), status=401)
        return await handler(request)

    def error_body(self, status: int, fault: Fault) -> dict[str, Any]:
        code = fault.error_code or _DEFAULT_STATUS.get(status, "internal_server_error")
        return _detail(code)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/text-to-speech/{voice_id}", self.text_to_speech)
        app.router.add_get("/v1/voices", self.voices)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/v1/user", self.user)

    async def text_to_speech(self, request: web.Request) -> web.Response:
        voice_id = request.match_info["voice_id"]
        try:
            data = await request.json()
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            return web.json_response(
                {"detail": [{"type": "missing", "loc": ["body", "text"], "msg": "Field required", "input": data}]},
                status=422,
            )
        if voice_id not in {v["voice_id"] for v in VOICES}:
            return web.json_response(
                _detail("voice_not_found", f"A voice with the voice_id {voice_id} was not found."), status=404
            )
        model_id = data.get("model_id", "eleven_multilingual_v2")
        model = next((m for m in MODELS if m[0] == model_id), None)
        if model is None or not model[2]:
            return web.json_response(
                _detail(
                    "model_not_found", f"A model with model ID {model_id} does not exist or cannot do text to speech."
                ),
                status=400,
            )
        text = data["text"]
        if len(text) > model[3]:
            return web.json_response(
                _detail(
                    "max_character_limit_exceeded",
                    f"This request's text has {len(text)} characters and exceeds the character limit of {model[3]} characters.",
                ),
                status=400,
            )
        if self.character_count + len(text) > self.character_limit:
            left = self.character_limit - self.character_count
            return web.json_response(
                _detail(
                    "quota_exceeded",
                    f"This request exceeds your quota of {self.character_limit}. You have {left} credits remaining, "
                    f"while {len(text)} credits are required for this request.",
                ),
                status=401,
            )
        output_format = request.query.get("output_format", "mp3_44100_128")
        try:
            body, content_type = audio(output_format, len(text))
        except ValueError:
            return web.json_response(
                _detail("invalid_output_format", f"Invalid output format: {output_format}"), status=400
            )
        self.character_count += len(text)
        return web.Response(
            body=body,
            content_type=content_type,
            headers={
                "request-id": uuid.uuid4().hex,
                "history-item-id": uuid.uuid4().hex[:20],
                "x-character-count": str(len(text)),
            },
        )

    async def voices(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "voices": [
                    {
                        **v,
                        "description": None,
                        "preview_url": f"https://storage.example/{v['voice_id']}.mp3",
                        "available_for_tiers": [],
                        "settings": None,
                        "samples": None,
                        "high_quality_base_model_ids": [
                            "eleven_multilingual_v2",
                            "eleven_flash_v2_5",
                            "eleven_turbo_v2_5",
                        ],
                    }
                    for v in VOICES
                ],
                "has_more": False,
                "total_count": len(VOICES),
            }
        )

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response(
            [
                {
                    "model_id": model_id,
                    "name": name,
                    "can_be_finetuned": True,
                    "can_do_text_to_speech": tts,
                    "can_do_voice_conversion": not tts,
                    "can_use_style": True,
                    "can_use_speaker_boost": True,
                    "serves_pro_voices": False,
                    "token_cost_factor": 1.0,
                    "description": f"{name}.",
                    "requires_alpha_access": False,
                    "max_characters_request_free_user": 2_500,
                    "max_characters_request_subscribed_user": limit,
                    "maximum_text_length_per_request": limit,
                    "languages": [{"language_id": "en", "name": "English"}, {"language_id": "de", "name": "German"}],
                    "model_rates": {"character_cost_multiplier": 1.0 if "multilingual" in model_id else 0.5},
                    "concurrency_group": "standard",
                }
                for model_id, name, tts, limit in MODELS
            ]
        )

    async def user(self, request: web.Request) -> web.Response:
        if request.headers.get("xi-api-key") in self.restricted_keys:
            return web.json_response(
                _detail(
                    "missing_permissions",
                    "The API key you used is missing the permission user_read to execute this operation.",
                ),
                status=401,
            )
        return web.json_response(
            {
                "user_id": "u_1234567890",
                "subscription": {
                    "tier": "starter",
                    "character_count": self.character_count,
                    "character_limit": self.character_limit,
                    "can_extend_character_limit": False,
                    "allowed_to_extend_character_limit": False,
                    "next_character_count_reset_unix": 1_767_225_600,
                    "voice_limit": 10,
                    "status": "active",
                },
                "is_new_user": False,
                "xi_api_key": self.api_key[:4] + "…",
                "can_use_delayed_payment_methods": False,
                "is_onboarding_completed": True,
                "first_name": "Ada",
            }
        )

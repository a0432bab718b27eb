"""A fake of OpenAI's REST API (`/v1/...`), faithful enough that the official `openai` SDK
cannot tell it from the real one.

Answers are deterministic:
- chat: "Echo: <text of the last user message>"; after a `tool` message,
  "Tool result: <its content>". With `response_format` json_object or json_schema the content
  is a JSON object instead ({"echo": ...}, or a sample of the schema).
- tool calls: when the request has `tools` (and `tool_choice` is not "none") the answer is a
  call to the first tool named in the last user message, or to the forced one
  (`tool_choice` "required" or a named function). Its arguments are the first JSON object
  written in that message, else a sample built from the tool's parameter schema. So
  `"What is the weather? call get_weather {"city": "Paris"}"` calls get_weather(city=Paris).
- `max_tokens`/`max_completion_tokens` cut the answer to that many words (finish "length");
  `stop` cuts it before the first stop sequence.
- tokens are words: prompt_tokens counts the words of every message, completion_tokens
  those of the answer.
- embeddings: unit vectors seeded from (model, text); `encoding_format` float or base64
  (the SDK's default). images: a solid-colour PNG as b64_json or as a URL served here.
  speech: silent audio in the asked `response_format` (MP3 frames, a WAV, raw PCM, FLAC, Ogg
  Opus, ADTS AAC: the first bytes each format starts with) under its content type. transcriptions: the text
  of the uploaded file if it is UTF-8, else a note of its size.

Auth: `Authorization: Bearer <api_key>` (default `API_KEY`); `api_key=None` accepts any or
none, as llama.cpp does. Models outside `models` get OpenAI's 404 `model_not_found`
(`models=None` accepts every name). Errors use OpenAI's body
`{"error": {"message", "type", "param", "code"}}`; every answer carries `x-request-id`,
`openai-version` and `x-ratelimit-*` headers (a 429 shows the exhausted limit).

Fault extras (see tests/fakes/base.py): `error_code` with a status picks the error code
(e.g. `insufficient_quota`); `error_code` without a status makes a stream send an error
chunk `data: {"error": ...}` after its first content chunk and stop without `[DONE]`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import struct
import time
import uuid
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from aiohttp import web

from .base import FAULT, FakeServer, Fault, sse

__all__ = ["API_KEY", "DEFAULT_MODELS", "FakeOpenAI", "Reply", "compose_reply"]

API_KEY = "sk-fake-openai-key"

DEFAULT_MODELS = (
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1-mini",
    "o3-mini",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "text-embedding-ada-002",
    "dall-e-2",
    "dall-e-3",
    "gpt-image-1",
    "tts-1",
    "gpt-4o-mini-tts",
    "whisper-1",
    "gpt-4o-transcribe",
)

FINGERPRINT = "fp_fake0001"

# status -> (type, code, message): what OpenAI sends for each status.
_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: (
        "request_forbidden",
        "unsupported_country_region_territory",
        "Country, region, or territory not supported",
    ),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model does not exist or you do not have access to it.",
    ),
    409: ("invalid_request_error", None, "Conflict."),
    413: ("invalid_request_error", None, "Request too large."),
    422: ("invalid_request_error", None, "Unprocessable entity."),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s.",
    ),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
    504: ("server_error", None, "Gateway timeout."),
}
_QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors."
)


# -- the deterministic "model", shared with the Anthropic fake --------------------------------


def text_of(content: Any) -> str:
    """The text of an OpenAI or Anthropic message content (string or list of parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    if isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif part.get("type") == "tool_result":
                parts.append(text_of(part.get("content")))
            elif part.get("type") in ("image_url", "image", "input_image"):
                parts.append("[image]")
    return " ".join(p for p in parts if p)


def count_words(text: str) -> int:
    return len(text.split())


def first_json_object(text: str) -> dict[str, Any] | None:
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    return None


def sample(schema: Any) -> Any:
    """A value that satisfies a (simple) JSON schema, the same every time."""
    if not isinstance(schema, dict):
        return "sample"
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {name: sample(sub) for name, sub in props.items()}
    return {"integer": 1, "number": 1.5, "boolean": True, "array": [], "null": None}.get(kind, "sample")


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass
class Reply:
    """What the fake model says, before it is put in either provider's wire format."""

    text: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish: str = "stop"  # stop | length | tool_calls | stop_sequence
    stop_sequence: str | None = None
    prompt_tokens: int = 0

    @property
    def completion_tokens(self) -> int:
        return count_words(self.text) + sum(count_words(json.dumps(c.arguments)) for c in self.tool_calls)

    def pieces(self) -> list[str]:
        """The text split as a stream sends it: "Echo:", " hello", " world"."""
        words = self.text.split(" ")
        return [w if i == 0 else " " + w for i, w in enumerate(words)] if self.text else []


def compose_reply(
    *,
    last_role: str,
    last_text: str,
    user_text: str,
    tools: list[tuple[str, Any]],
    forced_tool: str | None,
    tools_allowed: bool,
    max_words: int | None,
    stop: list[str],
    prompt_tokens: int,
    json_schema: Any = None,
    call_id: str,
) -> Reply:
    """The fake model. `tools` are (name, parameter schema) pairs."""
    reply = Reply(text="", prompt_tokens=prompt_tokens)
    if last_role == "tool":
        reply.text = f"Tool result: {last_text}"
    elif tools and tools_allowed:
        lowered = user_text.lower()
        named = next((n for n, _ in tools if n.lower() in lowered), None)
        name = forced_tool or named
        if name is not None:
            schema = dict(tools).get(name)
            args = first_json_object(user_text)
            reply.text = ""
            reply.tool_calls = [ToolCall(call_id, name, args if args is not None else sample(schema))]
            reply.finish = "tool_calls"
            return reply
    if not reply.text:
        reply.text = json.dumps(json_schema) if json_schema is not None else f"Echo: {user_text}"
    for sequence in stop:
        if sequence and sequence in reply.text:
            reply.text = reply.text[: reply.text.index(sequence)].rstrip()
            reply.finish, reply.stop_sequence = "stop_sequence", sequence
            break
    if max_words is not None and count_words(reply.text) > max_words:
        reply.text = " ".join(reply.text.split(" ")[: max(max_words, 0)])
        reply.finish = "length"
    return reply


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A valid solid-colour PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


def vector(model: str, text: str, dimensions: int) -> list[float]:
    seed = int.from_bytes(hashlib.sha256(f"{model}\0{text}".encode()).digest()[:8], "big")
    rng = random.Random(seed)
    values = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    return [round(v / norm, 8) for v in values]


_AUDIO_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/opus",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}


def audio(text: str, response_format: str) -> bytes:
    """Silent audio about as long as the text would take to say (0.4 s a word)."""
    seconds = max(1, count_words(text)) * 0.4
    if response_format == "wav":
        samples = int(24000 * seconds)
        data = b"\x00\x00" * samples
        fmt = struct.pack("<HHIIHH", 1, 1, 24000, 48000, 2, 16)
        return (
            b"RIFF"
            + struct.pack("<I", 36 + len(data))
            + b"WAVE"
            + b"fmt "
            + struct.pack("<I", 16)
            + fmt
            + b"data"
            + struct.pack("<I", len(data))
            + data
        )
    if response_format == "pcm":  # 24 kHz 16-bit mono samples, no header
        return b"\x00\x00" * int(24000 * seconds)
    if response_format == "flac":  # the stream marker and a STREAMINFO block, then silence
        return b"fLaC\x80\x00\x00\x22" + bytes(34) + bytes(int(2000 * seconds))
    if response_format == "opus":  # an Ogg page carrying the OpusHead
        return b"OggS\x00\x02" + bytes(20) + b"\x01\x13OpusHead\x01\x01" + bytes(int(2000 * seconds))
    if response_format == "aac":  # ADTS frames (MPEG-4 AAC LC, 24 kHz mono)
        frame = b"\xff\xf1\x58\x40\x02\x1f\xfc" + bytes(9)
        return frame * max(1, int(seconds * 23))
    # MPEG-1 layer III, 128 kbit/s, 44.1 kHz frames of silence after an ID3 tag.
    frame = b"\xff\xfb\x90\x64" + b"\x00" * 413
    return b"ID3\x04\x00\x00\x00\x00\x00\x00" + frame * max(1, int(seconds * 38))


# -- the server -----------------------------------------------------------------------------


class FakeOpenAI(FakeServer):
    kind = "openai"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str | None = API_KEY,
        models: Iterable[str] | None = DEFAULT_MODELS,
    ) -> None:
        super().__init__(host, port)
        self.api_key = api_key
        self.models = list(models) if models is not None else None
        self.images_served: dict[str, bytes] = {}

    # -- frame hooks ----------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        app.on_response_prepare.append(self._add_headers)
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.router.add_post("/v1/embeddings", self.embeddings)
        app.router.add_post("/v1/images/generations", self.images)
        app.router.add_get("/v1/images/files/{name}", self.image_file)
        app.router.add_post("/v1/audio/speech", self.speech)
        app.router.add_post("/v1/audio/transcriptions", self.transcriptions)
        app.router.add_get("/v1/models", self.list_models)
        app.router.add_get("/v1/models/{model}", self.get_model)
        app.router.add_route("*", "/{tail:.*}", self.unknown_url)

    def error_body(self, status: int, fault: Fault) -> dict[str, Any]:
        if fault.error_code in ("insufficient_quota", "billing_hard_limit_reached"):
            return _error("insufficient_quota", fault.error_code, _QUOTA_MESSAGE)
        kind, code, message = _ERRORS.get(
            status,
            ("server_error" if status >= 500 else "invalid_request_error", None, f"HTTP {status}"),
        )
        return _error(kind, fault.error_code or code, message)

    async def _add_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        if request.path.startswith("/__"):
            return
        headers = response.headers
        headers.setdefault("x-request-id", f"req_{uuid.uuid4().hex}")
        headers.setdefault("openai-version", "2020-10-01")
        headers.setdefault("openai-organization", "user-fake")
        headers.setdefault("openai-processing-ms", "7")
        fault: Fault | None = request.get(FAULT)
        limited = response.status == 429 and not (fault and fault.error_code)
        for name, value in {
            "x-ratelimit-limit-requests": "10000",
            "x-ratelimit-limit-tokens": "30000000",
            "x-ratelimit-remaining-requests": "0" if limited else "9999",
            "x-ratelimit-remaining-tokens": "29999000",
            "x-ratelimit-reset-requests": "1s" if limited else "6ms",
            "x-ratelimit-reset-tokens": "2ms",
        }.items():
            headers.setdefault(name, value)

    # -- shared checks --------------------------------------------------------------------------

    def _auth(self, request: web.Request) -> web.Response | None:
        if self.api_key is None:
            return None
        header = request.headers.get("Authorization", "")
        if not header:
            return _fail(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), "
                "or as the password field (with blank username) if you're accessing the API "
                "from your browser and are prompted for a username and password. You can "
                "obtain an API key from https://platform.openai.com/account/api-keys.",
            )
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or key.strip() != self.api_key:
            masked = key[:3] + "*" * max(0, len(key) - 7) + key[-4:] if len(key) > 7 else "*" * len(key)
            return _fail(
                401,
                f"Incorrect API key provided: {masked}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )
        return None

    async def _json_body(self, request: web.Request) -> tuple[dict[str, Any], web.Response | None]:
        try:
            body = json.loads(await request.read() or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return {}, _fail(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely "
                "means you aren't using your HTTP library correctly. The OpenAI API "
                "expects a JSON payload, but what was sent was not valid JSON.)",
            )
        return body, None

    def _model_error(self, body: dict[str, Any], required: bool = True) -> web.Response | None:
        model = body.get("model")
        if model is None:
            if not required:
                return None
            return _fail(400, "you must provide a model parameter")
        if not isinstance(model, str):
            return _fail(400, f"{model!r} is not of type 'string' - 'model'", param="model")
        if self.models is not None and model not in self.models:
            return _fail(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
        return None

    async def _prelude(self, request: web.Request, *required: str) -> tuple[dict[str, Any], web.Response | None]:
        denied = self._auth(request)
        if denied is not None:
            return {}, denied
        body, bad = await self._json_body(request)
        if bad is not None:
            return body, bad
        bad = self._model_error(body)
        if bad is not None:
            return body, bad
        for name in required:
            if body.get(name) in (None, ""):
                return body, _fail(
                    400,
                    f"Missing required parameter: '{name}'.",
                    param=name,
                    code="missing_required_parameter",
                )
        return body, None

    # -- chat -----------------------------------------------------------------------------------

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        body, bad = await self._prelude(request, "messages")
        if bad is not None:
            return bad
        messages = body["messages"]
        if not isinstance(messages, list) or not messages:
            return _fail(400, "[] is too short - 'messages'", param="messages")
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in (
                "system",
                "developer",
                "user",
                "assistant",
                "tool",
                "function",
            ):
                return _fail(
                    400,
                    f"Invalid value for 'messages[{i}].role'.",
                    param=f"messages[{i}].role",
                    code="invalid_value",
                )
        stream = bool(body.get("stream"))
        if body.get("stream_options") is not None and not stream:
            return _fail(
                400,
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                param="stream_options",
            )
        reply = self.reply(body)
        if stream:
            return await self.stream(request, self._chunks(body, reply, request.get(FAULT)))
        return web.json_response(self.completion(body, reply))

    def reply(self, body: dict[str, Any]) -> Reply:
        messages = body["messages"]
        last = messages[-1]
        user_text = next((text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
        tools = [
            (t["function"].get("name", ""), t["function"].get("parameters"))
            for t in body.get("tools") or []
            if isinstance(t, dict) and isinstance(t.get("function"), dict)
        ]
        choice = body.get("tool_choice", "auto")
        forced = None
        if isinstance(choice, dict):
            forced = (choice.get("function") or {}).get("name")
        elif choice == "required" and tools:
            lowered = user_text.lower()
            forced = next((n for n, _ in tools if n.lower() in lowered), tools[0][0])
        fmt = body.get("response_format") or {}
        schema = None
        if fmt.get("type") == "json_object":
            schema = {"echo": user_text}
        elif fmt.get("type") == "json_schema":
            schema = sample((fmt.get("json_schema") or {}).get("schema"))
        stop = body.get("stop") or []
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        reply = compose_reply(
            last_role=str(last.get("role")),
            last_text=text_of(last.get("content")),
            user_text=user_text,
            tools=tools,
            forced_tool=forced,
            tools_allowed=choice != "none",
            max_words=limit if isinstance(limit, int) else None,
            stop=[stop] if isinstance(stop, str) else list(stop),
            prompt_tokens=sum(count_words(text_of(m.get("content"))) for m in messages),
            json_schema=schema,
            call_id=f"call_{uuid.uuid4().hex[:24]}",
        )
        if reply.finish == "stop_sequence":
            reply.finish = "stop"
        return reply

    def _usage(self, reply: Reply) -> dict[str, Any]:
        return {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def completion(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.text if not reply.tool_calls else None,
            "refusal": None,
            "annotations": [],
        }
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                }
                for c in reply.tool_calls
            ]
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish}],
            "usage": self._usage(reply),
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT,
        }

    def _chunks(self, body: dict[str, Any], reply: Reply, fault: Fault | None) -> Iterator[bytes]:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        head = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body["model"],
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT,
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            data = {
                **head,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
            if include_usage:
                data["usage"] = None
            return sse(data)

        yield chunk({"role": "assistant", "content": "" if not reply.tool_calls else None, "refusal": None})
        for n, piece in enumerate(reply.pieces()):
            yield chunk({"content": piece})
            if n == 0 and fault is not None and fault.status is None and fault.error_code:
                yield sse(
                    {
                        "error": {
                            "message": "The server had an error while processing your request.",
                            "type": "server_error",
                            "param": None,
                            "code": fault.error_code,
                        }
                    }
                )
                return
        for index, call in enumerate(reply.tool_calls):
            yield chunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call.id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": ""},
                        }
                    ]
                }
            )
            arguments = json.dumps(call.arguments)
            step = max(1, len(arguments) // 3)
            for start in range(0, len(arguments), step):
                yield chunk(
                    {
                        "tool_calls": [
                            {
                                "index": index,
                                "function": {"arguments": arguments[start : start + step]},
                            }
                        ]
                    }
                )
        yield chunk({}, reply.finish)
        if include_usage:
            yield sse({**head, "choices": [], "usage": self._usage(reply)})
        yield sse("[DONE]")

    # -- embeddings, images, audio --------------------------------------------------------------

    async def embeddings(self, request: web.Request) -> web.Response:
        body, bad = await self._prelude(request, "input")
        if bad is not None:
            return bad
        model, raw = body["model"], body["input"]
        if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int)):
            raw = [raw]
        if not isinstance(raw, list) or not raw:
            return _fail(
                400,
                "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
                param="input",
            )
        texts = [x if isinstance(x, str) else " ".join(map(str, x)) for x in raw]
        dimensions = body.get("dimensions")
        if dimensions is not None and model == "text-embedding-ada-002":
            return _fail(400, "This model does not support specifying dimensions.", param="dimensions")
        size = dimensions or (3072 if model.endswith("-large") else 1536)
        encoding = body.get("encoding_format", "float")
        data = []
        for index, text in enumerate(texts):
            values = vector(model, text, size)
            embedding: Any = values
            if encoding == "base64":
                embedding = base64.b64encode(struct.pack(f"<{size}f", *values)).decode()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(max(1, count_words(t)) for t in texts)
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def images(self, request: web.Request) -> web.Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        body, bad = await self._json_body(request)
        if bad is not None:
            return bad
        body.setdefault("model", "dall-e-2")
        bad = self._model_error(body)
        if bad is None and not body.get("prompt"):
            bad = _fail(
                400,
                "Missing required parameter: 'prompt'.",
                param="prompt",
                code="missing_required_parameter",
            )
        if bad is not None:
            return bad
        model, prompt = body["model"], str(body["prompt"])
        size = str(body.get("size") or "256x256")
        try:
            width, height = (int(x) for x in size.split("x"))
        except ValueError:
            width = height = 256
        gpt_image = model.startswith("gpt-image")
        fmt = "b64_json" if gpt_image else body.get("response_format", "url")
        digest = hashlib.sha256(prompt.encode()).digest()
        items = []
        for n in range(int(body.get("n") or 1)):
            picture = png(min(width, 64), min(height, 64), (digest[0], digest[1], (digest[2] + n) % 256))
            item: dict[str, Any]
            if fmt == "b64_json":
                item = {"b64_json": base64.b64encode(picture).decode()}
            else:
                name = f"img-{uuid.uuid4().hex[:16]}.png"
                self.images_served[name] = picture
                item = {"url": f"{self.url}/v1/images/files/{name}"}
            if model == "dall-e-3":
                item["revised_prompt"] = prompt
            items.append(item)
        answer: dict[str, Any] = {"created": int(time.time()), "data": items}
        if gpt_image:
            words = count_words(prompt)
            answer.update(
                background="opaque",
                output_format="png",
                quality="high",
                size=size,
                usage={
                    "input_tokens": words,
                    "output_tokens": 272 * len(items),
                    "total_tokens": words + 272 * len(items),
                    "input_tokens_details": {"text_tokens": words, "image_tokens": 0},
                },
            )
        return web.json_response(answer)

    async def image_file(self, request: web.Request) -> web.Response:
        picture = self.images_served.get(request.match_info["name"])
        if picture is None:
            raise web.HTTPNotFound()
        return web.Response(body=picture, content_type="image/png")

    async def speech(self, request: web.Request) -> web.Response:
        body, bad = await self._prelude(request, "input", "voice")
        if bad is not None:
            return bad
        fmt = body.get("response_format", "mp3")
        if fmt not in _AUDIO_TYPES:
            return _fail(
                400,
                f"Invalid value: '{fmt}'. Supported values are: {', '.join(map(repr, _AUDIO_TYPES))}.",
                param="response_format",
                code="invalid_value",
            )
        return web.Response(body=audio(str(body["input"]), fmt), content_type=_AUDIO_TYPES[fmt])

    async def transcriptions(self, request: web.Request) -> web.Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        content_type = request.headers.get("Content-Type", "")
        if not content_type.startswith("multipart/form-data"):
            return _fail(400, "Invalid Content-Type header (application/json), expected multipart/form-data.")
        form: dict[str, str] = {}
        upload: bytes | None = None
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
        bad = self._model_error(form)
        if bad is not None:
            return bad
        if upload is None:
            return _fail(
                400,
                "Missing required parameter: 'file'.",
                param="file",
                code="missing_required_parameter",
            )
        try:
            text = upload.decode("utf-8").strip()
        except UnicodeDecodeError:
            text = f"[{len(upload)} bytes of audio]"
        seconds = round(max(1, count_words(text)) * 0.4, 2)
        fmt = form.get("response_format", "json")
        if fmt == "text":
            return web.Response(text=text + "\n", content_type="text/plain")
        if fmt in ("srt", "vtt"):
            sep = "," if fmt == "srt" else "."
            millis = int(seconds * 1000)
            stamp = f"00:00:00{sep}000 --> 00:00:{millis // 1000:02d}{sep}{millis % 1000:03d}"
            lead = "1\n" if fmt == "srt" else "WEBVTT\n\n"
            return web.Response(text=f"{lead}{stamp}\n{text}\n\n", content_type="text/plain")
        if fmt == "verbose_json":
            return web.json_response(
                {
                    "task": "transcribe",
                    "language": form.get("language", "english"),
                    "duration": seconds,
                    "text": text,
                    "segments": [
                        {
                            "id": 0,
                            "seek": 0,
                            "start": 0.0,
                            "end": seconds,
                            "text": text,
                            "tokens": [],
                            "temperature": 0.0,
                            "avg_logprob": -0.1,
                            "compression_ratio": 1.0,
                            "no_speech_prob": 0.0,
                        }
                    ],
                    "usage": {"type": "duration", "seconds": int(seconds + 0.999)},
                }
            )
        if form["model"].startswith("whisper"):
            usage: dict[str, Any] = {"type": "duration", "seconds": int(seconds + 0.999)}
        else:
            words = count_words(text)
            usage = {
                "type": "tokens",
                "input_tokens": words,
                "output_tokens": words,
                "total_tokens": 2 * words,
                "input_token_details": {"text_tokens": 0, "audio_tokens": words},
            }
        return web.json_response({"text": text, "usage": usage})

    # -- models and the rest --------------------------------------------------------------------

    def _model_item(self, name: str) -> dict[str, Any]:
        owner = "openai" if name.startswith(("gpt-4o", "o3")) else "system"
        return {"id": name, "object": "model", "created": 1686935002, "owned_by": owner}

    async def list_models(self, request: web.Request) -> web.Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        return web.json_response({"object": "list", "data": [self._model_item(m) for m in self.models or []]})

    async def get_model(self, request: web.Request) -> web.Response:
        denied = self._auth(request)
        if denied is not None:
            return denied
        name = request.match_info["model"]
        if self.models is not None and name not in self.models:
            return _fail(404, f"The model '{name}' does not exist", param="model", code="model_not_found")
        return web.json_response(self._model_item(name))

    async def unknown_url(self, request: web.Request) -> web.Response:
        return _fail(404, f"Invalid URL ({request.method} {request.path})")


def _error(kind: str, code: str | None, message: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _fail(status: int, message: str, *, param: str | None = None, code: str | None = None) -> web.Response:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return web.json_response(_error(kind, code, message, param), status=status)

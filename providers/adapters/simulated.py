"""A provider that lives in the process: no network, seeded, for demos and failover drills.

Its behaviour comes from `config.options` (see `Behaviour.from_options`): latency (a mean with
uniform jitter, or a lognormal given p50 and p95), rates of 503 failures, 429 rate limits with
a Retry-After, 429 exhausted quota and timeouts, streams cut mid-way, and an outage schedule
(`{"period_s": 600, "down_s": 60}` or explicit `{"windows": [[start, end], ...]}` in clock
seconds or ISO-8601) during which every call fails. Errors are built exactly as a real OpenAI
answer would be (`UpstreamError.from_response` on OpenAI's error body), so the engine classifies
them the same way. A timeout sleeps past the attempt's budget so that the engine's own timeout
fires; if nothing cancels the sleep it then raises `httpx.ReadTimeout`.

Answers are deterministic for a given request: chat text, streamed chunks, unit embedding
vectors, a tiny valid PNG, a short valid WAV, "[DE] text" translations and a tiny valid MP4
(as a `data:` URL) for a video, with usage.
The RNG, clock and sleep are injectable, so tests need no real waiting.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import math
import random
import struct
import time
import uuid
import wave
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from providers.engine import UpstreamError

from .base import Adapter, ChatStream, ModelInfo, ProviderConfig, Result, Usage

_Z95 = 1.6448536269514722  # the standard normal's 95th percentile
# Embeddings are computed in the event loop: bound the work one request can ask for
# (2,000,000 dimensions froze a server for 11 s). 65,536 values take well under 0.1 s.
MAX_DIMENSIONS = 8192
MAX_EMBEDDING_VALUES = 65_536
MAX_DELAY_MS = 3_600_000.0  # an hour: anything longer is a typo, and overflows a sleep soon enough
OPTIONS = frozenset(
    {
        "latency_ms",
        "latency_jitter_ms",
        "latency_p50_ms",
        "latency_p95_ms",
        "chunk_delay_ms",
        "error_rate",
        "rate_limit_rate",
        "retry_after_s",
        "exhausted_rate",
        "timeout_rate",
        "stream_cut_rate",
        "outage",
        "seed",
        "reply",
        "embedding_dims",
        "models",
    }
)

DEFAULT_MODELS: tuple[ModelInfo, ...] = (
    ModelInfo("sim-chat", frozenset({"chat"}), 8192),
    ModelInfo("sim-embed", frozenset({"embeddings"}), 512),
    ModelInfo("sim-image", frozenset({"image"})),
    ModelInfo("sim-tts", frozenset({"tts"})),
    ModelInfo("sim-translate", frozenset({"translation"})),
    ModelInfo("sim-video", frozenset({"video"})),
)


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How a simulated provider behaves; every rate is a probability per call."""

    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    latency_p50_ms: float | None = None  # with p95: lognormal latency instead of mean ± jitter
    latency_p95_ms: float | None = None
    chunk_delay_ms: float = 0.0
    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after_s: float = 1.0
    exhausted_rate: float = 0.0
    timeout_rate: float = 0.0
    stream_cut_rate: float = 0.0
    outage_period_s: float | None = None
    outage_down_s: float = 0.0
    outage_offset_s: float = 0.0
    outage_windows: tuple[tuple[float, float], ...] = ()
    seed: int | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Behaviour:
        """Read `config.options`; raises ValueError naming the first bad field."""

        def number(name: str, default: float | None = None, high: float = MAX_DELAY_MS) -> float | None:
            value = options.get(name, default)
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= high:
                raise ValueError(f"{name} must be a number from 0 to {high:g}, not {value!r}")
            return float(value)

        rates = {}
        for name in ("error_rate", "rate_limit_rate", "exhausted_rate", "timeout_rate", "stream_cut_rate"):
            rates[name] = number(name, 0.0, high=1.0) or 0.0
        if sum(v for k, v in rates.items() if k != "stream_cut_rate") > 1:
            raise ValueError("error_rate + rate_limit_rate + exhausted_rate + timeout_rate must not exceed 1")
        p50, p95 = number("latency_p50_ms"), number("latency_p95_ms")
        if (p50 is None) != (p95 is None) or (p50 is not None and p95 is not None and not 0 < p50 <= p95):
            raise ValueError("latency_p50_ms and latency_p95_ms go together, with 0 < p50 <= p95")
        outage = options.get("outage") or {}
        if isinstance(outage, list):
            outage = {"windows": outage}
        if not isinstance(outage, Mapping):
            raise ValueError("outage must be an object or a list of windows")
        windows = tuple(_window(w) for w in outage.get("windows") or ())
        period, down, offset = (outage.get(k, d) for k, d in (("period_s", None), ("down_s", 0), ("offset_s", 0)))
        numbers = all(isinstance(v, int | float) for v in (down, offset))
        if period is not None and not (numbers and isinstance(period, int | float) and 0 < down <= period):
            raise ValueError("outage needs period_s > 0 and 0 < down_s <= period_s")
        seed = options.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed must be an integer, not {seed!r}")
        return cls(
            latency_ms=number("latency_ms", 0.0) or 0.0,
            latency_jitter_ms=number("latency_jitter_ms", 0.0) or 0.0,
            latency_p50_ms=p50,
            latency_p95_ms=p95,
            chunk_delay_ms=number("chunk_delay_ms", 0.0) or 0.0,
            retry_after_s=number("retry_after_s", 1.0, high=86400.0) or 0.0,
            outage_period_s=float(period) if period is not None else None,
            outage_down_s=float(down),
            outage_offset_s=float(offset),
            outage_windows=windows,
            seed=seed,
            **rates,
        )

    def down_for(self, now: float) -> float:
        """Seconds left in the outage at `now`; 0.0 when the provider is up."""
        for start, end in self.outage_windows:
            if start <= now < end:
                return end - now
        if self.outage_period_s:
            phase = (now - self.outage_offset_s) % self.outage_period_s
            if phase < self.outage_down_s:
                return self.outage_down_s - phase
        return 0.0


def _check_model_entry(i: int, entry: Any) -> None:
    if isinstance(entry, str) and entry:
        return
    where = f"models[{i}]"
    if not isinstance(entry, dict):
        raise ValueError(f"{where} must be a name or {{name, capabilities, context_window}}")
    if not isinstance(entry.get("name"), str) or not entry["name"]:
        raise ValueError(f"{where}.name must be a non-empty string")
    capabilities = entry.get("capabilities")
    if capabilities is not None and (
        not isinstance(capabilities, list) or any(c not in SimulatedAdapter.capabilities for c in capabilities)
    ):
        raise ValueError(f"{where}.capabilities must be a list of: {', '.join(sorted(SimulatedAdapter.capabilities))}")
    window = entry.get("context_window")
    if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
        raise ValueError(f"{where}.context_window must be a whole number >= 1")


def _window(raw: Any) -> tuple[float, float]:
    if not isinstance(raw, list | tuple) or len(raw) != 2:
        raise ValueError(f"an outage window is [start, end], not {raw!r}")
    try:
        start, end = (datetime.fromisoformat(v).timestamp() if isinstance(v, str) else float(v) for v in raw)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"an outage window needs two times (seconds or ISO-8601): {raw!r}") from exc
    if end <= start:
        raise ValueError(f"an outage window must end after it starts: {raw!r}")
    return start, end


class SimulatedAdapter(Adapter):
    kind = "simulated"
    capabilities = frozenset({"chat", "embeddings", "image", "tts", "translation", "video"})
    default_base_url = "simulated://local"
    speech_formats = frozenset({"wav"})  # its speech is always a short WAV

    @classmethod
    def validate_options(cls, options: Mapping[str, Any]) -> None:
        """Every option this adapter reads, checked as the configuration is saved; ValueError
        naming the option (see providers/adapters/__init__.py)."""
        unknown = sorted(set(options) - OPTIONS)
        if unknown:
            raise ValueError(
                f"{unknown[0]} is not an option of simulated providers (they take: {', '.join(sorted(OPTIONS))})"
            )
        Behaviour.from_options(options)
        dims = options.get("embedding_dims")
        if dims is not None and (
            isinstance(dims, bool) or not isinstance(dims, int) or not 1 <= dims <= MAX_DIMENSIONS
        ):
            raise ValueError(f"embedding_dims must be a whole number from 1 to {MAX_DIMENSIONS}, not {dims!r}")
        reply = options.get("reply")
        if reply is not None and not isinstance(reply, str):
            raise ValueError("reply must be a string")
        models = options.get("models")
        if models is not None:
            if not isinstance(models, list):
                raise ValueError("models must be a list of names or {name, capabilities, context_window}")
            for i, entry in enumerate(models):
                _check_model_entry(i, entry)

    def __init__(
        self,
        config: ProviderConfig,
        client: httpx.AsyncClient | None = None,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(config, client)  # type: ignore[arg-type]  # never used: no network
        self.behaviour = Behaviour.from_options(config.options)
        self.rng = rng or random.Random(self.behaviour.seed)
        self.clock = clock
        self.sleep = sleep

    # -- the scripted part --------------------------------------------------------------------

    def latency(self) -> float:
        """One latency draw, in seconds."""
        b = self.behaviour
        if b.latency_p50_ms is not None and b.latency_p95_ms is not None:
            sigma = math.log(b.latency_p95_ms / b.latency_p50_ms) / _Z95
            return self.rng.lognormvariate(math.log(b.latency_p50_ms), sigma) / 1000
        jitter = self.rng.uniform(-b.latency_jitter_ms, b.latency_jitter_ms) if b.latency_jitter_ms else 0.0
        return max(0.0, b.latency_ms + jitter) / 1000

    async def _attempt(self, timeout: float) -> None:
        """Wait the simulated latency, then fail the way the behaviour says, or return."""
        b = self.behaviour
        delay = self.latency()
        draw = self.rng.random()
        down = b.down_for(self.clock())
        if down:
            await self.sleep(delay)
            raise _openai_error(
                503,
                "server_error",
                "service_unavailable",
                f"{self.config.name} is in a simulated outage",
                retry_after=math.ceil(down),
            )
        if draw < b.timeout_rate:
            await self.sleep(timeout + 1.0)
            raise httpx.ReadTimeout(f"{self.config.name}: simulated timeout")
        await self.sleep(delay)
        draw -= b.timeout_rate
        if draw < b.error_rate:
            raise _openai_error(
                503, "server_error", "service_unavailable", f"{self.config.name}: simulated server error"
            )
        draw -= b.error_rate
        if draw < b.rate_limit_rate:
            raise _openai_error(
                429,
                "requests",
                "rate_limit_exceeded",
                f"{self.config.name}: simulated rate limit",
                retry_after=b.retry_after_s,
            )
        draw -= b.rate_limit_rate
        if draw < b.exhausted_rate:
            raise _openai_error(
                429,
                "insufficient_quota",
                "insufficient_quota",
                f"{self.config.name}: You exceeded your current quota (simulated)",
            )

    # -- capabilities -------------------------------------------------------------------------

    async def chat(self, request: dict[str, Any], *, model: str, timeout: float) -> Result:
        await self._attempt(timeout)
        words, finish, usage = self._reply(request, model)
        message = {"role": "assistant", "content": "".join(words)}
        body = {
            "id": f"chatcmpl-sim{uuid.uuid4().hex[:16]}",
            "object": "chat.completion",
            "created": int(self.clock()),
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
            "usage": _openai_usage(usage),
        }
        return Result.json(body, usage=usage, model=model)

    async def chat_stream(self, request: dict[str, Any], *, model: str, timeout: float) -> ChatStream:
        await self._attempt(timeout)
        words, finish, usage = self._reply(request, model)
        cut_after = len(words) // 2 if self.rng.random() < self.behaviour.stream_cut_rate else None
        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        ident = f"chatcmpl-sim{uuid.uuid4().hex[:16]}"
        created = int(self.clock())
        delay = self.behaviour.chunk_delay_ms / 1000

        def chunk(delta: dict[str, Any], reason: str | None) -> dict[str, Any]:
            return {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": reason, "logprobs": None}],
            }

        async def chunks() -> AsyncIterator[dict[str, Any]]:
            yield chunk({"role": "assistant", "content": ""}, None)
            for i, word in enumerate(words):
                if cut_after is not None and i == cut_after:
                    raise httpx.RemoteProtocolError(f"{self.config.name}: simulated stream cut")
                if delay:
                    await self.sleep(delay)
                yield chunk({"content": word}, None)
            stream.usage.tokens_in, stream.usage.tokens_out = usage.tokens_in, usage.tokens_out
            yield chunk({}, finish)
            if include_usage:
                yield {
                    "id": ident,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": _openai_usage(usage),
                }

        stream = ChatStream(chunks(), model=model)
        return stream

    async def embeddings(self, request: dict[str, Any], *, model: str, timeout: float) -> Result:
        await self._attempt(timeout)
        raw = request.get("input")
        inputs = [raw] if isinstance(raw, str) else raw
        if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
            raise _openai_error(400, "invalid_request_error", None, "'input' must be a string or a list of strings")
        dims = request.get("dimensions") or self.config.options.get("embedding_dims", 16)
        if isinstance(dims, bool) or not isinstance(dims, int) or not 1 <= dims <= MAX_DIMENSIONS:
            raise _openai_error(
                400, "invalid_request_error", None, f"'dimensions' must be an integer from 1 to {MAX_DIMENSIONS}"
            )
        if len(inputs) * dims > MAX_EMBEDDING_VALUES:
            raise _openai_error(
                400,
                "invalid_request_error",
                None,
                f"a simulated provider returns at most {MAX_EMBEDDING_VALUES} values per "
                f"request (inputs × dimensions); this asks for {len(inputs) * dims}",
            )
        as_base64 = request.get("encoding_format") == "base64"
        data = []
        for i, text in enumerate(inputs):
            vector = _vector(text, dims)
            encoded: Any = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode() if as_base64 else vector
            data.append({"object": "embedding", "index": i, "embedding": encoded})
        tokens = sum(_tokens(t) for t in inputs)
        body = {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return Result.json(body, usage=Usage(tokens_in=tokens), model=model)

    async def images(self, request: dict[str, Any], *, model: str, timeout: float) -> Result:
        await self._attempt(timeout)
        n = request.get("n", 1)
        if not isinstance(n, int) or not 1 <= n <= 10:
            raise _openai_error(400, "invalid_request_error", None, "'n' must be an integer from 1 to 10")
        seed = int.from_bytes(hashlib.sha256(str(request.get("prompt", "")).encode()).digest()[:4], "big")
        images = [base64.b64encode(tiny_png(seed + i)).decode() for i in range(n)]
        body = {"created": int(self.clock()), "data": [{"b64_json": image} for image in images]}
        return Result.json(body, usage=Usage(images=n), model=model)

    async def speech(self, request: dict[str, Any], *, model: str, timeout: float) -> Result:
        await self._attempt(timeout)
        text = request.get("input")
        if not isinstance(text, str) or not text:
            raise _openai_error(400, "invalid_request_error", None, "'input' is required")
        seconds = min(2.0, 0.1 + 0.01 * len(text))
        return Result(
            content=short_wav(seconds),
            media_type="audio/wav",
            model=model,
            usage=Usage(characters=len(text), audio_seconds=seconds),
        )

    async def translate(self, request: dict[str, Any], *, model: str, timeout: float) -> Result:
        await self._attempt(timeout)
        raw = request.get("text")
        texts = [raw] if isinstance(raw, str) else raw
        target = request.get("target_lang")
        if not texts or not isinstance(texts, list) or not isinstance(target, str) or not target:
            raise _openai_error(400, "invalid_request_error", None, "'text' and 'target_lang' are required")
        source = str(request.get("source_lang") or "EN").upper()
        body = {
            "translations": [{"text": f"[{target.upper()}] {t}", "detected_source_language": source} for t in texts]
        }
        return Result.json(body, usage=Usage(characters=sum(len(t) for t in texts)), model=model)

    async def video(self, request: dict[str, Any], *, model: str, timeout: float) -> Result:
        await self._attempt(timeout)
        prompt = request.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise _openai_error(400, "invalid_request_error", None, "'prompt' is required")
        seconds = request.get("duration_s", 5)
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 < seconds <= 600:
            raise _openai_error(400, "invalid_request_error", None, "'duration_s' must be from 0 to 600 seconds")
        url = "data:video/mp4;base64," + base64.b64encode(tiny_mp4(float(seconds))).decode()
        body = {"created": int(self.clock()), "data": [{"url": url}]}
        return Result.json(body, usage=Usage(images=1), model=model)

    async def list_models(self, *, timeout: float) -> list[ModelInfo]:
        await self._attempt(timeout)
        return self.models()

    def models(self) -> list[ModelInfo]:
        configured = self.config.options.get("models")
        if not configured:
            return list(DEFAULT_MODELS)
        out = []
        for entry in configured:
            if isinstance(entry, str):
                out.append(ModelInfo(entry, frozenset({"chat"}), 8192))
            else:
                out.append(
                    ModelInfo(
                        str(entry["name"]),
                        frozenset(entry.get("capabilities") or ["chat"]),
                        entry.get("context_window"),
                    )
                )
        return out

    async def probe(self, *, timeout: float, deep: bool = False, model: str | None = None) -> dict[str, Any]:
        await self._attempt(timeout)
        return {"models": len(self.models()), "simulated": True}

    # -- answers ------------------------------------------------------------------------------

    def _reply(self, request: dict[str, Any], model: str) -> tuple[list[str], str, Usage]:
        messages = request.get("messages") or []
        if not isinstance(messages, list) or not messages:
            raise _openai_error(400, "invalid_request_error", None, "'messages' must be a non-empty list")
        last = next(
            (_text(m.get("content")) for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"), ""
        )
        text = self.config.options.get("reply") or (
            f"This is a simulated answer from {self.config.name} ({model}) to: {last[:120]}"
        )
        words = [w if i == 0 else " " + w for i, w in enumerate(str(text).split(" "))]
        finish = "stop"
        limit = request.get("max_completion_tokens", request.get("max_tokens"))
        if isinstance(limit, int) and 0 < limit < len(words):
            words, finish = words[:limit], "length"
        tokens_in = sum(_tokens(_text(m.get("content"))) + 3 for m in messages if isinstance(m, dict))
        return words, finish, Usage(tokens_in=tokens_in, tokens_out=len(words))


def tiny_png(seed: int = 0, size: int = 8) -> bytes:
    """A valid size×size RGB PNG in one colour picked by `seed`."""
    colour = bytes(random.Random(seed).randrange(256) for _ in range(3))
    raw = b"".join(b"\x00" + colour * size for _ in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def tiny_mp4(seconds: float, timescale: int = 1000) -> bytes:
    """A valid MP4 (ISO base media file) with no tracks: `ftyp`, a `moov` whose `mvhd` gives
    the length, and an empty `mdat`."""

    def box(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", 8 + len(payload)) + kind + payload

    identity = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    mvhd = (
        struct.pack(">B3x4I", 0, 0, 0, timescale, round(seconds * timescale))
        + struct.pack(">IH10x", 0x10000, 0x100)
        + identity
        + bytes(24)
        + struct.pack(">I", 1)
    )
    return (
        box(b"ftyp", b"isom" + struct.pack(">I", 0x200) + b"isomiso2mp41")
        + box(b"moov", box(b"mvhd", mvhd))
        + box(b"mdat", b"")
    )


def short_wav(seconds: float, rate: int = 8000) -> bytes:
    """A valid mono 16-bit WAV of a quiet 440 Hz tone."""
    frames = b"".join(
        struct.pack("<h", int(800 * math.sin(2 * math.pi * 440 * i / rate))) for i in range(int(rate * seconds))
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return buffer.getvalue()


def _openai_error(
    status: int, kind: str, code: str | None, message: str, *, retry_after: float | None = None
) -> UpstreamError:
    headers = httpx.Headers({"content-type": "application/json"})
    if retry_after is not None:
        headers["retry-after"] = f"{retry_after:g}"
    body = json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}}).encode()
    return UpstreamError.from_response(status, headers, body, message=message)


def _openai_usage(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.tokens_in,
        "completion_tokens": usage.tokens_out,
        "total_tokens": usage.tokens_in + usage.tokens_out,
    }


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def _vector(text: str, dims: int) -> list[float]:
    values: list[float] = []
    counter = 0
    while len(values) < dims:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend((b - 127.5) / 127.5 for b in digest)
        counter += 1
    norm = math.sqrt(sum(v * v for v in values[:dims])) or 1.0
    return [v / norm for v in values[:dims]]

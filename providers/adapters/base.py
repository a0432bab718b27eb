"""What every provider adapter is: one class per wire format, speaking httpx, knowing no Django.

An adapter turns the gateway's OpenAI-shaped request into its provider's wire format, sends it
with the shared `httpx.AsyncClient`, and turns the answer back into OpenAI's shape (or raw
bytes for audio and images). It never retries, never sleeps for backoff and keeps no health
state: the engine decides all of that. It reports failures by raising
`providers.engine.errors.UpstreamError` (built with `UpstreamError.from_response`, which
classifies status, body and headers) and lets httpx transport errors propagate unchanged;
the engine classifies those with `classify_exception`.

Capabilities: chat, embeddings, image, tts, stt, translation, video.
"""

from __future__ import annotations

import io
import json
import wave
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

import httpx

from providers.engine import Classification, Outcome, UnsupportedRequest, UpstreamError

from .client import GuardedClient

CAPABILITIES = ("chat", "embeddings", "image", "tts", "stt", "translation", "video")
# OpenAI's speech `response_format` values: the names every speech adapter declares its formats in.
SPEECH_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """Everything an adapter needs to reach one provider with one credential."""

    name: str
    kind: str
    base_url: str
    api_key: str | None = None
    timeout_s: float = 30.0
    connect_timeout_s: float = 5.0
    stream_idle_timeout_s: float = 30.0
    # Kind-specific settings (e.g. anthropic `version`, deepl `formality`, simulated behaviour).
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Usage:
    """What a call consumed, in the units its provider bills."""

    tokens_in: int = 0
    tokens_out: int = 0
    characters: int = 0
    images: int = 0
    audio_seconds: float = 0.0

    def cost(self, price: Price | None) -> Decimal | None:
        """What this usage cost at `price`; None when that is unknown: no unit the call used
        (its count above 0) has a known price, the model having none at all included.

        A used unit whose price is unknown while another one's is known is taken as not billed
        that way: speech is billed per character or per minute (and reports both), and a price
        of 0 is how an operator says a unit is free. A call that used nothing cost nothing."""
        p = price or Price()  # no price at all: every one unknown
        terms = (
            (self.tokens_in, p.input_per_mtok, MILLION),
            (self.tokens_out, p.output_per_mtok, MILLION),
            (self.images, p.per_image, Decimal(1)),
            (self.characters, p.per_kchar, Decimal(1000)),
            (self.audio_seconds, p.per_minute, Decimal(60)),
        )
        used = [(amount, rate, per) for amount, rate, per in terms if amount]
        if not used:
            return Decimal(0)
        priced = [(amount, rate, per) for amount, rate, per in used if rate is not None]
        if not priced:
            return None
        total = Decimal(0)
        for amount, rate, per in priced:
            count = Decimal(str(amount)) if isinstance(amount, float) else Decimal(amount)
            total += rate * count / per
        return total


@dataclass(frozen=True, slots=True)
class Price:
    """A model's prices, in dollars (configured, set in the admin, or published by the
    provider: providers/adapters/published_prices.py), applied by `Usage.cost`.

    None is an unknown price; 0 is free. A price nobody gave is unknown, never free."""

    input_per_mtok: Decimal | None = None
    output_per_mtok: Decimal | None = None
    per_image: Decimal | None = None
    per_kchar: Decimal | None = None
    per_minute: Decimal | None = None

    @property
    def known(self) -> bool:
        """Whether any of the prices is known."""
        return any(
            p is not None
            for p in (self.input_per_mtok, self.output_per_mtok, self.per_image, self.per_kchar, self.per_minute)
        )


@dataclass(slots=True)
class Result:
    """A complete, successful answer.

    `content` is exactly what the gateway sends to its client; `data` is the parsed JSON
    (OpenAI's shape) when `media_type` is JSON, kept so callers need not parse twice.
    """

    content: bytes
    media_type: str = "application/json"
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    data: Any = None

    @classmethod
    def json(cls, data: Any, *, usage: Usage | None = None, model: str = "") -> Result:
        return cls(
            content=json.dumps(data, separators=(",", ":")).encode(),
            usage=usage or Usage(),
            model=model,
            data=data,
        )


class ChatStream:
    """An OpenAI `chat.completion.chunk` stream.

    Iterating yields chunk dicts in OpenAI's shape. `usage` is filled in as the provider
    reports it (at the latest when iteration ends). `aclose()` releases the connection and
    is safe to call at any time, more than once: with `response` given it closes that too,
    because an async generator that never started runs no `finally` of its own.
    """

    def __init__(
        self, chunks: AsyncIterator[dict[str, Any]], *, model: str = "", response: httpx.Response | None = None
    ) -> None:
        self._chunks = chunks
        self._response = response
        self.model = model
        self.usage = Usage()

    @classmethod
    def of(
        cls,
        make_chunks: Callable[[ChatStream], AsyncIterator[dict[str, Any]]],
        *,
        model: str = "",
        response: httpx.Response | None = None,
    ) -> ChatStream:
        """A stream whose chunk generator needs the stream itself (to fill in `usage`)."""
        stream = cls(_no_chunks(), model=model, response=response)
        stream._chunks = make_chunks(stream)
        return stream

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._chunks

    async def aclose(self) -> None:
        try:
            aclose = getattr(self._chunks, "aclose", None)
            if aclose is not None:
                await aclose()
        finally:
            if self._response is not None:
                await self._response.aclose()


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One model a provider offers."""

    name: str
    capabilities: frozenset[str] = frozenset({"chat"})
    context_window: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


def wav_seconds(data: bytes) -> float | None:
    """The length of a WAV file, or None when `data` is not one."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    try:
        with wave.open(io.BytesIO(data)) as audio:
            rate = audio.getframerate()
            return audio.getnframes() / rate if rate else None
    except (wave.Error, EOFError):
        return None


async def _no_chunks() -> AsyncIterator[dict[str, Any]]:
    return
    yield


def bad_request(message: str) -> UpstreamError:
    """A request this provider cannot take, found before anything was sent, in OpenAI's error
    shape. The engine skips this target ("unsupported", with `message`) and tries the next;
    the caller gets a 400 only when no target of the route can take the request."""
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
    return UnsupportedRequest(message, reason="invalid_request", body=json.dumps(body).encode())


def malformed(
    message: str,
    *,
    response: httpx.Response | None = None,
    data: Any = None,
    body: bytes | None = None,
    reason: str = "malformed_response",
) -> UpstreamError:
    """A 2xx answer whose content cannot be used: a FAILURE (another target may do better).

    The provider's status, headers and body are kept when `response` is given (its body only
    if it was read), or the unusable `data`/`body` itself.
    """
    status, headers, media_type = 200, None, "application/json"
    if response is not None:
        status, headers = response.status_code, response.headers
        media_type = response.headers.get("content-type", "").split(";")[0] or "application/octet-stream"
        if body is None:
            try:
                body = response.content
            except httpx.ResponseNotRead:
                body = b""
    if body is None:
        body = json.dumps(data).encode() if data is not None else b""
    return UpstreamError(
        Classification(Outcome.FAILURE, reason),
        status=status,
        message=message,
        headers=headers,
        body=body,
        media_type=media_type,
    )


def json_answer(response: httpx.Response, message_of: Callable[[bytes], str] | None = None) -> Any:
    """The JSON of an answer that is not streamed: a non-2xx is raised as `UpstreamError` (its
    message read by `message_of`, for providers with their own error shape), an unreadable
    body as `malformed`."""
    if not response.is_success:
        message = message_of(response.content) if message_of is not None else ""
        raise UpstreamError.from_response(
            response.status_code,
            response.headers,
            response.content,
            message=message or f"HTTP {response.status_code}",
            media_type=response.headers.get("content-type", "application/json").split(";")[0],
        )
    try:
        return json.loads(response.content)
    except ValueError as exc:
        raise malformed(f"the answer is not JSON: {exc}", response=response) from exc


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The JSON object a 2xx answer carries, or `malformed` (a FAILURE) if it carries none."""
    try:
        data = json.loads(response.content)
    except ValueError as exc:
        raise malformed(f"the answer is not JSON: {exc}", response=response) from exc
    if not isinstance(data, dict):
        raise malformed("the answer is not a JSON object", response=response)
    return data


def stream_broken(response: httpx.Response, message: str, reason: str = "stream_broken") -> UpstreamError:
    """A stream that ended wrongly (no terminator, an error event): a FAILURE."""
    return UpstreamError(
        Classification(Outcome.FAILURE, reason), status=response.status_code, message=message, headers=response.headers
    )


class Unsupported(UnsupportedRequest):
    """The adapter cannot do what was asked (a capability its wire format lacks): the engine
    skips the target and falls back."""

    def __init__(self, kind: str, what: str) -> None:
        super().__init__(
            f"provider kind {kind!r} does not support {what}",
            body=json.dumps(
                {"error": {"type": "invalid_request_error", "message": f"{kind} does not support {what}"}}
            ).encode(),
        )


class Adapter:
    """Base of the adapters. Subclasses set the class attributes and override what they speak.

    Every request method takes the OpenAI-shaped request body (a dict), the upstream `model`
    name and `timeout`, the seconds this attempt may take in all; it returns a `Result` or
    raises `UpstreamError`. `chat_stream` returns once the provider has accepted the request
    (status 200); errors before that raise, as for `chat`.
    """

    kind: ClassVar[str]
    capabilities: ClassVar[frozenset[str]]
    default_base_url: ClassVar[str] = ""
    # The speech `response_format`s (SPEECH_FORMATS names) this adapter answers in; None for an
    # adapter that declares none (it checks formats itself, or makes no speech). An instance may
    # narrow it from its options (a local server that makes fewer formats than its wire format).
    speech_formats: frozenset[str] | None = None

    def __init__(self, config: ProviderConfig, client: httpx.AsyncClient) -> None:
        self.config = config
        self.client = client
        self.base_url = (config.base_url or self.default_base_url).rstrip("/")
        self._urls: dict[str, httpx.URL] = {}

    def url(self, path: str) -> httpx.URL:
        """`base_url + path`, parsed once per adapter (parsing it on every request cost 3 % of
        a chat request's CPU in the profile; the runtime keeps one adapter per provider and key)."""
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = httpx.URL(self.base_url + path)
        return url

    def timeout(self, seconds: float) -> httpx.Timeout:
        """httpx timeouts for one attempt: connect capped at the provider's connect timeout."""
        return httpx.Timeout(seconds, connect=min(self.config.connect_timeout_s, seconds))

    def stream_timeout(self, seconds: float) -> httpx.Timeout:
        """For streams the engine bounds time to first byte; httpx bounds each idle gap."""
        return httpx.Timeout(
            seconds,
            connect=min(self.config.connect_timeout_s, seconds),
            read=self.config.stream_idle_timeout_s,
        )

    async def chat(self, request: dict[str, Any], *, model: str, timeout: float) -> Result:
        raise Unsupported(self.kind, "chat")

    async def chat_stream(self, request: dict[str, Any], *, model: str, timeout: float) -> ChatStream:
        raise Unsupported(self.kind, "streaming chat")

    async def embeddings(self, request: dict[str, Any], *, model: str, timeout: float) -> Result:
        raise Unsupported(self.kind, "embeddings")

    async def images(self, request: dict[str, Any], *, model: str, timeout: float) -> Result:
        raise Unsupported(self.kind, "image generation")

    async def speech(self, request: dict[str, Any], *, model: str, timeout: float) -> Result:
        raise Unsupported(self.kind, "text to speech")

    async def transcription(
        self, request: dict[str, Any], audio: bytes, filename: str, *, model: str, timeout: float
    ) -> Result:
        raise Unsupported(self.kind, "speech to text")

    def speech_format(self, request: Mapping[str, Any]) -> str | None:
        """The speech `response_format` the caller asked for, checked against `speech_formats`
        before anything is sent: None when the caller named none (the adapter's own format is
        then fine, served under its true Content-Type). A format this adapter cannot make is
        `UnsupportedRequest` (reason `unsupported_format`): the engine skips the target with
        that message and tries the next, so no target ever answers in another format than asked;
        when none can, the caller gets a 400 naming the format and every target that could not."""
        wanted = request.get("response_format")
        if wanted is None or wanted == "":
            return None
        if not isinstance(wanted, str):
            raise bad_request("'response_format' must be a string such as 'mp3' or 'wav'")
        formats = self.speech_formats
        if formats is not None and wanted not in formats:
            raise UnsupportedRequest(
                f"{self.kind} cannot make {wanted!r} audio (it makes {', '.join(sorted(formats)) or 'none'})",
                reason="unsupported_format",
            )
        return wanted

    async def translate(self, request: dict[str, Any], *, model: str, timeout: float) -> Result:
        """`request` is {"text": str | list[str], "target_lang": str, "source_lang"?: str}.

        The result's data is {"translations": [{"text", "detected_source_language"}]}.
        """
        raise Unsupported(self.kind, "translation")

    async def video(self, request: dict[str, Any], *, model: str, timeout: float) -> Result:
        """Compose a video. `request` is {"prompt": str, "images"?: [url, ...], "audio"?: url,
        "duration_s"?: number, ...}: a prompt, optionally the stills to animate or cut
        together and a soundtrack, and the length wanted; other keys are the provider's own.

        The result's data is shaped like an images answer: {"created", "data": [{"url"}]},
        one entry per video made (a URL may be a `data:` URL). Usage counts each video made
        in `images`, so a model's `per_image` price is its price per video.
        """
        raise Unsupported(self.kind, "video composition")

    async def list_models(self, *, timeout: float) -> list[ModelInfo]:
        raise Unsupported(self.kind, "model listing")

    async def probe(self, *, timeout: float, deep: bool = False, model: str | None = None) -> dict[str, Any]:
        """A health check that fits the provider's cost: cheap by default, a tiny real call
        when `deep` is set. Returns details to show operators; raises on failure."""
        models = await self.list_models(timeout=timeout)
        return {"models": len(models)}

    async def send_streaming(
        self, method: str, url: str | httpx.URL, *, timeout: httpx.Timeout, **kwargs: Any
    ) -> httpx.Response:
        """Send with a streamed answer. A non-2xx is raised as `UpstreamError` (its body read)
        and the response closed; the caller closes a successful one (ChatStream does)."""
        if isinstance(self.client, GuardedClient):
            response = await self.client.open(method, url, timeout=timeout, **kwargs)
        else:  # a plain httpx client (tests hand some adapters one)
            response = await self.client.send(
                self.client.build_request(method, url, timeout=timeout, **kwargs), stream=True
            )
        try:
            await self.check(response)
        except BaseException:
            await response.aclose()
            raise
        return response

    async def check(self, response: httpx.Response) -> httpx.Response:
        """Raise `UpstreamError` for a non-2xx answer, reading the body first if streamed."""
        if response.is_success:
            return response
        body = await response.aread()
        raise UpstreamError.from_response(
            response.status_code,
            response.headers,
            body,
            media_type=response.headers.get("content-type", "application/json").split(";")[0],
        )

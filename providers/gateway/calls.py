"""One gateway request turned into attempts: which adapter method, with which arguments.

For a stream, the attempt itself waits for the first chunk, so a provider that fails before
its first byte is a plain failure the engine can retry or fall back from; after it, the
stream belongs to the client and a break is never retried (resilience.md §2). The whole
stream ends at the request's deadline: the chunk iterator then raises `StreamDeadline`, so
the client hears why in a stream_aborted error event and the provider is not blamed.

Speech keeps the caller's `response_format`: a target whose adapter cannot make it is skipped
("unsupported", saying which format it makes) before anything is sent, and when no target can,
the caller gets a 400 naming the format and every target (see `Adapter.speech_format`).

An answer larger than `GATEWAY_MAX_RESPONSE_BYTES` is never read past that size: the shared
client's transport cuts it (providers/adapters/client.py), the attempt fails with
`response_too_large`, and the engine retries or falls back as for any broken answer.

Each successful attempt notes its provider's rate-limit headers (`x-ratelimit-*`,
Anthropic's `anthropic-ratelimit-*`) in `Call.ratelimits`, by provider: a response hook on the
shared client (which has scrubbed them already) writes them to the attempt's own context, so
adapters need not carry headers, and concurrent attempts (hedges, other requests) never mix.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import httpx

from providers.adapters import Adapter, ChatStream, Result
from providers.engine import (
    AttemptContext,
    Classification,
    Clock,
    Outcome,
    StreamDeadline,
    TargetSpec,
    UpstreamError,
)
from providers.runtime import Runtime
from providers.snapshot import Snapshot

RATELIMIT_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-")
MAX_RATELIMIT_HEADERS = 24
_RATELIMIT_REST = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
# Where the running attempt's rate-limit headers go; None outside an attempt.
_ratelimits: ContextVar[dict[str, str] | None] = ContextVar("upstream_ratelimits", default=None)


async def _note_ratelimits(response: httpx.Response) -> None:
    sink = _ratelimits.get()
    if sink is None:
        return
    for name, value in response.headers.items():
        name = name.lower()
        for prefix in RATELIMIT_PREFIXES:
            rest = name[len(prefix) :]
            if name.startswith(prefix) and _RATELIMIT_REST.fullmatch(rest) and len(sink) < MAX_RATELIMIT_HEADERS:
                sink[rest] = value


def watch_ratelimits(client: httpx.AsyncClient) -> None:
    """Have `client` note rate-limit headers for the attempt that sent the request (once)."""
    hooks = client.event_hooks["response"]
    if _note_ratelimits not in hooks:
        hooks.append(_note_ratelimits)


@dataclass
class StreamStart:
    """A stream whose first chunk has arrived."""

    stream: ChatStream
    chunks: AsyncIterator[dict[str, Any]]
    first: dict[str, Any]


async def open_stream(
    adapter: Adapter,
    body: dict[str, Any],
    model: str,
    timeout: float,
    *,
    deadline: float | None = None,
    clock: Clock | None = None,
) -> StreamStart:
    """Open a chat stream and wait for its first chunk. With `deadline` (a monotonic time on
    `clock`, the engine's), the chunks after the first stop there (`StreamDeadline`)."""
    stream = await adapter.chat_stream(body, model=model, timeout=timeout)
    chunks = aiter(stream)
    try:
        first = await anext(chunks)
    except StopAsyncIteration:
        await stream.aclose()
        raise UpstreamError(
            Classification(Outcome.FAILURE, "empty_stream"), message="the stream ended before its first chunk"
        ) from None
    except BaseException:
        await stream.aclose()
        raise
    if deadline is not None and clock is not None:
        chunks = until_deadline(chunks, deadline, clock)
    return StreamStart(stream, chunks, first)


async def until_deadline(
    chunks: AsyncIterator[dict[str, Any]], deadline: float, clock: Clock
) -> AsyncIterator[dict[str, Any]]:
    """`chunks` until the request's deadline; then `StreamDeadline`. The time left is read
    on the engine's clock and waited for on the loop's, so a fake clock works too."""
    loop = asyncio.get_running_loop()
    at = loop.time() + (deadline - clock.monotonic())
    while True:
        try:
            async with asyncio.timeout_at(at) as scope:
                chunk = await anext(chunks)
        except StopAsyncIteration:
            return
        except TimeoutError:
            if not scope.expired():
                raise
            raise StreamDeadline(
                "the request's deadline ended the stream (X-Gateway-Deadline or the route's deadline_s)"
            ) from None
        yield chunk


@dataclass
class Call:
    """What the client asked for, in OpenAI's shape, for one capability. `for_target`, when
    the body was translated from another API, shapes it for each target's wire format (a
    dialect's: see dialects/dialect.py)."""

    capability: str
    body: dict[str, Any]
    stream: bool = False
    audio: bytes = b""
    filename: str = "audio"
    extra: dict[str, Any] = field(default_factory=dict)
    for_target: Callable[[dict[str, Any], str, str], dict[str, Any]] | None = None
    # provider -> the rate-limit headers of its last successful answer ("remaining-requests": "99")
    ratelimits: dict[str, dict[str, str]] = field(default_factory=dict)

    def attempt_fn(self, rt: Runtime, snapshot: Snapshot) -> Any:
        capability, stream, for_target = self.capability, self.stream, self.for_target
        watch_ratelimits(rt.client)

        async def attempt(target: TargetSpec, ctx: AttemptContext) -> Result | StreamStart:
            adapter = rt.adapter(snapshot.providers[target.provider], ctx.credential)
            body = self.body if for_target is None else for_target(self.body, adapter.kind, target.model)
            seen: dict[str, str] = {}
            token = _ratelimits.set(seen)
            try:
                value: Result | StreamStart
                if capability == "chat" and stream:
                    value = await open_stream(
                        adapter, body, target.model, ctx.timeout, deadline=ctx.deadline, clock=rt.engine.clock
                    )
                else:
                    value = await self.complete(adapter, target.model, ctx.timeout, body)
            finally:
                _ratelimits.reset(token)
            self.ratelimits[target.provider] = seen
            return value

        return attempt

    async def complete(
        self, adapter: Adapter, model: str, timeout: float, body: dict[str, Any] | None = None
    ) -> Result:
        capability = self.capability
        body = self.body if body is None else body
        if capability == "chat":
            return await adapter.chat(body, model=model, timeout=timeout)
        if capability == "embeddings":
            return await adapter.embeddings(body, model=model, timeout=timeout)
        if capability == "image":
            return await adapter.images(body, model=model, timeout=timeout)
        if capability == "tts":
            # A format the target cannot make skips it (UnsupportedRequest) before anything is
            # sent: every target answers in the format asked, or not at all.
            adapter.speech_format(body)
            return await adapter.speech(body, model=model, timeout=timeout)
        if capability == "stt":
            return await adapter.transcription(body, self.audio, self.filename, model=model, timeout=timeout)
        if capability == "translation":
            return await adapter.translate(body, model=model, timeout=timeout)
        if capability == "video":
            return await adapter.video(body, model=model, timeout=timeout)
        raise ValueError(f"unknown capability {capability!r}")

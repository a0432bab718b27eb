"""One gateway request turned into attempts: which adapter method, with which arguments.

For a stream, the attempt itself waits for the first chunk, so a provider that fails before
its first byte is a plain failure the engine can retry or fall back from; after it, the
stream belongs to the client and a break is never retried (resilience.md §2). The whole
stream ends at the request's deadline: the chunk batches (`ChunkBatches`, one timer for the
whole stream) then raise `StreamDeadline`, so the client hears why in the error event of its
API's shape and the provider is not blamed.

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
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
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
    """A stream whose first chunk has arrived. `deadline_at`, on the event loop's clock, is
    when the chunks after the first stop (`StreamDeadline`); None: never."""

    stream: ChatStream
    chunks: AsyncIterator[dict[str, Any]]
    first: dict[str, Any]
    deadline_at: float | None = None

    def batches(self) -> ChunkBatches:
        """The chunks after the first, in batches (see `ChunkBatches`)."""
        return ChunkBatches(self.chunks, self.deadline_at)


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
    at = None
    if deadline is not None and clock is not None:
        # The time left is read on the engine's clock and waited for on the loop's, so a fake
        # clock works too.
        at = asyncio.get_running_loop().time() + (deadline - clock.monotonic())
    return StreamStart(stream, chunks, first, at)


DEADLINE_MESSAGE = "the request's deadline ended the stream (X-Gateway-Deadline or the route's deadline_s)"


class ChunkBatches:
    """Chunks in batches: each batch is one chunk that had to be waited for and every chunk
    after it that was ready without waiting (the rest of one upstream read, as a rule), so
    that the caller can translate a batch and write it to the client at once, one server
    write for many events.

    Whether a chunk is ready is found by running the iterator's next step up to its first
    suspension: a step that completes is ready; one that suspends (the provider has not sent
    more yet) is held, the batch so far is handed out, and the held step is resumed where
    it stopped when the next batch is asked for, exactly as if it had been awaited. `aclose()`
    cancels a held step (as cancelling the task would have), so the chunk iterator can be
    closed after it.

    The deadline is one timer for the whole stream, not one per chunk: when it passes during
    a wait, the waiting task is cancelled and the wait ends in `StreamDeadline`; a batch
    asked for after it ends the same way.
    """

    def __init__(self, chunks: AsyncIterator[dict[str, Any]], deadline_at: float | None = None) -> None:
        self._chunks = chunks
        self._deadline_at = deadline_at
        self._held: _Held | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[Any] | None = None
        self._waiting = False
        self._fired = False  # the timer cancelled the task during a wait
        self._expired = False
        self._error: BaseException | None = None  # raised after the batch it interrupted
        self.ended = False  # the chunks ended well: the last batch is (or was) the last

    def __aiter__(self) -> ChunkBatches:
        return self

    async def __anext__(self) -> list[dict[str, Any]]:
        if self.ended:
            raise StopAsyncIteration
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        if self._expired:
            raise StreamDeadline(DEADLINE_MESSAGE)
        if self._deadline_at is not None and self._timer is None:
            loop = asyncio.get_running_loop()
            self._task = asyncio.current_task()
            self._timer = loop.call_at(self._deadline_at, self._expire)
        held, self._held = self._held, None
        try:
            first = await self._wait(held if held is not None else _start(anext(self._chunks)))
        except StopAsyncIteration:
            self.ended = True
            raise
        batch = [first]
        while True:
            try:
                step = _start(anext(self._chunks))
            except StopAsyncIteration:
                self.ended = True
                return batch
            except Exception as exc:  # the stream broke: relay what came before, then say why
                self._error = exc
                return batch
            if isinstance(step, _Held):
                self._held = step
                return batch
            batch.append(step.value)

    async def _wait(self, step: _Ready | _Held) -> dict[str, Any]:
        if isinstance(step, _Ready):
            return step.value
        task = self._task
        cancelling = task.cancelling() if task is not None else 0
        self._waiting = True
        try:
            return await step
        except asyncio.CancelledError:
            if self._fired and task is not None and task.uncancel() <= cancelling:
                raise StreamDeadline(DEADLINE_MESSAGE) from None
            raise
        finally:
            self._waiting = False

    def _expire(self) -> None:
        self._expired = True
        if self._waiting and self._task is not None:
            self._fired = True
            self._task.cancel()

    async def aclose(self) -> None:
        """Stop the timer, and cancel the step held for the next batch, if any."""
        if self._timer is not None:
            self._timer.cancel()
        held, self._held = self._held, None
        if held is None:
            return
        task = asyncio.current_task()
        cancelling = task.cancelling() if task is not None else 0
        try:
            await held.throwing(asyncio.CancelledError())
        except (asyncio.CancelledError, StopAsyncIteration):
            if task is not None and task.cancelling() > cancelling:
                raise  # the task itself was cancelled meanwhile: not ours to swallow
        except Exception:
            # The stream is being left already, with the error (or the client's leaving) that is
            # recorded for it; how its abandoned read ended adds nothing.
            pass


@dataclass(frozen=True, slots=True)
class _Ready:
    value: Any


class _Held:
    """An awaitable run up to its first suspension (`_start`): awaiting this resumes it where
    it stopped, passing what the task sends or throws on to it, as `yield from` would."""

    __slots__ = ("_first_error", "_inner", "_yielded")

    def __init__(self, inner: Any, yielded: Any) -> None:
        self._inner = inner
        self._yielded = yielded
        self._first_error: BaseException | None = None

    def throwing(self, error: BaseException) -> _Held:
        """This, resumed with `error` thrown in where it stopped instead of what it waited for."""
        self._first_error = error
        return self

    def __await__(self) -> Generator[Any, Any, Any]:
        inner = self._inner
        try:
            yielded = inner.throw(self._first_error) if self._first_error is not None else self._yielded
            while True:
                try:
                    sent = yield yielded
                except GeneratorExit:
                    inner.close()
                    raise
                except BaseException as exc:  # the task's cancellation, passed on
                    yielded = inner.throw(exc)
                else:
                    yielded = inner.send(sent)
        except StopIteration as stop:
            return stop.value


def _start(awaitable: Awaitable[Any]) -> _Ready | _Held:
    """Run `awaitable` (one step of an async iterator) until it completes or first suspends.
    StopAsyncIteration, or any error, raised before it suspends is raised here."""
    inner = awaitable.__await__()
    try:
        yielded = inner.send(None)
    except StopIteration as stop:
        return _Ready(stop.value)
    return _Held(inner, yielded)


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

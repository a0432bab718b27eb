"""Serving one routed request, in any dialect: the response cache first, then the engine's
chain, then the answer (whole, or a stream of server-sent events) in the caller's shape.

Response cache (cache.py holds the key and the stores). On a route with a TTL (the route's
`cache_ttl_s`, else its first target's provider's; providers/snapshot.py):
- the key's admission (routes, budget, rates) runs first: a key that may not use the route
  never reads a kept answer, and a hit counts as a request against the key's rpm;
- the key is the route the caller named, the endpoint (capability and dialect: an Anthropic
  message and a Responses object are kept apart), the API key's id (one key never reads
  another's answers) and the caller's own body (a transcription's audio by its digest);
- a request with `X-Gateway-Cache: no-cache` skips the lookup (its answer is still kept);
- a hit is answered with the kept bytes (a kept stream as one text/event-stream body), says
  who served the original, calls nobody and is recorded with `cache="hit"`, no attempts, no
  tokens, no cost, and `saved` the original's cost;
- kept: a 200 answer, or the whole relayed stream of a stream that ended well; never an
  error, a stream that broke, was cut or was left, nor anything over
  RESPONSE_CACHE_MAX_BYTES (default 1 MiB).
Answers on such routes carry `X-Gateway-Cache: hit|miss|bypass`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase

from providers.adapters import ChatStream, Result, Usage
from providers.adapters.sse import SseJson
from providers.engine import AllTargetsFailed, CallerError, ChainResult, NoTargets, StreamDeadline
from providers.runtime import runtime

from .cache import BYPASS, HIT, MISS, Cached, ResponseCache, cache_key
from .calls import Call, ChunkBatches, StreamStart
from .dialects.dialect import Dialect, SseEvent, StreamTranslator
from .dialects.openai_chat import wants_usage
from .exchange import OPENAI, Exchange, options

SSE_MEDIA_TYPE = "text/event-stream"
DEFAULT_MAX_BYTES = 1024 * 1024


def max_cached_bytes() -> int:
    return int(getattr(settings, "RESPONSE_CACHE_MAX_BYTES", DEFAULT_MAX_BYTES))


def _dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def sse(events: list[SseEvent]) -> bytes:
    """Server-sent events as bytes. A chunk relayed as the provider wrote it (`SseJson`, not
    changed since it was read) is written as it was read, not serialised again."""
    out: list[bytes] = []
    for name, data in events:
        if name:
            out.append(b"event: " + name.encode() + b"\n")
        if isinstance(data, str):
            out.append(b"data: " + data.encode() + b"\n\n")
        elif type(data) is SseJson:
            out.append(b"data: " + data.text.encode() + b"\n\n")
        else:
            out.append(b"data: " + _dumps(data) + b"\n\n")
    return b"".join(out)


def _usage_of(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.tokens_in,
        "completion_tokens": usage.tokens_out,
        "total_tokens": usage.tokens_in + usage.tokens_out,
    }


# -- the response cache ------------------------------------------------------------------------


@dataclass
class CacheSlot:
    """Where one request's answer is looked up and kept."""

    store: ResponseCache
    key: str
    ttl_s: float
    found: Cached | None = None

    async def keep(
        self, content: bytes, media_type: str, provider: str, model: str, usage: Usage, cost: Decimal | None
    ) -> None:
        if len(content) > max_cached_bytes():
            return
        # An unknown cost is kept as "": a hit on it saves an unknown amount, counted as 0 (replay).
        said = "" if cost is None else str(cost)
        await self.store.put(
            self.key,
            Cached(content, media_type, provider, model, usage.tokens_in, usage.tokens_out, said),
            self.ttl_s,
        )


def _bypassed(request: HttpRequest) -> bool:
    said = request.META.get("HTTP_X_GATEWAY_CACHE", "")
    return "no-cache" in (part.strip().lower() for part in said.split(","))


async def open_slot(
    exchange: Exchange, ttl_s: float | None, route: str, body: dict[str, Any], audio: bytes = b""
) -> CacheSlot | None:
    """The request's cache slot (the lookup done, `exchange.cache` set); None without a cache."""
    if not ttl_s:
        return None
    key = getattr(exchange.request, "api_key", None)
    said: Any = body if not audio else {**body, "_audio_sha256": hashlib.sha256(audio).hexdigest()}
    try:
        digest = cache_key(
            route=route,
            endpoint=f"{exchange.capability}:{exchange.dialect.name}",
            scope=str(key.id) if key is not None else "",
            body=said,
        )
    except ValueError:  # not a JSON value (a NaN, say): not cacheable
        return None
    slot = CacheSlot(exchange.rt.response_cache, digest, ttl_s)
    if _bypassed(exchange.request):
        exchange.cache = BYPASS
    else:
        slot.found = await slot.store.get(digest)
        exchange.cache = HIT if slot.found is not None else MISS
    return slot


def replay(exchange: Exchange, found: Cached) -> HttpResponse:
    """A kept answer, and the record of a hit."""
    streamed = found.media_type == SSE_MEDIA_TYPE
    response = HttpResponse(found.content, content_type=found.media_type)
    if streamed:
        response["Cache-Control"] = "no-cache"
    for name, value in exchange.headers([], found.provider, found.model).items():
        response[name] = value
    response["X-Gateway-Failovers"] = "0"
    try:
        saved = Decimal(found.cost)
    except InvalidOperation:  # unreadable, or unknown (kept as ""): no saving counted
        saved = Decimal(0)
    exchange.record(
        "success", 200, [], stream=streamed, saved=saved if saved.is_finite() else Decimal(0), answer=response
    )
    return response


# -- serving ---------------------------------------------------------------------------------


async def serve(
    request: HttpRequest,
    capability: str,
    body: dict[str, Any],
    *,
    stream: bool = False,
    audio: bytes = b"",
    filename: str = "audio",
    dialect: Dialect = OPENAI,
    caller: dict[str, Any] | None = None,
) -> HttpResponseBase:
    """Route one internal (OpenAI-shaped) request and answer in the shape of `dialect`'s API;
    `caller` is the caller's own body when `body` was translated from it."""
    rt = runtime()
    snapshot = await rt.current()
    exchange = Exchange(request, rt, snapshot, capability, dialect=dialect)
    policy, targets = exchange.resolve(body.get("model"))
    deadline_s, prefer = options(request)
    asked = str(body.get("model"))
    said = caller if caller is not None else body
    await exchange.admit()
    slot = await open_slot(exchange, snapshot.cache_ttl(asked, targets), asked, said, audio)
    if slot is not None and slot.found is not None:
        return replay(exchange, slot.found)
    options_ = body.get("stream_options")
    if stream and dialect is OPENAI and isinstance(options_, dict) and not wants_usage(body):
        # The caller turned usage off; the gateway still wants it (analytics, budgets): asked
        # for here, left out of what the caller hears (openai_chat.StreamTranslator).
        body = {**body, "stream_options": {**options_, "include_usage": True}}
    call = Call(capability, body, stream=stream, audio=audio, filename=filename, for_target=dialect.for_target)
    try:
        result = await exchange.run(call, policy, targets, deadline_s=deadline_s, prefer=prefer)
    except (CallerError, AllTargetsFailed, NoTargets) as exc:
        return exchange.failure_response(exc)
    except asyncio.CancelledError:
        exchange.record("cancelled", 499, exchange.result.attempts if exchange.result else [])
        raise
    if stream:
        return stream_response(exchange, result, dialect.stream(model=asked, request=said), call=call, slot=slot)
    value: Result = result.value
    if dialect.from_chat is None:
        content, media_type = value.content, value.media_type
    else:
        completion = value.data if isinstance(value.data, dict) else json.loads(value.content)
        content, media_type = _dumps(dialect.from_chat(completion, model=asked, request=said)), "application/json"
    response = HttpResponse(content, content_type=media_type)
    for name, header in exchange.success_headers(result, call).items():
        response[name] = header
    provider, model = result.target.provider, result.target.model
    cost = exchange.record(
        "success",
        200,
        result.attempts,
        provider=provider,
        model=model,
        usage=value.usage,
        failovers=result.failovers,
        retries=result.retries,
        answer=response,
    )
    if slot is not None:
        await slot.keep(content, media_type, provider, model, value.usage, cost)
    return response


async def relay(
    translator: StreamTranslator, first: dict[str, Any], batches: ChunkBatches, stream: ChatStream
) -> AsyncGenerator[bytes, None]:
    """What the client is sent of a stream that ends well, one server write each: the first
    chunk's events at once, then one write per batch, the closing events with the last
    (`stream.usage` is final by then)."""
    yield sse(translator.start() + translator.feed(first))
    feed = translator.feed
    async for batch in batches:
        said = [event for chunk in batch for event in feed(chunk)]
        if batches.ended:  # the last batch: the closing events go in the same write
            yield sse(said + translator.close(_usage_of(stream.usage)))
            return
        if said:
            yield sse(said)
    # the end came after a wait, with no chunk
    yield sse(translator.close(_usage_of(stream.usage)))


def stream_response(
    exchange: Exchange,
    result: ChainResult[Any],
    translator: StreamTranslator,
    *,
    call: Call | None = None,
    slot: CacheSlot | None = None,
) -> StreamingHttpResponse:
    """The stream of chunks, said as `translator` (the dialect's) says it; with `slot`, the
    whole relayed stream is kept when it ended well. The first chunk is written at once; after
    it, the events of the chunks that arrive together (one upstream read, as a rule) are
    written together, one server write for them all (calls.ChunkBatches). When request bodies
    are kept, the record keeps the events as relayed, up to the size bound (kept_bodies.py)."""
    start: StreamStart = result.value
    ttft_ms = exchange.elapsed_ms()
    limit = max_cached_bytes()

    async def events() -> AsyncIterator[bytes]:
        error: BaseException | None = None
        kept: list[bytes] | None = [] if slot is not None else None
        size = 0

        def out(data: bytes) -> bytes:
            nonlocal kept, size
            if kept is not None:
                size += len(data)
                if size > limit:
                    kept = None  # too large to keep: relayed all the same
                else:
                    kept.append(data)
            return data

        # Bodies kept: each write noted first; not kept (the default), `out` as it is.
        told = exchange.transcript()
        emit = out if told is None else told.tap(out)
        batches = start.batches()
        try:
            async with aclosing(relay(translator, start.first, batches, start.stream)) as said:
                async for data in said:
                    yield emit(data)
        except asyncio.CancelledError as exc:  # the client went away: stop the upstream call
            error = exc
            raise
        except Exception as exc:
            # Bytes were forwarded already: no retry, no fallback; the client hears why.
            error = exc
            # A deadline that ran out is said as such: the provider did nothing wrong.
            message = str(exc) if isinstance(exc, StreamDeadline) else f"the provider's stream broke: {exc}"
            failed = sse(translator.fail(message))
            yield failed if told is None else told.add(failed)
        finally:
            await batches.aclose()
            await start.stream.aclose()
            await result.finish(error)
            outcome = (
                "success"
                if error is None
                else "cancelled"
                if isinstance(error, asyncio.CancelledError)
                else "stream_aborted"
            )
            cost = exchange.record(
                outcome,
                200 if error is None else 499 if outcome == "cancelled" else 200,
                result.attempts,
                provider=result.target.provider,
                model=result.target.model,
                usage=start.stream.usage,
                ttft_ms=ttft_ms,
                stream=True,
                failovers=result.failovers,
                retries=result.retries,
                error="" if error is None else type(error).__name__,
                answer=told,
            )
        if error is None and slot is not None and kept is not None:
            await slot.keep(
                b"".join(kept), SSE_MEDIA_TYPE, result.target.provider, result.target.model, start.stream.usage, cost
            )

    response = StreamingHttpResponse(events(), content_type=SSE_MEDIA_TYPE)
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    for name, header in exchange.success_headers(result, call).items():
        response[name] = header
    return response

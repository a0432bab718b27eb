"""The gateway endpoints: OpenAI's wire format (so the official SDKs work unchanged),
Anthropic's Messages API (`/v1/messages`, the anthropic SDK's), and the generic `/api/execute`.

Every client API is a dialect (dialects/): its request is translated into the internal chat
body, routed exactly as `/v1/chat/completions` is (same route resolution, fallback chain,
breakers, `X-Gateway-*` headers and request records), and the answer, the stream's events
and every error are said back in the caller's own shape.

Each request is checked once, at the edge, before any target is tried (bodies.py: bounded
JSON, names, the common OpenAI parameters; a bad one is the caller's 400 naming the field).
It is then routed along its fallback chain by the engine; the answer says who served it
(`X-Gateway-Route`, `X-Gateway-Provider`, `X-Gateway-Attempts`, encoded so that no header
carries a caller's raw text), caller errors from a provider come back as they are when they
are JSON (anything else, an HTML page say, is wrapped in our JSON error), and a request
nobody could serve gets 502 (503 when every target was skipped, with `Retry-After` when the
engine knows when a target comes back) with the attempt list in an OpenAI-style error body.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import secrets
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.multipartparser import MultiPartParserError
from django.http.response import HttpResponseBase
from django.views.decorators.http import require_http_methods

from providers import schemas as s
from providers.adapters import Result, Usage
from providers.bounds import header_value
from providers.engine import (
    AllTargetsFailed,
    AttemptRecord,
    CallerError,
    ChainResult,
    DeadlineExceeded,
    NoTargets,
    RoutePolicy,
    StreamDeadline,
    TargetSpec,
)
from providers.keys import KeyRefused
from providers.keys import admit as admit_key
from providers.openapi import ERRORS, Param, Response, document
from providers.runtime import Runtime, runtime
from providers.snapshot import ResolveError, Snapshot

from .auth import api_view
from .bodies import check_name, parse_json, validate
from .calls import Call, StreamStart
from .dialects import anthropic_messages as anthropic
from .dialects import openai_chat
from .dialects.dialect import Dialect, SseEvent, StreamTranslator
from .errors import RequestError, error_response, is_json
from .records import RequestRecord, announce

log = logging.getLogger(__name__)

GATEWAY_HEADERS = ("X-Gateway-Route", "X-Gateway-Provider", "X-Gateway-Model", "X-Gateway-Attempts", "X-Gateway-Failovers", "X-Request-Id")
ROUTING_ERRORS = {
    502: Response("Every target failed (or the deadline ran out); the attempts are in the body", s.ErrorBody),
    503: Response("Every target was skipped (breaker open, cooling down, exhausted)", s.ErrorBody),
}
STEERING = (
    Param("X-Gateway-Deadline", "header", "a shorter deadline for this request, seconds",
          {"type": "number", "exclusiveMinimum": 0, "maximum": 3600}),
    Param("X-Gateway-Prefer", "header", "try this provider first"),
)


def _answers(ok: Response) -> dict[int, Response]:
    return {200: ok, **ROUTING_ERRORS}


_pending: set[asyncio.Task[None]] = set()  # token counts on their way to a shared store

OPENAI = openai_chat.DIALECT
ANTHROPIC = anthropic.DIALECT

CAPABILITIES = ("chat", "embeddings", "image", "tts", "stt", "translation", "video")


def _dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def _options(request: HttpRequest) -> tuple[float | None, str | None]:
    """Caller overrides from headers: a shorter deadline and a preferred provider."""
    deadline = request.META.get("HTTP_X_GATEWAY_DEADLINE")
    try:
        deadline_s = float(deadline) if deadline else None
    except ValueError:
        raise RequestError(400, "X-Gateway-Deadline must be a number of seconds.") from None
    if deadline_s is not None and not 0 < deadline_s <= 3600:
        raise RequestError(400, "X-Gateway-Deadline must be > 0 and <= 3600.")
    prefer = request.META.get("HTTP_X_GATEWAY_PREFER") or None
    if prefer is not None:
        check_name(prefer, "X-Gateway-Prefer")
    return deadline_s, prefer


class Exchange:
    """One request's trip through the engine, and the record announced about it when it ends."""

    def __init__(self, request: HttpRequest, rt: Runtime, snapshot: Snapshot, capability: str, *,
                 dialect: Dialect = OPENAI) -> None:
        self.request = request
        self.rt = rt
        self.snapshot = snapshot
        self.capability = capability
        self.dialect = dialect
        self.started = time.perf_counter()
        self.at = datetime.now(UTC)
        self.request_id = secrets.token_hex(8)
        self.route = ""
        self.result: ChainResult[Any] | None = None

    def resolve(self, model: Any) -> tuple[RoutePolicy, tuple[TargetSpec, ...]]:
        try:
            policy, targets = self.snapshot.resolve(model, self.capability)
        except ResolveError as exc:
            raise RequestError(exc.status, str(exc), code=exc.code) from None
        self.route = policy.name
        return policy, targets

    async def run(self, call: Call, policy: RoutePolicy, targets: tuple[TargetSpec, ...], *,
                  deadline_s: float | None, prefer: str | None) -> ChainResult[Any]:
        key = getattr(self.request, "api_key", None)
        if key is not None:  # the key's routes, budget and rates, before any provider is called
            try:
                await admit_key(key, self.route)
            except KeyRefused as exc:
                raise exc.request_error() from None
        self.result = await self.rt.engine.execute(
            policy, targets, call.attempt_fn(self.rt, self.snapshot),
            deadline_s=deadline_s, preferred_provider=prefer, streaming=call.stream,
        )
        return self.result

    def headers(self, attempts: list[AttemptRecord], provider: str = "", model: str = "") -> dict[str, str]:
        # The route may be the caller's own `provider/model` text: checked at the edge, and
        # still encoded, so a header never carries a caller's raw characters.
        headers = {
            "X-Gateway-Route": header_value(self.route),
            "X-Gateway-Attempts": str(sum(1 for a in attempts if a.skipped is None)),
            "X-Request-Id": self.request_id,
        }
        if provider:
            headers["X-Gateway-Provider"] = header_value(provider)
            headers["X-Gateway-Model"] = header_value(model)
        return headers

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def record(self, outcome: str, status: int, attempts: list[AttemptRecord], *, provider: str = "",
               model: str = "", usage: Usage | None = None, ttft_ms: float | None = None,
               stream: bool = False, failovers: int = 0, retries: int = 0, error: str = "") -> None:
        usage = usage or Usage()
        cost = Decimal(0)
        if provider:
            entry = self.snapshot.providers.get(provider)
            if entry is not None:
                cost = usage.cost(entry.price(model))
                tokens = usage.tokens_in + usage.tokens_out
                if entry.tokens_per_minute and tokens:  # what the provider's token limit counts
                    task = asyncio.get_running_loop().create_task(self.rt.engine.limits.add_tokens(provider, tokens))
                    _pending.add(task)
                    task.add_done_callback(_pending.discard)
        key = getattr(self.request, "api_key", None)
        announce(RequestRecord(
            at=self.at, request_id=self.request_id, route=self.route, capability=self.capability,
            outcome=outcome, status=status, latency_ms=self.elapsed_ms(), provider=provider, model=model,
            api_key_id=key.id if key is not None else None, ttft_ms=ttft_ms, stream=stream,
            attempts=[a.as_dict() for a in attempts], calls=sum(1 for a in attempts if a.skipped is None),
            failovers=failovers, retries=retries, tokens_in=usage.tokens_in, tokens_out=usage.tokens_out,
            characters=usage.characters, images=usage.images, cost=cost, error=error,
        ))

    def failure_response(self, exc: BaseException) -> HttpResponse:
        """The answer, and the record, for a request the chain could not serve."""
        if isinstance(exc, CallerError):
            upstream = exc.upstream
            attempts = exc.attempts
            served = next((a for a in reversed(attempts) if a.skipped is None), None)
            status = upstream.status or 400
            response = _relayed_error(status, upstream.body, upstream.media_type, upstream.message, self.dialect)
            for name, value in self.headers(attempts, served.provider if served else "",
                                            served.model if served else "").items():
                response[name] = value
            hops = exc.hops
            self.record("caller_error", status, attempts, provider=served.provider if served else "",
                        model=served.model if served else "", error=upstream.classification.reason,
                        failovers=hops.failovers, retries=hops.retries)
            return response
        if isinstance(exc, AllTargetsFailed):
            attempts = exc.attempts
            if isinstance(exc, DeadlineExceeded):
                status, type_, outcome = 502, "deadline_exceeded", "deadline"
            elif exc.all_skipped:
                status, type_, outcome = 503, "no_target_available", "unavailable"
            else:
                status, type_, outcome = 502, "all_targets_failed", "failure"
            last = next((a for a in reversed(attempts) if a.skipped is None), None)
            reason = last.reason if last else (attempts[-1].skipped or "") if attempts else ""
            hops = exc.hops
            self.record(outcome, status, attempts, error=reason, failovers=hops.failovers, retries=hops.retries)
            headers = self.headers(attempts)
            retry_after = getattr(exc, "retry_after", None)
            if status == 503 and isinstance(retry_after, int | float) and not isinstance(retry_after, bool) \
                    and math.isfinite(retry_after):
                headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
            return error_response(status, type_, str(exc), attempts=[a.as_dict() for a in attempts],
                                  headers=headers, shape=self.dialect.error_body)
        if isinstance(exc, NoTargets):
            self.record("unavailable", 503, [], error="no_targets")
            return error_response(503, "no_target_available", str(exc), attempts=[], headers=self.headers([]),
                                  shape=self.dialect.error_body)
        raise exc


def _relayed_error(status: int, body: bytes, media_type: str | None, message: str,
                   dialect: Dialect = OPENAI) -> HttpResponse:
    """A provider's answer to a bad request, relayed to the caller: JSON in the caller's API's
    shape as it came; other JSON (an Anthropic error to an OpenAI client, say) said again in
    that shape with the provider's type and message; anything else (an HTML error page, text)
    wrapped in our JSON error, never served as a page of ours."""
    data: Any = None
    if body and is_json(media_type or "application/json"):
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if dialect.native_error(data) or (data is None and dialect is OPENAI):
            return HttpResponse(body, status=status, content_type=media_type or "application/json")
    type_, said = _upstream_error(data)
    return error_response(status, type_ or "invalid_request_error",
                          said or message or f"the provider answered {status}", code="upstream_error",
                          shape=dialect.error_body)


def _upstream_error(data: Any) -> tuple[str | None, str | None]:
    """(type, message) of a provider's JSON error: OpenAI's and Anthropic's `error` object,
    or Ollama's `{"error": "text"}`."""
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, str):
        return None, error
    if not isinstance(error, dict):
        return None, None
    type_, message = error.get("type"), error.get("message")
    return (type_ if isinstance(type_, str) and type_ else None,
            message if isinstance(message, str) and message else None)


def _success_headers(exchange: Exchange, result: ChainResult[Any]) -> dict[str, str]:
    headers = exchange.headers(result.attempts, result.target.provider, result.target.model)
    headers["X-Gateway-Failovers"] = str(result.failovers)
    return headers


async def _serve(request: HttpRequest, capability: str, body: dict[str, Any], *, stream: bool = False,
                 audio: bytes = b"", filename: str = "audio", dialect: Dialect = OPENAI,
                 caller: dict[str, Any] | None = None) -> HttpResponseBase:
    """Route one internal (OpenAI-shaped) request and answer in the shape of `dialect`'s API;
    `caller` is the caller's own body when `body` was translated from it."""
    rt = runtime()
    snapshot = await rt.current()
    exchange = Exchange(request, rt, snapshot, capability, dialect=dialect)
    policy, targets = exchange.resolve(body.get("model"))
    deadline_s, prefer = _options(request)
    call = Call(capability, body, stream=stream, audio=audio, filename=filename, for_target=dialect.for_target)
    try:
        result = await exchange.run(call, policy, targets, deadline_s=deadline_s, prefer=prefer)
    except (CallerError, AllTargetsFailed, NoTargets) as exc:
        return exchange.failure_response(exc)
    except asyncio.CancelledError:
        exchange.record("cancelled", 499, exchange.result.attempts if exchange.result else [])
        raise
    asked = str(body.get("model"))
    if stream:
        return _stream_response(exchange, result, dialect.stream(model=asked, request=caller or body))
    value: Result = result.value
    if dialect.from_chat is None:
        response = HttpResponse(value.content, content_type=value.media_type)
    else:
        completion = value.data if isinstance(value.data, dict) else json.loads(value.content)
        answer = dialect.from_chat(completion, model=asked, request=caller or body)
        response = HttpResponse(_dumps(answer), content_type="application/json")
    for name, header in _success_headers(exchange, result).items():
        response[name] = header
    exchange.record("success", 200, result.attempts, provider=result.target.provider, model=result.target.model,
                    usage=value.usage, failovers=result.failovers, retries=result.retries)
    return response


def _sse(events: list[SseEvent]) -> bytes:
    out = b""
    for name, data in events:
        head = b"event: " + name.encode() + b"\n" if name else b""
        out += head + b"data: " + (data.encode() if isinstance(data, str) else _dumps(data)) + b"\n\n"
    return out


def _usage_of(usage: Usage) -> dict[str, int]:
    return {"prompt_tokens": usage.tokens_in, "completion_tokens": usage.tokens_out,
            "total_tokens": usage.tokens_in + usage.tokens_out}


def _stream_response(exchange: Exchange, result: ChainResult[Any],
                     translator: StreamTranslator) -> StreamingHttpResponse:
    """The stream of chunks, said as `translator` (the dialect's) says it."""
    start: StreamStart = result.value
    ttft_ms = exchange.elapsed_ms()

    async def events() -> AsyncIterator[bytes]:
        error: BaseException | None = None
        try:
            yield _sse(translator.start() + translator.feed(start.first))
            async for chunk in start.chunks:
                said = translator.feed(chunk)
                if said:
                    yield _sse(said)
            yield _sse(translator.close(_usage_of(start.stream.usage)))
        except asyncio.CancelledError as exc:  # the client went away: stop the upstream call
            error = exc
            raise
        except Exception as exc:
            # Bytes were forwarded already: no retry, no fallback; the client hears why.
            error = exc
            # A deadline that ran out is said as such: the provider did nothing wrong.
            message = str(exc) if isinstance(exc, StreamDeadline) else f"the provider's stream broke: {exc}"
            yield _sse(translator.fail(message))
        finally:
            await start.stream.aclose()
            await result.finish(error)
            outcome = ("success" if error is None else
                       "cancelled" if isinstance(error, asyncio.CancelledError) else "stream_aborted")
            exchange.record(outcome, 200 if error is None else 499 if outcome == "cancelled" else 200,
                            result.attempts, provider=result.target.provider, model=result.target.model,
                            usage=start.stream.usage, ttft_ms=ttft_ms, stream=True, failovers=result.failovers,
                            retries=result.retries, error="" if error is None else type(error).__name__)

    response = StreamingHttpResponse(events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    for name, header in _success_headers(exchange, result).items():
        response[name] = header
    return response


@document("POST", "/v1/chat/completions", "Chat completion (OpenAI format; stream: true for server-sent events)", scope="gateway", request=s.ChatRequest, request_content_type="application/json",
          responses=_answers(Response("The completion, or an SSE stream of chunks", s.ChatCompletion, headers=GATEWAY_HEADERS, also=("text/event-stream",))), errors=(400, 401, 403, 404, 413, 429), params=STEERING)
@require_http_methods(["POST"])
@api_view("gateway")
async def chat_completions(request: HttpRequest) -> HttpResponseBase:
    body = parse_json(request)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError(400, "`messages` must be a non-empty list.", code="invalid_messages",
                           param="messages")
    check_name(body.get("model"), "model")
    validate(s.ChatRequest, body)
    return await _serve(request, "chat", body, stream=body.get("stream") is True)


@document("POST", "/v1/embeddings", "Embeddings (OpenAI format)", scope="gateway", request=s.EmbeddingsRequest, request_content_type="application/json",
          responses=_answers(Response("The embeddings", s.Embeddings, headers=GATEWAY_HEADERS)), errors=(400, 401, 403, 404, 413, 429), params=STEERING)
@require_http_methods(["POST"])
@api_view("gateway")
async def embeddings(request: HttpRequest) -> HttpResponseBase:
    body = parse_json(request)
    if "input" not in body:
        raise RequestError(400, "`input` is required.", code="missing_input", param="input")
    check_name(body.get("model"), "model")
    validate(s.EmbeddingsRequest, body)
    return await _serve(request, "embeddings", body)


@document("POST", "/v1/images/generations", "Image generation (OpenAI format)", scope="gateway", request=s.ImageRequest, request_content_type="application/json",
          responses=_answers(Response("The images", s.Images, headers=GATEWAY_HEADERS)), errors=(400, 401, 403, 404, 413, 429), params=STEERING)
@require_http_methods(["POST"])
@api_view("gateway")
async def images_generations(request: HttpRequest) -> HttpResponseBase:
    body = parse_json(request)
    if not isinstance(body.get("prompt"), str) or not body["prompt"]:
        raise RequestError(400, "`prompt` must be a non-empty string.", code="missing_prompt", param="prompt")
    check_name(body.get("model"), "model")
    validate(s.ImageRequest, body)
    return await _serve(request, "image", body)


@document("POST", "/v1/audio/speech", "Text to speech (OpenAI format); audio bytes back", scope="gateway", request=s.SpeechRequest, request_content_type="application/json",
          responses=_answers(Response("The audio, in the type the provider answered with (audio/mpeg, audio/wav, ...)", None, "audio/*", headers=GATEWAY_HEADERS, also=("application/octet-stream",))), errors=(400, 401, 403, 404, 413, 429), params=STEERING)
@require_http_methods(["POST"])
@api_view("gateway")
async def audio_speech(request: HttpRequest) -> HttpResponseBase:
    body = parse_json(request)
    if not isinstance(body.get("input"), str) or not body["input"]:
        raise RequestError(400, "`input` must be a non-empty string.", code="missing_input", param="input")
    check_name(body.get("model"), "model")
    validate(s.SpeechRequest, body)
    return await _serve(request, "tts", body)


@document("POST", "/v1/audio/transcriptions", "Speech to text (OpenAI format, multipart)", scope="gateway", request=s.TranscriptionRequest, request_content_type="multipart/form-data",
          responses=_answers(Response("The transcription", s.Transcription, headers=GATEWAY_HEADERS)), errors=(400, 401, 403, 404, 413, 429), params=STEERING)
@require_http_methods(["POST"])
@api_view("gateway")
async def audio_transcriptions(request: HttpRequest) -> HttpResponseBase:
    try:
        upload = request.FILES.get("file")
    except MultiPartParserError as exc:
        raise RequestError(400, f"The body is not valid multipart/form-data: {exc}", code="invalid_multipart") from None
    if upload is None:
        raise RequestError(400, "`file` (multipart) is required.", code="missing_file", param="file")
    body: dict[str, str] = {k: str(v) for k, v in request.POST.items()}
    check_name(body.get("model"), "model")
    _check_transcription_fields(body)
    return await _serve(request, "stt", body, audio=upload.read(), filename=upload.name or "audio")


def _check_transcription_fields(body: dict[str, str]) -> None:
    """Multipart fields are text: the numeric ones must read as numbers in range."""
    temperature = body.get("temperature")
    if temperature is not None:
        try:
            value = float(temperature)
        except ValueError:
            value = math.nan
        if not 0 <= value <= 1:
            raise RequestError(400, "Invalid `temperature`: a number from 0 to 1.", code="invalid_value",
                               param="temperature")


def _model_entries(snapshot: Snapshot) -> list[dict[str, Any]]:
    """What a client may put in `model`: enabled routes, then each enabled provider's models."""
    data: list[dict[str, Any]] = [
        {"id": name, "object": "model", "created": 0, "owned_by": "gateway",
         "capability": route.policy.capability, "kind": "route"}
        for name, route in sorted(snapshot.routes.items()) if route.enabled
    ]
    for provider in sorted(snapshot.providers.values(), key=lambda p: p.name):
        if not provider.enabled:
            continue
        for model in provider.models:
            data.append({"id": f"{provider.name}/{model}", "object": "model", "created": 0,
                         "owned_by": provider.name,
                         "capabilities": list(provider.model_capabilities.get(model, provider.capabilities)),
                         "kind": "provider_model"})
    return data


@document("GET", "/v1/models", "Routes and provider/model names a client may put in `model`", scope="gateway",
          responses={200: Response("The models", s.ModelList)}, errors=(401, 403))
@require_http_methods(["GET"])
@api_view("gateway")
async def models(request: HttpRequest) -> HttpResponseBase:
    return JsonResponse({"object": "list", "data": _model_entries(await runtime().current())})


@document("GET", "/v1/models/{model}", "One entry of /v1/models (a route, or provider/model: the id may hold '/')",
          scope="gateway", responses={200: Response("The model", s.ModelEntry)}, errors=(401, 403, 404))
@require_http_methods(["GET"])
@api_view("gateway")
async def model_detail(request: HttpRequest, model: str) -> HttpResponseBase:
    for entry in _model_entries(await runtime().current()):
        if entry["id"] == model:
            return JsonResponse(entry)
    shown = model if len(model) <= 200 else model[:200] + "…"
    raise RequestError(404, f"The model {shown!r} does not exist (GET /v1/models lists them).",
                       code="model_not_found", param="model")


# -- /v1/messages (Anthropic) ----------------------------------------------------------------

def _anthropic_errors(*statuses: int) -> dict[int, Response]:
    """The error answers of an Anthropic endpoint, documented with Anthropic's error body."""
    meanings = {**ERRORS, 502: f"{ROUTING_ERRORS[502].description} (api_error)",
                503: f"{ROUTING_ERRORS[503].description} (overloaded_error)"}
    return {status: Response(meanings[status], anthropic.AnthropicErrorBody) for status in statuses}


@document("POST", "/v1/messages", "Anthropic Messages API (stream: true for Anthropic's server-sent events), "
          "served by any chat route", scope="gateway", request=anthropic.AnthropicMessageRequest,
          responses={200: Response("The message, or Anthropic's SSE event stream", anthropic.AnthropicMessage,
                                   headers=GATEWAY_HEADERS, also=("text/event-stream",)),
                     **_anthropic_errors(400, 401, 403, 404, 413, 429, 502, 503)},
          errors=(), params=STEERING)
@require_http_methods(["POST"])
@api_view("gateway", dialect=ANTHROPIC)
async def messages(request: HttpRequest) -> HttpResponseBase:
    body = parse_json(request)
    check_name(body.get("model"), "model")
    chat = anthropic.to_chat(body)
    return await _serve(request, "chat", chat, stream=body.get("stream") is True, dialect=ANTHROPIC, caller=body)


@document("POST", "/v1/messages/count_tokens", "Anthropic's token count of a Messages request: an estimate "
          "(X-Gateway-Estimated: true)", scope="gateway", request=anthropic.AnthropicCountTokensRequest,
          responses={200: Response("The estimated prompt tokens", anthropic.AnthropicTokenCount,
                                   headers=("X-Gateway-Estimated", "X-Gateway-Route", "X-Request-Id")),
                     **_anthropic_errors(400, 401, 403, 404, 413, 429)},
          errors=())
@require_http_methods(["POST"])
@api_view("gateway", dialect=ANTHROPIC)
async def messages_count_tokens(request: HttpRequest) -> HttpResponseBase:
    body = parse_json(request)
    check_name(body.get("model"), "model")
    chat = anthropic.count_request(body)
    rt = runtime()
    exchange = Exchange(request, rt, await rt.current(), "chat", dialect=ANTHROPIC)
    exchange.resolve(chat["model"])  # an unknown route is a 404, as for /v1/messages
    response = JsonResponse({"input_tokens": anthropic.estimate_tokens(chat)})
    for name, value in exchange.headers([]).items():
        if name != "X-Gateway-Attempts":
            response[name] = value
    response["X-Gateway-Estimated"] = "true"
    return response


# -- /api/execute ---------------------------------------------------------------------------

def _execute_body(capability: str, data: Any, options: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI-shaped request for `capability` from execute's `input` and `options`."""
    if capability == "chat":
        if isinstance(data, str):
            body: dict[str, Any] = {"messages": [{"role": "user", "content": data}]}
        elif isinstance(data, list):
            body = {"messages": data}
        elif isinstance(data, dict) and isinstance(data.get("messages"), list):
            body = dict(data)
        else:
            raise RequestError(400, "chat `input` must be a string, a list of messages or {messages}.", param="input")
        if not body["messages"]:
            raise RequestError(400, "chat `input` has no messages.", param="input")
    elif capability == "embeddings":
        body = {"input": data}
    elif capability == "image":
        body = {"prompt": data} if isinstance(data, str) else dict(data) if isinstance(data, dict) else {}
        if not body.get("prompt"):
            raise RequestError(400, "image `input` must be a prompt string or {prompt, ...}.", param="input")
    elif capability == "tts":
        body = {"input": data} if isinstance(data, str) else dict(data) if isinstance(data, dict) else {}
        if not body.get("input"):
            raise RequestError(400, "tts `input` must be the text to speak or {input, voice, ...}.", param="input")
    elif capability == "translation":
        body = {"text": data} if isinstance(data, str | list) else dict(data) if isinstance(data, dict) else {}
        if not body.get("text"):
            raise RequestError(400, "translation `input` must be text, a list of texts or {text, target_lang}.", param="input")
    elif capability == "video":
        body = {"prompt": data} if isinstance(data, str) else dict(data) if isinstance(data, dict) else {}
        if not isinstance(body.get("prompt"), str) or not body["prompt"]:
            raise RequestError(400, "video `input` must be a prompt string or {prompt, images, audio, duration_s}.", param="input")
    else:
        raise RequestError(400, f"`capability` must be one of {', '.join(c for c in CAPABILITIES if c != 'stt')}.",
                           param="capability")
    for name, value in options.items():
        if name not in ("deadline_s", "prefer"):
            body.setdefault(name, value)
    if capability == "translation" and not body.get("target_lang"):
        raise RequestError(400, "translation needs `target_lang` (in `input` or `options`).",
                           param="options.target_lang")
    body.pop("stream", None)
    return body


def _output(value: Result) -> Any:
    if value.media_type.startswith("application/json"):
        return value.data if value.data is not None else json.loads(value.content)
    return {"media_type": value.media_type, "b64": base64.b64encode(value.content).decode()}


@document("POST", "/api/execute", "Any capability through a route, with the attempt list in the answer", scope="gateway", request=s.ExecuteRequest, request_content_type="application/json",
          responses=_answers(Response("The result and every attempt", s.ExecuteResult, headers=GATEWAY_HEADERS)), errors=(400, 401, 403, 404, 413, 429), params=STEERING)
@require_http_methods(["POST"])
@api_view("gateway")
async def execute(request: HttpRequest) -> HttpResponseBase:
    payload = parse_json(request)
    capability = payload.get("capability")
    if capability not in CAPABILITIES or capability == "stt":
        raise RequestError(400, f"`capability` must be one of {', '.join(c for c in CAPABILITIES if c != 'stt')}.",
                           param="capability")
    options = payload.get("options") or {}
    if not isinstance(options, dict):
        raise RequestError(400, "`options` must be an object.", param="options")
    route_name = payload.get("route") or payload.get("model")
    check_name(route_name, "route")
    validate(s.ExecuteRequest, payload)
    data = payload.get("input")
    body = _execute_body(capability, data, options)
    # The checks of the matching /v1 endpoint, each error named where the caller wrote it.
    origin = {name: f"input.{name}" if isinstance(data, dict) else "input" for name in body}
    origin.update({name: f"options.{name}" for name in options if not (isinstance(data, dict) and name in data)})
    validate(s.EXECUTE_PARAMS[capability], body, origin=origin)
    deadline_s = options.get("deadline_s")
    if options.get("prefer") is not None:
        check_name(options["prefer"], "options.prefer")
    rt = runtime()
    snapshot = await rt.current()
    exchange = Exchange(request, rt, snapshot, capability)
    policy, targets = exchange.resolve(route_name)
    try:
        result = await exchange.run(Call(capability, body), policy, targets, deadline_s=deadline_s,
                                    prefer=options.get("prefer"))
    except (CallerError, AllTargetsFailed, NoTargets) as exc:
        return exchange.failure_response(exc)
    value: Result = result.value
    entry = snapshot.providers.get(result.target.provider)
    cost = value.usage.cost(entry.price(result.target.model) if entry else None)
    answer = {
        "id": exchange.request_id,
        "route": exchange.route,
        "capability": capability,
        "provider": result.target.provider,
        "model": result.target.model,
        "output": _output(value),
        "usage": {"tokens_in": value.usage.tokens_in, "tokens_out": value.usage.tokens_out,
                  "characters": value.usage.characters, "images": value.usage.images},
        "cost": float(cost),
        "failovers": result.failovers,
        "retries": result.retries,
        "latency_ms": round(exchange.elapsed_ms(), 3),
        "attempts": [a.as_dict() for a in result.attempts],
    }
    response = JsonResponse(answer)
    for name, header in _success_headers(exchange, result).items():
        response[name] = header
    exchange.record("success", 200, result.attempts, provider=result.target.provider, model=result.target.model,
                    usage=value.usage, failovers=result.failovers, retries=result.retries)
    return response

"""The gateway endpoints: OpenAI's wire format (so the official SDKs work unchanged),
Anthropic's Messages API (`/v1/messages`, the anthropic SDK's), OpenAI's Responses API
(`/v1/responses`, stateless), and the generic `/api/execute`.

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

The trip itself is in exchange.py (ids, admission, headers, records) and serving.py (the
response cache, whole answers and streams); this module is the endpoints and their documents.
"""

from __future__ import annotations

import base64
import json
import logging
import math
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.http.response import HttpResponseBase
from django.views.decorators.http import require_http_methods

from providers import schemas as s
from providers.adapters import Result
from providers.engine import AllTargetsFailed, CallerError, NoTargets
from providers.openapi import ERRORS, Param, Response, document
from providers.runtime import runtime
from providers.snapshot import Snapshot

from .auth import api_view
from .bodies import check_name, parse_json, validate
from .calls import Call
from .dialects import anthropic_messages as anthropic
from .dialects import openai_chat, responses_api
from .errors import RequestError
from .exchange import Exchange
from .serving import serve as _serve

log = logging.getLogger(__name__)

GATEWAY_HEADERS = (
    "X-Gateway-Route",
    "X-Gateway-Provider",
    "X-Gateway-Model",
    "X-Gateway-Attempts",
    "X-Gateway-Failovers",
    "X-Gateway-Cache",
    "X-Request-Id",
)
ROUTING_ERRORS = {
    502: Response("Every target failed (or the deadline ran out); the attempts are in the body", s.ErrorBody),
    503: Response("Every target was skipped (breaker open, cooling down, exhausted)", s.ErrorBody),
}
STEERING = (
    Param(
        "X-Gateway-Deadline",
        "header",
        "a shorter deadline for this request, seconds",
        {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
    ),
    Param("X-Gateway-Prefer", "header", "try this provider first"),
)


def _answers(ok: Response) -> dict[int, Response]:
    return {200: ok, **ROUTING_ERRORS}


OPENAI = openai_chat.DIALECT
ANTHROPIC = anthropic.DIALECT
RESPONSES = responses_api.DIALECT

CAPABILITIES = ("chat", "embeddings", "image", "tts", "stt", "translation", "video")


@document(
    "POST",
    "/v1/chat/completions",
    "Chat completion (OpenAI format; stream: true for server-sent events)",
    scope="gateway",
    request=s.ChatRequest,
    request_content_type="application/json",
    responses=_answers(
        Response(
            "The completion, or an SSE stream of chunks",
            s.ChatCompletion,
            headers=GATEWAY_HEADERS,
            also=("text/event-stream",),
        )
    ),
    errors=(400, 401, 403, 404, 413, 429),
    params=STEERING,
)
@require_http_methods(["POST"])
@api_view("gateway")
async def chat_completions(request: HttpRequest) -> HttpResponseBase:
    body = parse_json(request)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError(400, "`messages` must be a non-empty list.", code="invalid_messages", param="messages")
    check_name(body.get("model"), "model")
    validate(s.ChatRequest, body)
    return await _serve(request, "chat", body, stream=body.get("stream") is True)


@document(
    "POST",
    "/v1/embeddings",
    "Embeddings (OpenAI format)",
    scope="gateway",
    request=s.EmbeddingsRequest,
    request_content_type="application/json",
    responses=_answers(Response("The embeddings", s.Embeddings, headers=GATEWAY_HEADERS)),
    errors=(400, 401, 403, 404, 413, 429),
    params=STEERING,
)
@require_http_methods(["POST"])
@api_view("gateway")
async def embeddings(request: HttpRequest) -> HttpResponseBase:
    body = parse_json(request)
    if "input" not in body:
        raise RequestError(400, "`input` is required.", code="missing_input", param="input")
    check_name(body.get("model"), "model")
    validate(s.EmbeddingsRequest, body)
    return await _serve(request, "embeddings", body)


@document(
    "POST",
    "/v1/images/generations",
    "Image generation (OpenAI format)",
    scope="gateway",
    request=s.ImageRequest,
    request_content_type="application/json",
    responses=_answers(Response("The images", s.Images, headers=GATEWAY_HEADERS)),
    errors=(400, 401, 403, 404, 413, 429),
    params=STEERING,
)
@require_http_methods(["POST"])
@api_view("gateway")
async def images_generations(request: HttpRequest) -> HttpResponseBase:
    body = parse_json(request)
    if not isinstance(body.get("prompt"), str) or not body["prompt"]:
        raise RequestError(400, "`prompt` must be a non-empty string.", code="missing_prompt", param="prompt")
    check_name(body.get("model"), "model")
    validate(s.ImageRequest, body)
    return await _serve(request, "image", body)


@document(
    "POST",
    "/v1/audio/speech",
    "Text to speech (OpenAI format); audio bytes back",
    scope="gateway",
    request=s.SpeechRequest,
    request_content_type="application/json",
    responses=_answers(
        Response(
            "The audio in the `response_format` asked for (audio/mpeg for mp3, audio/wav, ...): a target "
            "that cannot make it is skipped, and with none that can the answer is a 400",
            None,
            "audio/*",
            headers=GATEWAY_HEADERS,
            also=("application/octet-stream",),
        )
    ),
    errors=(400, 401, 403, 404, 413, 429),
    params=STEERING,
)
@require_http_methods(["POST"])
@api_view("gateway")
async def audio_speech(request: HttpRequest) -> HttpResponseBase:
    body = parse_json(request)
    if not isinstance(body.get("input"), str) or not body["input"]:
        raise RequestError(400, "`input` must be a non-empty string.", code="missing_input", param="input")
    check_name(body.get("model"), "model")
    validate(s.SpeechRequest, body)
    return await _serve(request, "tts", body)


@document(
    "POST",
    "/v1/audio/transcriptions",
    "Speech to text (OpenAI format, multipart)",
    scope="gateway",
    request=s.TranscriptionRequest,
    request_content_type="multipart/form-data",
    responses=_answers(Response("The transcription", s.Transcription, headers=GATEWAY_HEADERS)),
    errors=(400, 401, 403, 404, 413, 429),
    params=STEERING,
)
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
            raise RequestError(
                400, "Invalid `temperature`: a number from 0 to 1.", code="invalid_value", param="temperature"
            )


def _model_entries(snapshot: Snapshot) -> list[dict[str, Any]]:
    """What a client may put in `model`: enabled routes, then each enabled provider's models."""
    data: list[dict[str, Any]] = [
        {
            "id": name,
            "object": "model",
            "created": 0,
            "owned_by": "gateway",
            "capability": route.policy.capability,
            "kind": "route",
        }
        for name, route in sorted(snapshot.routes.items())
        if route.enabled
    ]
    for provider in sorted(snapshot.providers.values(), key=lambda p: p.name):
        if not provider.enabled:
            continue
        for model in provider.models:
            data.append(
                {
                    "id": f"{provider.name}/{model}",
                    "object": "model",
                    "created": 0,
                    "owned_by": provider.name,
                    "capabilities": list(provider.model_capabilities.get(model, provider.capabilities)),
                    "kind": "provider_model",
                }
            )
    return data


@document(
    "GET",
    "/v1/models",
    "Routes and provider/model names a client may put in `model`",
    scope="gateway",
    responses={200: Response("The models", s.ModelList)},
    errors=(401, 403),
)
@require_http_methods(["GET"])
@api_view("gateway")
async def models(request: HttpRequest) -> HttpResponseBase:
    return JsonResponse({"object": "list", "data": _model_entries(await runtime().current())})


@document(
    "GET",
    "/v1/models/{model}",
    "One entry of /v1/models (a route, or provider/model: the id may hold '/')",
    scope="gateway",
    responses={200: Response("The model", s.ModelEntry)},
    errors=(401, 403, 404),
)
@require_http_methods(["GET"])
@api_view("gateway")
async def model_detail(request: HttpRequest, model: str) -> HttpResponseBase:
    for entry in _model_entries(await runtime().current()):
        if entry["id"] == model:
            return JsonResponse(entry)
    shown = model if len(model) <= 200 else model[:200] + "…"
    raise RequestError(
        404, f"The model {shown!r} does not exist (GET /v1/models lists them).", code="model_not_found", param="model"
    )


# -- /v1/messages (Anthropic) ----------------------------------------------------------------


def _anthropic_errors(*statuses: int) -> dict[int, Response]:
    """The error answers of an Anthropic endpoint, documented with Anthropic's error body."""
    meanings = {
        **ERRORS,
        502: f"{ROUTING_ERRORS[502].description} (api_error)",
        503: f"{ROUTING_ERRORS[503].description} (overloaded_error)",
    }
    return {status: Response(meanings[status], anthropic.AnthropicErrorBody) for status in statuses}


@document(
    "POST",
    "/v1/messages",
    "Anthropic Messages API (stream: true for Anthropic's server-sent events), served by any chat route",
    scope="gateway",
    request=anthropic.AnthropicMessageRequest,
    responses={
        200: Response(
            "The message, or Anthropic's SSE event stream",
            anthropic.AnthropicMessage,
            headers=GATEWAY_HEADERS,
            also=("text/event-stream",),
        ),
        **_anthropic_errors(400, 401, 403, 404, 413, 429, 502, 503),
    },
    errors=(),
    params=STEERING,
)
@require_http_methods(["POST"])
@api_view("gateway", dialect=ANTHROPIC)
async def messages(request: HttpRequest) -> HttpResponseBase:
    body = parse_json(request)
    check_name(body.get("model"), "model")
    chat = anthropic.to_chat(body)
    return await _serve(request, "chat", chat, stream=body.get("stream") is True, dialect=ANTHROPIC, caller=body)


@document(
    "POST",
    "/v1/messages/count_tokens",
    "Anthropic's token count of a Messages request: an estimate (X-Gateway-Estimated: true)",
    scope="gateway",
    request=anthropic.AnthropicCountTokensRequest,
    responses={
        200: Response(
            "The estimated prompt tokens",
            anthropic.AnthropicTokenCount,
            headers=("X-Gateway-Estimated", "X-Gateway-Route", "X-Request-Id"),
        ),
        **_anthropic_errors(400, 401, 403, 404, 413, 429),
    },
    errors=(),
)
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


# -- /v1/responses (OpenAI's Responses API) ----------------------------------------------------


@document(
    "POST",
    "/v1/responses",
    "OpenAI's Responses API, stateless (stream: true for its typed server-sent events), served by any chat route",
    scope="gateway",
    request=responses_api.ResponsesRequest,
    responses=_answers(
        Response(
            "The response, or the stream of its typed events (event: <type>)",
            responses_api.ResponsesObject,
            headers=GATEWAY_HEADERS,
            also=("text/event-stream",),
        )
    ),
    errors=(400, 401, 403, 404, 413, 429),
    params=STEERING,
)
@require_http_methods(["POST"])
@api_view("gateway", dialect=RESPONSES)
async def responses(request: HttpRequest) -> HttpResponseBase:
    body = parse_json(request)
    check_name(body.get("model"), "model")
    chat = responses_api.to_chat(body)
    return await _serve(request, "chat", chat, stream=body.get("stream") is True, dialect=RESPONSES, caller=body)


# -- /api/execute ---------------------------------------------------------------------------

# capability -> (the field a bare `input` fills, the types a bare input may be, what to say
# when the field ends up empty)
_SHORTHAND: dict[str, tuple[str, type | tuple[type, ...], str]] = {
    "image": ("prompt", str, "image `input` must be a prompt string or {prompt, ...}."),
    "tts": ("input", str, "tts `input` must be the text to speak or {input, voice, ...}."),
    "translation": ("text", (str, list), "translation `input` must be text, a list of texts or {text, target_lang}."),
    "video": ("prompt", str, "video `input` must be a prompt string or {prompt, images, audio, duration_s}."),
}


def _chat_body(data: Any) -> dict[str, Any]:
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
    return body


def _shorthand_body(capability: str, data: Any) -> dict[str, Any]:
    field, bare, problem = _SHORTHAND[capability]
    body = {field: data} if isinstance(data, bare) else dict(data) if isinstance(data, dict) else {}
    value = body.get(field)
    if not value or (capability == "video" and not isinstance(value, str)):
        raise RequestError(400, problem, param="input")
    return body


def _execute_body(capability: str, data: Any, options: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI-shaped request for `capability` from execute's `input` and `options`."""
    if capability == "chat":
        body = _chat_body(data)
    elif capability == "embeddings":
        body = {"input": data}
    elif capability in _SHORTHAND:
        body = _shorthand_body(capability, data)
    else:
        raise RequestError(
            400, f"`capability` must be one of {', '.join(c for c in CAPABILITIES if c != 'stt')}.", param="capability"
        )
    for name, value in options.items():
        if name not in ("deadline_s", "prefer"):
            body.setdefault(name, value)
    if capability == "translation" and not body.get("target_lang"):
        raise RequestError(
            400, "translation needs `target_lang` (in `input` or `options`).", param="options.target_lang"
        )
    body.pop("stream", None)
    return body


def _output(value: Result) -> Any:
    if value.media_type.startswith("application/json"):
        return value.data if value.data is not None else json.loads(value.content)
    return {"media_type": value.media_type, "b64": base64.b64encode(value.content).decode()}


@document(
    "POST",
    "/api/execute",
    "Any capability through a route, with the attempt list in the answer",
    scope="gateway",
    request=s.ExecuteRequest,
    request_content_type="application/json",
    responses=_answers(Response("The result and every attempt", s.ExecuteResult, headers=GATEWAY_HEADERS)),
    errors=(400, 401, 403, 404, 413, 429),
    params=STEERING,
)
@require_http_methods(["POST"])
@api_view("gateway")
async def execute(request: HttpRequest) -> HttpResponseBase:
    payload = parse_json(request)
    capability = payload.get("capability")
    if capability not in CAPABILITIES or capability == "stt":
        raise RequestError(
            400, f"`capability` must be one of {', '.join(c for c in CAPABILITIES if c != 'stt')}.", param="capability"
        )
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
    call = Call(capability, body)
    try:
        result = await exchange.run(call, policy, targets, deadline_s=deadline_s, prefer=options.get("prefer"))
    except (CallerError, AllTargetsFailed, NoTargets) as exc:
        return exchange.failure_response(exc)
    value: Result = result.value
    cost = exchange.cost(result.target.provider, result.target.model, value.usage)
    answer = {
        "id": exchange.request_id,
        "route": exchange.route,
        "capability": capability,
        "provider": result.target.provider,
        "model": result.target.model,
        "output": _output(value),
        "usage": {
            "tokens_in": value.usage.tokens_in,
            "tokens_out": value.usage.tokens_out,
            "characters": value.usage.characters,
            "images": value.usage.images,
        },
        "cost": None if cost is None else float(cost),  # null: the model's price is unknown
        "failovers": result.failovers,
        "retries": result.retries,
        "latency_ms": round(exchange.elapsed_ms(), 3),
        "attempts": [a.as_dict() for a in result.attempts],
    }
    response = JsonResponse(answer)
    for name, header in exchange.success_headers(result, call).items():
        response[name] = header
    exchange.record(
        "success",
        200,
        result.attempts,
        provider=result.target.provider,
        model=result.target.model,
        usage=value.usage,
        failovers=result.failovers,
        retries=result.retries,
        answer=response,
    )
    return response

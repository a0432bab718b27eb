"""The console's test pages (staff): `/providers/<name>/test` and `/routes/<name>/test` send
one sample request (chat, embedding, image or speech) through the gateway's own serving path
and show the answer, the attempt list and the timings.

The request is not a copy of the gateway's work: `providers.gateway.serving.serve`, the
function every `/v1/...` endpoint ends in, routes it (route resolution, the engine's chain,
breakers, the request record) in this process. What differs from an API call:

- there is no API key: the console's user is the caller, so no key's routes, budget or rates
  apply; the user needs the `act` level (health/access.py), as other actions that spend do;
- its id is `console-<hex>` (kept by the gateway as a caller's own `X-Request-Id` would be),
  which is how the request log tells it came from the console;
- the response cache is bypassed (`X-Gateway-Cache: no-cache`): a test asks the provider;
- a provider's test names `<provider>/<model>`, a one-target chain with no fallback; a route's
  test names the route and takes its chain as a client would.

Each sent test is audited (an AuditLog row `test_request`; on a provider's test also an
`action` event in its history). The record the gateway announces for the request (the same
one the request log keeps) is heard here while the request runs, so the page shows its
attempts at once, before the log's batch is written.

Speech comes back as audio bytes; the page's Content-Security-Policy admits no `data:` media,
so the audio is kept in the cache for `AUDIO_TTL_S` and played from `/test-audio/<token>`.
Nothing here answers with a 500: a refused or failed test is shown on the page.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods
from pydantic import BaseModel

from project.database import db_call
from providers import schemas as s
from providers.gateway.bodies import validate
from providers.gateway.errors import RequestError
from providers.gateway.records import RequestRecord, on_request_finished
from providers.gateway.serving import serve
from providers.models import AuditLog
from providers.runtime import runtime

from .access import console_view
from .events import record_action
from .views import ConsoleRequest

log = logging.getLogger(__name__)

TEMPLATE = "health/test_page.html"
MAX_TEXT = 4000
AUDIO_TTL_S = 600
AUDIO_MAX_BYTES = 20 * 1024 * 1024
AUDIO_KEY = "console-test-audio:"

# The capabilities a test sends, in the order the page offers them: (label, field label, sample).
MODALITIES: dict[str, tuple[str, str, str]] = {
    "chat": ("Chat", "Prompt", "Say hello to the operator in one short sentence."),
    "embeddings": ("Embedding", "Text", "The quick brown fox jumps over the lazy dog."),
    "image": ("Image", "Prompt", "A lighthouse on a rocky coast at dusk, watercolour."),
    "tts": ("Speech", "Text", "Hello from the gateway console."),
}
SCHEMAS: dict[str, type[BaseModel]] = {
    "chat": s.ChatRequest,
    "embeddings": s.EmbeddingsRequest,
    "image": s.ImageRequest,
    "tts": s.SpeechRequest,
}
IMAGE_TYPES = (
    (b"\x89PNG", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"RIFF", "image/webp"),
)


@dataclass(frozen=True)
class Subject:
    """What a test page sends to: one provider (with a model to name) or one route."""

    kind: str  # provider | route
    name: str
    capabilities: tuple[str, ...]  # of MODALITIES, in its order
    models: tuple[str, ...] = ()
    default_models: dict[str, str] = field(default_factory=dict)

    def model_for(self, capability: str, model: str) -> str:
        """The `model` the gateway is asked for: the route's name, or `provider/model`."""
        if self.kind == "route":
            return self.name
        return f"{self.name}/{model or self.default_models.get(capability, '')}"


@dataclass
class Outcome:
    """One sent test, as the page shows it."""

    request_id: str
    status: int
    ok: bool
    elapsed_ms: float
    record: RequestRecord | None = None
    error: str = ""
    text: str = ""  # chat
    dimensions: int | None = None  # embedding
    preview: list[float] = field(default_factory=list)
    image_src: str = ""  # a data: URL
    image_url: str = ""  # a provider's own URL (shown as a link: the page loads no outside image)
    audio_src: str = ""
    media_type: str = ""
    usage: dict[str, Any] = field(default_factory=dict)


# -- hearing the request's record ----------------------------------------------------------------

_heard: ContextVar[list[RequestRecord] | None] = ContextVar("console_test_records", default=None)


def _hear(record: RequestRecord) -> None:
    heard = _heard.get()
    if heard is not None:
        heard.append(record)


@contextmanager
def hearing() -> Iterator[list[RequestRecord]]:
    """The records the gateway announces in this context (this request's task) while open."""
    on_request_finished(_hear)  # once: the registry keeps one of each listener
    heard: list[RequestRecord] = []
    token = _heard.set(heard)
    try:
        yield heard
    finally:
        _heard.reset(token)


# -- subjects ----------------------------------------------------------------------------------


async def provider_subject(name: str) -> Subject:
    entry = (await runtime().current()).providers.get(name)
    if entry is None:
        raise Http404(f"no provider named {name!r}")
    capabilities = tuple(c for c in MODALITIES if c in entry.capabilities)
    return Subject("provider", name, capabilities, entry.models, {c: entry.default_model(c) for c in capabilities})


async def route_subject(name: str) -> Subject:
    route = (await runtime().current()).routes.get(name)
    if route is None:
        raise Http404(f"no route named {name!r}")
    capability = route.policy.capability
    return Subject("route", name, (capability,) if capability in MODALITIES else ())


# -- sending -------------------------------------------------------------------------------------


def sample_body(capability: str, model: str, text: str) -> dict[str, Any]:
    """The OpenAI-shaped body the gateway's endpoint for `capability` would have been sent."""
    if capability == "chat":
        return {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 200}
    if capability == "embeddings":
        return {"model": model, "input": text}
    if capability == "image":
        return {"model": model, "prompt": text, "n": 1, "response_format": "b64_json"}
    return {"model": model, "input": text, "voice": "alloy"}


def _inner_request(request_id: str) -> HttpRequest:
    """The request `serve` routes: no key, the console's id, the cache bypassed."""
    inner = HttpRequest()
    inner.method = "POST"
    inner.META = {"HTTP_X_REQUEST_ID": request_id, "HTTP_X_GATEWAY_CACHE": "no-cache", "REMOTE_ADDR": "127.0.0.1"}
    return inner


async def send(subject: Subject, capability: str, text: str, model: str = "") -> Outcome:
    """Route one sample request through the gateway's serving path; never raises for a
    request the gateway refused or could not serve (that is the outcome shown)."""
    request_id = f"console-{secrets.token_hex(8)}"
    body = sample_body(capability, subject.model_for(capability, model), text)
    started = time.perf_counter()
    with hearing() as heard:
        try:
            validate(SCHEMAS[capability], body)
            response = await serve(_inner_request(request_id), capability, body)
        except RequestError as exc:
            return Outcome(request_id, exc.status, False, _since(started), error=str(exc))
        except Exception as exc:  # a fault in the path under test: logged, and shown rather than a 500
            log.exception("console test %s failed in the gateway", request_id)
            return Outcome(request_id, 500, False, _since(started), error=f"The gateway failed: {type(exc).__name__}")
    outcome = Outcome(
        request_id,
        response.status_code,
        200 <= response.status_code < 300,
        _since(started),
        record=next((r for r in heard if r.request_id == request_id), None),
        media_type=str(response.get("Content-Type", "")),
    )
    content = getattr(response, "content", b"")
    if not outcome.ok:
        outcome.error = _error_text(content, response.status_code)
    else:
        await _read_answer(outcome, capability, content)
    return outcome


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _error_text(content: bytes, status: int) -> str:
    try:
        error = json.loads(content).get("error")
    except (ValueError, AttributeError):
        return f"The gateway answered {status}."
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"]
    return error if isinstance(error, str) else f"The gateway answered {status}."


async def _read_answer(outcome: Outcome, capability: str, content: bytes) -> None:
    if capability == "tts":
        if len(content) > AUDIO_MAX_BYTES:
            outcome.error = f"The audio is {len(content):,} bytes: too long to play here."
            return
        token = secrets.token_urlsafe(18)
        await cache.aset(AUDIO_KEY + token, (outcome.media_type or "audio/mpeg", content), AUDIO_TTL_S)
        outcome.audio_src = reverse("health-test-audio", args=[token])
        return
    try:
        data = json.loads(content)
    except ValueError:
        outcome.error = "The answer is not JSON."
        return
    if not isinstance(data, dict):
        outcome.error = "The answer is not a JSON object."
        return
    usage = data.get("usage")
    outcome.usage = usage if isinstance(usage, dict) else {}
    if capability == "chat":
        outcome.text = _chat_text(data)
    elif capability == "embeddings":
        _read_embedding(outcome, data)
    else:
        _read_image(outcome, data)


def _chat_text(data: dict[str, Any]) -> str:
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return ""
    return content if isinstance(content, str) else json.dumps(content)


def _first(data: dict[str, Any]) -> dict[str, Any]:
    items = data.get("data")
    return items[0] if isinstance(items, list) and items and isinstance(items[0], dict) else {}


def _read_embedding(outcome: Outcome, data: dict[str, Any]) -> None:
    vector = _first(data).get("embedding")
    if isinstance(vector, str):  # encoding_format: base64, little-endian float32
        import array

        values = array.array("f")
        try:
            values.frombytes(base64.b64decode(vector))
        except (binascii.Error, ValueError):
            values = array.array("f")
        vector = list(values)
    if isinstance(vector, list):
        outcome.dimensions = len(vector)
        outcome.preview = [round(float(v), 5) for v in vector[:8] if isinstance(v, int | float)]
    else:
        outcome.error = "The answer has no embedding."


def _read_image(outcome: Outcome, data: dict[str, Any]) -> None:
    first = _first(data)
    encoded, url = first.get("b64_json"), first.get("url")
    if isinstance(encoded, str) and encoded:
        try:
            head = base64.b64decode(encoded[:32] + "=" * (-len(encoded[:32]) % 4))
        except (binascii.Error, ValueError):
            head = b""
        media_type = next((t for magic, t in IMAGE_TYPES if head.startswith(magic)), "image/png")
        outcome.image_src = f"data:{media_type};base64,{encoded}"
    elif isinstance(url, str) and url.startswith(("https://", "http://", "data:image/")):
        if url.startswith("data:image/"):
            outcome.image_src = url
        else:
            outcome.image_url = url
    else:
        outcome.error = "The answer has no image."


# -- audit ---------------------------------------------------------------------------------------


def audit_test(user: Any, subject: Subject, capability: str, outcome: Outcome) -> None:
    who = user.get_username()
    changes = {"capability": capability, "request_id": outcome.request_id, "status": outcome.status}
    AuditLog.objects.create(
        actor=who, action="test_request", object_type=subject.kind, object_name=subject.name, changes=changes
    )
    if subject.kind == "provider":
        verdict = "ok" if outcome.ok else f"failed ({outcome.status})"
        record_action(subject.name, "test_request", who, f"{MODALITIES[capability][0].lower()} test {verdict}")


# -- views ---------------------------------------------------------------------------------------


def _form(request: HttpRequest, subject: Subject) -> dict[str, Any]:
    data = request.POST if request.method == "POST" else request.GET
    capability = str(data.get("modality") or (subject.capabilities[0] if subject.capabilities else ""))
    default_text = MODALITIES[capability][2] if capability in MODALITIES else ""
    return {
        "modality": capability,
        "text": str(data.get("text", default_text)) if request.method == "POST" else default_text,
        "model": str(data.get("model") or subject.default_models.get(capability, "")),
    }


def _problem(subject: Subject, form: dict[str, Any]) -> str:
    """Why the form cannot be sent, or ""."""
    if form["modality"] not in subject.capabilities:
        offered = ", ".join(MODALITIES[c][0].lower() for c in subject.capabilities) or "nothing this page tests"
        return f"{subject.name} does not take {form['modality'] or 'that'} requests here; it takes {offered}."
    if not form["text"].strip():
        return f"Write the {MODALITIES[form['modality']][1].lower()} to send."
    if len(form["text"]) > MAX_TEXT:
        return f"Keep the text under {MAX_TEXT:,} characters."
    if subject.kind == "provider" and not form["model"]:
        return f"{subject.name} lists no model: name one."
    if len(form["model"]) > 200:
        return "That model name is too long."
    return ""


async def _page(request: ConsoleRequest, subject: Subject) -> HttpResponse:
    form = _form(request, subject)
    context: dict[str, Any] = {
        "section": "providers" if subject.kind == "provider" else "routes",
        "role": request.role,
        "subject": subject,
        "form": form,
        "tabs": [
            {"value": c, "label": MODALITIES[c][0], "current": c == form["modality"]} for c in subject.capabilities
        ],
        "field_label": MODALITIES.get(form["modality"], ("", "Text", ""))[1],
        "modality_label": MODALITIES.get(form["modality"], ("request", "", ""))[0].lower(),
        "outcome": None,
        "problem": "",
        "action": request.path,
    }
    status = 200
    if request.method == "POST":
        if not request.role.can_act:
            context["problem"] = (
                "Sending a test needs the operator level: members of the operators group and superusers."
            )
            status = 403
        else:
            context["problem"] = _problem(subject, form)
            if context["problem"]:
                status = 400
            else:
                outcome = await send(subject, form["modality"], form["text"], form["model"])
                await db_call(audit_test, request.user, subject, form["modality"], outcome)
                context["outcome"] = outcome
                if outcome.record is not None:
                    context["attempts"] = [{**a, "number": i} for i, a in enumerate(outcome.record.attempts, start=1)]
    if request.htmx:
        # htmx swaps 2xx answers only: a refused test is still shown in place.
        return render(request, f"{TEMPLATE}#test-result", context)
    return render(request, TEMPLATE, context, status=status)


@require_http_methods(["GET", "POST"])
@console_view()
async def provider_test(request: ConsoleRequest, name: str) -> HttpResponse:
    return await _page(request, await provider_subject(name))


@require_http_methods(["GET", "POST"])
@console_view()
async def route_test(request: ConsoleRequest, name: str) -> HttpResponse:
    return await _page(request, await route_subject(name))


@require_http_methods(["GET"])
@console_view()
async def test_audio(request: ConsoleRequest, token: str) -> HttpResponse:
    """A test's speech, kept for AUDIO_TTL_S."""
    kept = await cache.aget(AUDIO_KEY + token) if len(token) <= 64 else None
    if not (isinstance(kept, tuple) and len(kept) == 2):
        raise Http404("this test's audio is no longer kept")
    media_type, content = kept
    response = HttpResponse(content, content_type=media_type if str(media_type).startswith("audio/") else "audio/mpeg")
    response["Cache-Control"] = "private, max-age=600"
    response["Content-Disposition"] = 'inline; filename="test-speech"'
    return response

"""OpenAI's Responses API (`POST /v1/responses`) as the gateway serves it: the `Dialect` built
from the pure translator (responses.py, responses_output.py), and the pydantic models the
OpenAPI document shows for it.

- Requests: `to_chat` is the translator's, its `DialectError` turned into the gateway's
  `RequestError` (status, type, code and `param`, the field's path), so a refusal is a 400
  in OpenAI's shape naming the field, as every other error of this API (`error_body`).
- Per target (`for_target`): the chat body as Anthropic targets take it (they read
  `reasoning_effort` and `max_completion_tokens`); an OpenAI-format model that is not one of
  OpenAI's reasoning models gets `max_tokens` for `max_completion_tokens` (the older name every
  OpenAI-compatible server reads) and neither `reasoning_effort` nor `verbosity`, which other
  models refuse; Ollama and the rest likewise.
- Answers and streams: `from_chat` and the `StreamTranslator` of responses_output.py; a
  stream's events go out as `event: <type>` and `data: <payload>` lines.

The models are the contract's outline, not the whole of OpenAI's: the request names only
what the translator checks (so the document promises no refusal the server does not make),
and every model allows the fields it does not name.
"""

from __future__ import annotations

import re
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field

from ..errors import RequestError
from . import openai_chat
from . import responses as translator
from .dialect import Dialect, StreamTranslator

__all__ = ["DIALECT", "ResponsesObject", "ResponsesRequest", "error_body", "for_target", "to_chat"]

# OpenAI's reasoning models, the only OpenAI-format models that take reasoning_effort.
_REASONING_MODEL = re.compile(r"(?:^|/)(?:o\d|gpt-5)", re.IGNORECASE)


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ResponsesRequest(_Open):
    """A Responses API request (stateless: `previous_response_id`, `conversation` and stored
    prompts are refused with a 400; `store` has no effect)."""

    model: str = Field(description="a route name, provider/model or a model a provider lists")
    input: str | list[dict[str, Any]] = Field(
        description="a string, or message, function_call and function_call_output items"
    )
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = Field(default=None, description="function tools")
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = None
    top_p: float | None = None
    stream: bool | None = Field(default=None, description="true: the typed server-sent events")
    text: dict[str, Any] | None = Field(default=None, description="format: text, json_object or json_schema")
    reasoning: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    user: str | None = None


class ResponsesUsage(_Open):
    input_tokens: int
    output_tokens: int
    total_tokens: int


class ResponsesObject(_Open):
    """A Response: its output items (message, function_call, reasoning) and usage."""

    id: str
    object: Literal["response"]
    created_at: int
    status: str = Field(description="completed, incomplete or failed")
    model: str = Field(description="the name the caller asked for")
    output: list[dict[str, Any]]
    usage: ResponsesUsage | None
    error: dict[str, Any] | None
    incomplete_details: dict[str, Any] | None


def error_body(
    status: int, type_: str, message: str, *, code: str | None = None, param: str | None = None, **extra: Any
) -> dict[str, Any]:
    """OpenAI's error shape, as the Responses API answers it (`param` always present); the
    gateway's own extras (an attempt list) ride along."""
    body = translator.error_body(status, type_, message, param, code=code or type_)
    body["error"].update(extra)
    return body


def to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """The chat body for a Responses request; a `RequestError` naming a bad field."""
    try:
        return translator.to_chat(body)
    except translator.DialectError as exc:
        raise RequestError(exc.status, str(exc), type_=exc.type, code=exc.code, param=exc.param) from None


def for_target(body: dict[str, Any], kind: str, model: str) -> dict[str, Any]:
    """The chat body for one target (see the module's docstring)."""
    if kind == "anthropic" or (kind == "openai" and _REASONING_MODEL.search(model)):
        return body
    out = {k: v for k, v in body.items() if k not in ("reasoning_effort", "verbosity")}
    if "max_completion_tokens" in out:
        out["max_tokens"] = out.pop("max_completion_tokens")
    return out


def stream(*, model: str, request: dict[str, Any]) -> StreamTranslator:
    """A translator for one stream: its events are `(type, payload)`, said as `event: <type>`."""
    # Its events always have a name: a narrower type than the protocol's, which lists are not.
    return cast(StreamTranslator, translator.StreamTranslator(model=model, request=request))


DIALECT = Dialect(
    name="responses",
    error_body=error_body,
    native_error=openai_chat.native_error,
    stream=stream,
    to_chat=to_chat,
    from_chat=translator.from_chat,
    for_target=for_target,
)

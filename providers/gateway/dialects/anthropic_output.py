"""Answers of the Anthropic Messages dialect (see anthropic_messages.py): the message object
made from a chat completion (`from_chat`), Anthropic's server-sent events made from chat
chunks (`StreamTranslator`), and Anthropic's error shape (`error_body`).

A message: `id` (`msg_...`; the provider's own when it is one), `type` "message", `role`
"assistant", `content` blocks (`text`, then one `tool_use` per tool call with its arguments
parsed into `input`), `model` (the name the caller asked for), `stop_reason`
(stop → end_turn, length → max_tokens, tool_calls → tool_use, content_filter → refusal;
stop_sequence with `stop_sequence` when the provider says which sequence matched, as vLLM
does in the choice's `stop_reason`) and `usage` (`input_tokens` without the cached ones,
`cache_read_input_tokens`, `output_tokens`). Tool-call arguments that are not a JSON object
come back under `input._arguments`, as the text they were, rather than be lost. A turn of
tool calls that a provider finished with "stop" is `tool_use`, as clients loop on it.

A stream is Anthropic's exact sequence: `message_start` (usage not known yet: zeros), then
per content block `content_block_start`, `content_block_delta` (`text_delta`, or
`input_json_delta` for tool arguments) and `content_block_stop`, one block open at a time;
then `message_delta` (stop_reason, and usage with `output_tokens` and the final
`input_tokens`) and `message_stop`. A stream that breaks after it began ends with an `error`
event (`api_error`), as Anthropic's own streams do.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .dialect import SseEvent
from .ids import new_hex

__all__ = [
    "AnthropicErrorBody",
    "AnthropicMessage",
    "AnthropicTokenCount",
    "StreamTranslator",
    "error_body",
    "from_chat",
    "native_error",
]

STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
# Anthropic's error types, by the status they go with.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


# -- the answer's models, for the OpenAPI document -------------------------------------------


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class AnthropicUsage(_Open):
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


class AnthropicMessage(_Open):
    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    content: list[dict[str, Any]] = Field(description="text and tool_use blocks")
    model: str
    stop_reason: str | None = Field(description="end_turn, max_tokens, stop_sequence, tool_use, refusal")
    stop_sequence: str | None
    usage: AnthropicUsage


class AnthropicErrorDetail(_Open):
    type: str = Field(
        description="invalid_request_error, authentication_error, permission_error, "
        "not_found_error, request_too_large, rate_limit_error, api_error, "
        "overloaded_error, timeout_error"
    )
    message: str
    code: str | None = Field(
        default=None, description="the gateway's own reason (invalid_json, insufficient_scope, all_targets_failed, ...)"
    )


class AnthropicErrorBody(BaseModel):
    type: Literal["error"]
    error: AnthropicErrorDetail


class AnthropicTokenCount(BaseModel):
    input_tokens: int = Field(description="an estimate (the X-Gateway-Estimated header says so)")


# -- errors ----------------------------------------------------------------------------------


def error_body(status: int, type_: str, message: str, *, code: str | None = None, **extra: Any) -> dict[str, Any]:
    """Anthropic's error shape; the type follows the status (the gateway's own words, such as
    `all_targets_failed`, are not Anthropic's). The gateway's machine-readable `code`
    (`invalid_json`, `insufficient_scope`, `all_targets_failed`...) rides along in the error
    object, which Anthropic's clients read only `type` and `message` of; params and attempt
    lists do not: the message names the field, and X-Request-Id finds the attempts."""
    kind = ERROR_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message, "code": code or type_}}


def native_error(data: Any) -> bool:
    """An Anthropic error body: `{"type": "error", "error": {...}}`."""
    return isinstance(data, dict) and data.get("type") == "error" and isinstance(data.get("error"), dict)


# -- a whole answer ----------------------------------------------------------------------------


def message_id(source: Any = None) -> str:
    """The provider's id when it is a message id already, else a new `msg_` one."""
    if isinstance(source, str) and source.startswith("msg_"):
        return source
    return f"msg_{new_hex(12)}"


def tool_input(arguments: Any) -> dict[str, Any]:
    """A tool call's arguments (JSON text) as the object Anthropic's `input` is."""
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    try:
        value = json.loads(arguments)
    except (TypeError, ValueError):
        value = None
    return value if isinstance(value, dict) else {"_arguments": arguments}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # some servers answer with text parts
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _stop(finish_reason: Any, matched: Any) -> tuple[str | None, str | None]:
    """(stop_reason, stop_sequence) for a chat choice's finish_reason and, when the provider
    says it (vLLM), the stop sequence that matched."""
    if finish_reason == "stop" and isinstance(matched, str) and matched:
        return "stop_sequence", matched
    if finish_reason is None:
        return None, None
    return STOP_REASONS.get(str(finish_reason), "end_turn"), None


def usage_of(usage: Any) -> dict[str, int]:
    """Anthropic's usage for OpenAI's: cached prompt tokens are reported apart."""
    usage = usage if isinstance(usage, dict) else {}
    prompt = _count(usage.get("prompt_tokens"))
    details = usage.get("prompt_tokens_details")
    cached = _count(details.get("cached_tokens")) if isinstance(details, dict) else 0
    return {
        "input_tokens": max(prompt - cached, 0),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": min(cached, prompt),
        "output_tokens": _count(usage.get("completion_tokens")),
    }


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def from_chat(completion: dict[str, Any], *, model: str, request: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Messages API answer for a chat completion; `model` is the name the caller used."""
    choices = completion.get("choices")
    choice = _dict(choices[0]) if isinstance(choices, list) and choices else {}
    message = _dict(choice.get("message"))
    content: list[dict[str, Any]] = []
    text = _text(message.get("content"))
    if text:
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or []:
        if not isinstance(call, dict):
            continue
        function = _dict(call.get("function"))
        content.append(
            {
                "type": "tool_use",
                "id": str(call.get("id") or f"toolu_{new_hex(12)}"),
                "name": str(function.get("name") or ""),
                "input": tool_input(function.get("arguments")),
            }
        )
    stop_reason, stop_sequence = _stop(choice.get("finish_reason") or "stop", choice.get("stop_reason"))
    if stop_reason == "end_turn" and any(block["type"] == "tool_use" for block in content):
        stop_reason = "tool_use"  # some servers finish a turn of tool calls with "stop"
    return {
        "id": message_id(completion.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage_of(completion.get("usage")),
    }


# -- a stream ----------------------------------------------------------------------------------


class StreamTranslator:
    """Chat chunks in, Anthropic's events out: `start()`, `feed()` per chunk, then `close()`
    or `fail()`. Each returns (event name, data) pairs; the data's `type` is the name."""

    def __init__(self, *, model: str, request: dict[str, Any] | None = None) -> None:
        self.model = model
        self.id = message_id()
        self.blocks = 0  # content blocks started so far
        self.open: tuple[str, int] | None = None  # ("text" or "tool", its block index)
        self.calls: dict[int, int] = {}  # chat tool-call index -> content block index
        self.finish: str | None = None
        self.matched: str | None = None
        self.usage: dict[str, Any] | None = None
        self.ended = False

    def start(self) -> list[SseEvent]:
        message: dict[str, Any] = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": 0,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": 0,
            },
        }
        return [_event("message_start", message=message)]

    def feed(self, chunk: dict[str, Any]) -> list[SseEvent]:
        if self.ended or not isinstance(chunk, dict):
            return []
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        events: list[SseEvent] = []
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # one answer: chat's `n` > 1 has no place in a message
            delta = _dict(choice.get("delta"))
            if isinstance(delta.get("content"), str) and delta["content"]:
                events += self._text(delta["content"])
            for position, call in enumerate(delta.get("tool_calls") or []):
                if isinstance(call, dict):
                    events += self._call(call, position)
            if choice.get("finish_reason"):
                self.finish = str(choice["finish_reason"])
                self.matched = choice.get("stop_reason") if isinstance(choice.get("stop_reason"), str) else None
        return events

    def close(self, usage: dict[str, Any] | None = None) -> list[SseEvent]:
        if self.ended:
            return []
        self.ended = True
        events = self._stop_open()
        stop_reason, stop_sequence = _stop(self.finish or "stop", self.matched)
        if stop_reason == "end_turn" and self.calls:
            stop_reason = "tool_use"  # some servers finish a turn of tool calls with "stop"
        counted = usage_of(usage if usage is not None else self.usage)
        events.append(
            _event("message_delta", delta={"stop_reason": stop_reason, "stop_sequence": stop_sequence}, usage=counted)
        )
        events.append(_event("message_stop"))
        return events

    def fail(self, message: str) -> list[SseEvent]:
        if self.ended:
            return []
        self.ended = True
        return [_event("error", error={"type": "api_error", "message": message})]

    def _begin(self, kind: str, block: dict[str, Any]) -> list[SseEvent]:
        events = self._stop_open()
        index = self.blocks
        self.blocks += 1
        self.open = (kind, index)
        return [*events, _event("content_block_start", index=index, content_block=block)]

    def _stop_open(self) -> list[SseEvent]:
        if self.open is None:
            return []
        index = self.open[1]
        self.open = None
        return [_event("content_block_stop", index=index)]

    def _text(self, fragment: str) -> list[SseEvent]:
        events = (
            []
            if self.open is not None and self.open[0] == "text"
            else self._begin("text", {"type": "text", "text": ""})
        )
        index = self.blocks - 1
        return [*events, _event("content_block_delta", index=index, delta={"type": "text_delta", "text": fragment})]

    def _call(self, call: dict[str, Any], position: int) -> list[SseEvent]:
        key = call["index"] if isinstance(call.get("index"), int) else position
        function = _dict(call.get("function"))
        events: list[SseEvent] = []
        if key not in self.calls:
            block = {
                "type": "tool_use",
                "id": str(call.get("id") or f"toolu_{new_hex(12)}"),
                "name": str(function.get("name") or ""),
                "input": {},
            }
            events = self._begin("tool", block)
            self.calls[key] = self.blocks - 1
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            # Fragments of a call whose block is no longer open (chat streams may interleave
            # calls) still go to that call's block, by its index.
            events.append(
                _event(
                    "content_block_delta",
                    index=self.calls[key],
                    delta={"type": "input_json_delta", "partial_json": arguments},
                )
            )
        return events


def _event(type_: str, **fields: Any) -> SseEvent:
    return type_, {"type": type_, **fields}

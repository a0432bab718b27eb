"""Answers of the Responses dialect (see responses.py): Response objects made from chat
completions (`from_chat`), and the Responses stream's typed events made from
chat.completion.chunk dicts (`StreamTranslator`).

Both echo the caller's request settings (tools, instructions, text format, ...) on the
Response, as OpenAI does and as its SDKs expect: the official `openai` SDK's models parse every
object made here (tests/gateway/test_responses_dialect.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .ids import new_hex

Event = tuple[str, dict[str, Any]]

# chat finish_reason -> Responses incomplete_details.reason
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def from_chat(
    completion: dict[str, Any],
    *,
    model: str,
    response_id: str | None = None,
    created: float | None = None,
    request: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The Response object for a chat completion. `request` is the caller's Responses body:
    the Response echoes its settings (tools, instructions, ...), as OpenAI's does."""
    choices = completion.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    reason = _INCOMPLETE.get(str(choice.get("finish_reason")))
    item_status = "incomplete" if reason else "completed"
    output: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        output.append(_Item("reasoning", parts=[_Part("reasoning_text", [reasoning])]).shape(item_status))
    calls = [call for call in message.get("tool_calls") or [] if isinstance(call, dict)]
    parts = []
    text = _chat_text(message.get("content"))
    if text or not (calls or message.get("refusal")):
        parts.append(_Part("output_text", [text]))
    if isinstance(message.get("refusal"), str) and message["refusal"]:
        parts.append(_Part("refusal", [message["refusal"]]))
    if parts:
        output.append(_Item("message", parts=parts).shape(item_status))
    for call in calls:
        function = call.get("function") or {}
        output.append(
            _Item(
                "function_call",
                call_id=str(call.get("id") or _new_id("call")),
                name=str(function.get("name") or ""),
                arguments=[str(function.get("arguments") or "")],
            ).shape("completed")
        )
    if created is None and isinstance(completion.get("created"), int | float):
        created = completion["created"]
    return _response(
        request or {},
        response_id=response_id or _new_id("resp"),
        model=model,
        created=created,
        status="incomplete" if reason else "completed",
        output=output,
        usage=_usage(completion.get("usage")),
        incomplete=reason,
    )


def _chat_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # some servers answer with text parts
        return "".join(str(part.get("text") or "") for part in content if isinstance(part, dict))
    return ""


def _usage(usage: Any) -> dict[str, Any] | None:
    """Chat usage (prompt/completion tokens) in the Responses shape."""
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens_details") or {}
    completion = usage.get("completion_tokens_details") or {}
    tokens_in, tokens_out = _tokens(usage.get("prompt_tokens")), _tokens(usage.get("completion_tokens"))
    return {
        "input_tokens": tokens_in,
        "input_tokens_details": {
            "cached_tokens": _tokens(prompt.get("cached_tokens")),
            "cache_write_tokens": _tokens(prompt.get("cache_write_tokens")),
        },
        "output_tokens": tokens_out,
        "output_tokens_details": {"reasoning_tokens": _tokens(completion.get("reasoning_tokens"))},
        "total_tokens": _tokens(usage.get("total_tokens")) or tokens_in + tokens_out,
    }


def _tokens(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _response(
    request: dict[str, Any],
    *,
    response_id: str,
    model: str,
    created: float | None,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    incomplete: str | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Response object: the answer's own fields and the request's settings, echoed."""
    created_at = int(created if created is not None else time.time())
    text = _dict(request.get("text"))
    reasoning = _dict(request.get("reasoning"))
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "completed_at": max(created_at, int(time.time())) if status == "completed" else None,
        "error": error,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "model": model,
        "output": output,
        "usage": usage,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "metadata": request.get("metadata") or {},
        "parallel_tool_calls": request.get("parallel_tool_calls") is not False,
        "previous_response_id": None,
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "store": False,
        "temperature": request.get("temperature", 1.0),
        "text": {"format": text.get("format") or {"type": "text"}, "verbosity": text.get("verbosity")},
        "tool_choice": request.get("tool_choice") or "auto",
        "tools": request.get("tools") or [],
        "top_p": request.get("top_p", 1.0),
        "truncation": request.get("truncation") or "disabled",
        "user": request.get("user"),
        "background": False,
    }


def _new_id(prefix: str) -> str:
    return f"{prefix}_{new_hex(16)}"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass
class _Part:
    """One content part: `output_text` or `refusal` in a message, `reasoning_text` in reasoning."""

    kind: str
    chunks: list[str] = field(default_factory=list)

    def shape(self) -> dict[str, Any]:
        text = "".join(self.chunks)
        if self.kind == "output_text":
            return {"type": "output_text", "text": text, "annotations": []}
        if self.kind == "refusal":
            return {"type": "refusal", "refusal": text}
        return {"type": "reasoning_text", "text": text}


@dataclass
class _Item:
    """One output item: a `message`, a `reasoning` item or a `function_call`."""

    kind: str
    index: int = 0
    id: str = ""
    parts: list[_Part] = field(default_factory=list)
    call_id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    status: str = "in_progress"

    def __post_init__(self) -> None:
        self.id = self.id or _new_id({"message": "msg", "reasoning": "rs"}.get(self.kind, "fc"))

    def shape(self, status: str | None = None) -> dict[str, Any]:
        status = status or self.status
        if self.kind == "function_call":
            return {
                "id": self.id,
                "type": "function_call",
                "status": status,
                "call_id": self.call_id,
                "name": self.name,
                "arguments": "".join(self.arguments),
            }
        content = [part.shape() for part in self.parts]
        if self.kind == "reasoning":
            return {"id": self.id, "type": "reasoning", "status": status, "summary": [], "content": content}
        return {"id": self.id, "type": "message", "status": status, "role": "assistant", "content": content}


# -- stream -------------------------------------------------------------------------------

_DELTA = {
    "output_text": "response.output_text.delta",
    "refusal": "response.refusal.delta",
    "reasoning_text": "response.reasoning_text.delta",
}
_DONE = {
    "output_text": "response.output_text.done",
    "refusal": "response.refusal.done",
    "reasoning_text": "response.reasoning_text.done",
}


class StreamTranslator:
    """chat.completion.chunk dicts in, the Responses stream's events out.

    `start()` first, then `feed()` for every chunk, then `close()` once the chunks end or
    `fail()` when the stream breaks; each returns `(event type, payload)` pairs, numbered by
    `sequence_number` from 0. Items follow one another as in OpenAI's streams: an item is done
    before the next is added. Usage comes from `close(usage)` or else the chunks' own.
    """

    def __init__(
        self, *, model: str, request: dict[str, Any], response_id: str | None = None, created: float | None = None
    ) -> None:
        self.model = model
        self.request = request
        self.response_id = response_id or _new_id("resp")
        self.created = created if created is not None else time.time()
        self._sequence = 0
        self._items: list[_Item] = []
        self._open: _Item | None = None
        self._calls: dict[int, _Item] = {}  # chat tool-call index -> its item
        self._finish_reason: str | None = None
        self._usage: dict[str, Any] | None = None
        self._ended = False

    def start(self) -> list[Event]:
        response = self._snapshot("in_progress")
        return [
            self._event("response.created", response=response),
            self._event("response.in_progress", response=response),
        ]

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        if self._ended or not isinstance(chunk, dict):
            return []
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        events: list[Event] = []
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # Responses has one answer; chat's `n` > 1 has no place in it
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                events += self._text("reasoning", "reasoning_text", reasoning)
            if isinstance(delta.get("content"), str) and delta["content"]:
                events += self._text("message", "output_text", delta["content"])
            if isinstance(delta.get("refusal"), str) and delta["refusal"]:
                events += self._text("message", "refusal", delta["refusal"])
            for position, call in enumerate(delta.get("tool_calls") or []):
                if isinstance(call, dict):
                    events += self._call(call, position)
            if choice.get("finish_reason"):
                self._finish_reason = str(choice["finish_reason"])
        return events

    def close(self, usage: dict[str, Any] | None = None) -> list[Event]:
        """The closing events; `usage` is chat usage (prompt_tokens, completion_tokens, ...)."""
        if self._ended:
            return []
        reason = _INCOMPLETE.get(str(self._finish_reason))
        events: list[Event] = []
        if not self._items:  # an empty answer is still an (empty) message, as from_chat makes
            events += self._begin("message")
            events += self._begin_part(self._items[-1], "output_text")
        events += self._finish_open("incomplete" if reason else "completed")
        self._ended = True
        status = "incomplete" if reason else "completed"
        response = self._snapshot(status, usage=_usage(usage if usage is not None else self._usage), incomplete=reason)
        events.append(self._event(f"response.{status}", response=response))
        return events

    def fail(self, message: str) -> list[Event]:
        """The closing event of a stream that broke: `response.failed`, with what was made so far."""
        if self._ended:
            return []
        self._ended = True
        if self._open is not None:
            self._open.status = "incomplete"
        response = self._snapshot(
            "failed", usage=_usage(self._usage), error={"code": "server_error", "message": message}
        )
        return [self._event("response.failed", response=response)]

    def _event(self, type_: str, **fields: Any) -> Event:
        payload = {"type": type_, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return type_, payload

    def _snapshot(
        self,
        status: str,
        *,
        usage: dict[str, Any] | None = None,
        incomplete: str | None = None,
        error: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        output = [item.shape() for item in self._items] if status != "in_progress" else []
        return _response(
            self.request,
            response_id=self.response_id,
            model=self.model,
            created=self.created,
            status=status,
            output=output,
            usage=usage,
            incomplete=incomplete,
            error=error,
        )

    def _begin(self, kind: str, **fields: Any) -> list[Event]:
        events = self._finish_open("completed")
        item = _Item(kind, index=len(self._items), **fields)
        self._items.append(item)
        self._open = item
        events.append(self._event("response.output_item.added", output_index=item.index, item=item.shape()))
        return events

    def _begin_part(self, item: _Item, kind: str) -> list[Event]:
        events = self._finish_part(item) if item.parts else []
        item.parts.append(_Part(kind))
        events.append(
            self._event(
                "response.content_part.added",
                item_id=item.id,
                output_index=item.index,
                content_index=len(item.parts) - 1,
                part=item.parts[-1].shape(),
            )
        )
        return events

    def _text(self, kind: str, part_kind: str, fragment: str) -> list[Event]:
        events: list[Event] = []
        item = self._open
        if item is None or item.kind != kind:
            events += self._begin(kind)
            item = self._items[-1]
        if not item.parts or item.parts[-1].kind != part_kind:
            events += self._begin_part(item, part_kind)
        item.parts[-1].chunks.append(fragment)
        extra: dict[str, Any] = {"logprobs": []} if part_kind == "output_text" else {}
        events.append(
            self._event(
                _DELTA[part_kind],
                item_id=item.id,
                output_index=item.index,
                content_index=len(item.parts) - 1,
                delta=fragment,
                **extra,
            )
        )
        return events

    def _call(self, call: dict[str, Any], position: int) -> list[Event]:
        events: list[Event] = []
        key = call["index"] if isinstance(call.get("index"), int) else position
        function = _dict(call.get("function"))
        item = self._calls.get(key)
        if item is not None and call.get("id") and call["id"] != item.call_id:
            item = None  # a server that numbers every call 0: a new id is a new call
        if item is None:
            events += self._begin(
                "function_call", call_id=str(call.get("id") or _new_id("call")), name=str(function.get("name") or "")
            )
            item = self._calls[key] = self._items[-1]
        elif function.get("name") and not item.name:
            item.name = str(function["name"])
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            item.arguments.append(arguments)
            # A fragment for a call already done (chat servers send calls one after another,
            # so none do) still reaches the final response, which carries the whole arguments.
            if item is self._open:
                events.append(
                    self._event(
                        "response.function_call_arguments.delta",
                        item_id=item.id,
                        output_index=item.index,
                        delta=arguments,
                    )
                )
        return events

    def _finish_part(self, item: _Item) -> list[Event]:
        part = item.parts[-1]
        where = {"item_id": item.id, "output_index": item.index, "content_index": len(item.parts) - 1}
        shape = part.shape()
        done: dict[str, Any] = {
            "output_text": {"text": shape.get("text"), "logprobs": []},
            "refusal": {"refusal": shape.get("refusal")},
            "reasoning_text": {"text": shape.get("text")},
        }[part.kind]
        return [
            self._event(_DONE[part.kind], **where, **done),
            self._event("response.content_part.done", **where, part=shape),
        ]

    def _finish_open(self, status: str) -> list[Event]:
        item, self._open = self._open, None
        if item is None:
            return []
        events: list[Event] = []
        if item.kind == "function_call":
            events.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item.id,
                    output_index=item.index,
                    arguments="".join(item.arguments),
                )
            )
        elif item.parts:
            events += self._finish_part(item)
        item.status = status
        events.append(self._event("response.output_item.done", output_index=item.index, item=item.shape()))
        return events

"""Anthropic's Messages API behind the gateway's OpenAI chat format, both ways.

Requests: system and developer messages become the top-level `system`; user and assistant
turns keep their roles, with consecutive turns of one role merged (Anthropic requires
alternation); text, image (data URL → base64 source, http(s) → url source) and file (PDF)
parts become content blocks; assistant `tool_calls` become `tool_use` blocks and `tool`
messages `tool_result` blocks at the head of the next user turn; `tools`, `tool_choice` and
`parallel_tool_calls` map to their Anthropic forms (`cache_control` on a part or a tool, and
`is_error` on a tool message, are kept); `max_tokens` (or `max_completion_tokens`,
default 1024 because Anthropic requires one), `temperature` (capped at Anthropic's 1.0),
`top_p` and `stop` (→ `stop_sequences`) carry over. What has no Anthropic equivalent and
changes the answer's shape (`n` > 1, audio input, non-function tools) is refused as
`Unsupported`; sampling hints without an equivalent (seed, penalties, logprobs) are dropped.

Structured output: `response_format` json_schema becomes a forced tool whose `input_schema`
is the schema (named after the schema, else `json_response`; with a number added when a
tool of the caller's has that name), and json_object the same tool with a permissive object
schema (a forced tool, not a system instruction and prefill); the tool's input comes back
as the message's text content (finish `stop`), streamed as content deltas of its JSON. With
tools of the caller's own the choice becomes `any` (the model calls one of them or answers
in the schema); a caller's named `tool_choice` is kept. Text blocks are left out of such
answers: the content is the JSON alone. A schema whose root is not an object is refused
(`Unsupported`): tool inputs are objects.

Reasoning: `reasoning_effort` (low, medium, high) becomes `thinking` with a budget of 1024,
4096 or 16384 tokens, capped below `max_tokens` (left out when that leaves less than 1024);
an explicit `thinking` object passes through instead. Thinking is left out where Anthropic
refuses it: with a forced tool (`any`/`tool`), and in a tool loop (an assistant turn with
`tool_use`), whose thinking blocks this translation does not carry. While it is on,
`temperature` and `top_k` are left out and a `top_p` under 0.95 too, as Anthropic requires.
Thinking blocks of answers are not returned.

Answers become an OpenAI `chat.completion`; streams become `chat.completion.chunk` dicts
(role first, then text and tool-call argument fragments, then the finish reason, and the
usage chunk when the caller asked for it with `stream_options.include_usage`).

Errors: non-2xx answers raise `UpstreamError.from_response` with Anthropic's own body
(`529 overloaded_error` FAILURE, `429 rate_limit_error` RATE_LIMITED, 400 "credit balance is
too low" EXHAUSTED, other 4xx CALLER_ERROR); an `error` event mid-stream raises FAILURE
(`stream_<error type>`), and a stream that stops before `message_stop` FAILURE `stream_broken`.

Options: `version` (anthropic-version header, default 2023-06-01), `beta` (anthropic-beta
header, a string or a list), `default_max_tokens` (default 1024).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx

from providers.engine import Classification, Outcome, UpstreamError

from . import wirejson
from .base import (
    Adapter,
    ChatStream,
    ModelInfo,
    ProviderConfig,
    Result,
    Unsupported,
    Usage,
    bad_request,
    json_object,
    malformed,
    stream_broken,
)
from .sse import read_sse

__all__ = ["AnthropicAdapter", "to_anthropic", "to_openai"]

DEFAULT_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

_PASSED_THROUGH = ("top_k", "thinking", "service_tier", "metadata")


# -- OpenAI request → Anthropic request ---------------------------------------------------------


def _data_url(url: str) -> tuple[str, str] | None:
    """(media type, base64 data) of a `data:` URL, or None for any other URL."""
    if not url.startswith("data:"):
        return None
    head, comma, data = url[5:].partition(",")
    media_type, _, encoding = head.partition(";")
    if not comma or encoding != "base64":
        raise bad_request("data URLs must be base64-encoded (data:<type>;base64,<data>)")
    return media_type, data


def _blocks(content: Any, kind: str) -> list[dict[str, Any]]:
    """Anthropic content blocks for an OpenAI message content (a string or a list of parts)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise bad_request("message content must be a string or a list of parts")
    blocks: list[dict[str, Any]] = []
    for part in content:
        if not isinstance(part, Mapping):
            raise bad_request("message content parts must be objects")
        block = _block(part, kind)
        if block is None:
            continue
        if "cache_control" in part:
            block["cache_control"] = part["cache_control"]
        blocks.append(block)
    return blocks


def _block(part: Mapping[str, Any], kind: str) -> dict[str, Any] | None:
    """The content block for one part, None for a part to leave out (an empty text)."""
    kind_of_part = part.get("type")
    if kind_of_part == "text":
        # Anthropic refuses empty text blocks
        return {"type": "text", "text": part["text"]} if part.get("text") else None
    if kind_of_part == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, Mapping) else image
        if not isinstance(url, str):
            raise bad_request("image_url parts need a url")
        inline = _data_url(url)
        source = (
            {"type": "base64", "media_type": inline[0], "data": inline[1]} if inline else {"type": "url", "url": url}
        )
        return {"type": "image", "source": source}
    if kind_of_part == "file":
        file = part.get("file") or {}
        inline = _data_url(str(file.get("file_data", "")))
        if inline is None:
            raise Unsupported(kind, "file parts without inline file_data")
        return {"type": "document", "source": {"type": "base64", "media_type": inline[0], "data": inline[1]}}
    raise Unsupported(kind, f"content parts of type {kind_of_part!r}")


def _tool_use(call: Any, where: str) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, Mapping) else None
    if not isinstance(function, Mapping) or not function.get("name"):
        raise bad_request(f"{where} must be a function call with a name")
    try:
        arguments = json.loads(function.get("arguments") or "{}")
    except ValueError:
        arguments = None
    if not isinstance(arguments, dict):
        raise bad_request(f"{where}.function.arguments must be a JSON object")
    return {"type": "tool_use", "id": call.get("id"), "name": function["name"], "input": arguments}


def _turn(message: Mapping[str, Any], i: int, kind: str) -> tuple[str, list[dict[str, Any]]]:
    """The Anthropic role and content blocks of one non-system message."""
    role = message.get("role")
    if role == "user":
        return "user", _blocks(message.get("content"), kind)
    if role == "assistant":
        blocks = _blocks(message.get("content"), kind)
        for j, call in enumerate(message.get("tool_calls") or []):
            blocks.append(_tool_use(call, f"messages[{i}].tool_calls[{j}]"))
        return "assistant", blocks
    if role == "tool":
        content = message.get("content")
        result = {
            "type": "tool_result",
            "tool_use_id": message.get("tool_call_id"),
            "content": content if isinstance(content, str) else _blocks(content, kind),
        }
        if message.get("is_error") is True:  # an extension the Anthropic dialect sets
            result["is_error"] = True
        return "user", [result]
    raise Unsupported(kind, f"messages with role {role!r}")


def _conversation(messages: Any, kind: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, alternating turns) of the OpenAI messages."""
    if not isinstance(messages, list):
        raise bad_request("messages must be a list")
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise bad_request(f"messages[{i}] must be an object")
        if message.get("role") in ("system", "developer"):
            system.extend(_blocks(message.get("content"), kind))
            continue
        role, blocks = _turn(message, i, kind)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:  # Anthropic requires alternation
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        if turn["role"] == "user":  # Anthropic wants tool results before any other content
            turn["content"].sort(key=lambda block: block.get("type") != "tool_result")
    return system, turns


def _system(blocks: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """Plain text blocks joined into one string; blocks with more (cache_control) as they are."""
    if all(set(block) == {"type", "text"} for block in blocks):
        return "\n\n".join(block["text"] for block in blocks)
    return blocks


def _sampling(request: Mapping[str, Any]) -> dict[str, Any]:
    """temperature, top_p and stop_sequences, where the request sets them."""
    out: dict[str, Any] = {}
    if request.get("temperature") is not None:
        out["temperature"] = min(float(request["temperature"]), 1.0)  # OpenAI allows up to 2
    if request.get("top_p") is not None:
        out["top_p"] = request["top_p"]
    stop = request.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    return out


def _tools(tools: Any, kind: str) -> list[dict[str, Any]]:
    """Anthropic tool definitions for OpenAI function tools; any other kind is refused."""
    out = []
    for tool in tools:
        if not isinstance(tool, Mapping) or tool.get("type", "function") != "function":
            raise Unsupported(
                kind,
                f"tools of type {tool.get('type') if isinstance(tool, Mapping) else tool!r}",
            )
        function = tool.get("function") or {}
        spec = {
            "name": function.get("name"),
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
        }
        if function.get("description"):
            spec["description"] = function["description"]
        if tool.get("cache_control"):
            spec["cache_control"] = tool["cache_control"]
        out.append(spec)
    return out


# The tool_choice types that take `disable_parallel_tool_use`: with "none" no tool is called,
# and Anthropic's schema refuses the field there.
_PARALLEL_CHOICES = frozenset({"auto", "any", "tool"})


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    mapped: dict[str, Any] | None
    if choice is None:
        mapped = None
    elif choice == "auto":
        mapped = {"type": "auto"}
    elif choice == "required":
        mapped = {"type": "any"}
    elif choice == "none":
        mapped = {"type": "none"}
    elif isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        mapped = {"type": "tool", "name": choice["function"].get("name")}
    else:
        raise bad_request(f"unsupported tool_choice {choice!r}")
    if parallel is False:
        mapped = mapped or {"type": "auto"}
        if mapped["type"] in _PARALLEL_CHOICES:
            mapped = {**mapped, "disable_parallel_tool_use": True}
    return mapped


# -- structured output and reasoning ------------------------------------------------------------

STRUCTURED_TOOL = "json_response"
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_ANY_OBJECT: dict[str, Any] = {"type": "object", "additionalProperties": True}
EFFORT_BUDGETS = {"low": 1024, "medium": 4096, "high": 16384}
MIN_THINKING_BUDGET = 1024  # Anthropic's floor for budget_tokens
_FORCED = frozenset({"any", "tool"})


def _structured(request: Mapping[str, Any], taken: set[str], kind: str) -> dict[str, Any] | None:
    """The tool that carries `response_format` (json_object, json_schema), or None."""
    fmt = request.get("response_format")
    if not isinstance(fmt, Mapping) or fmt.get("type") in (None, "text"):
        return None
    schema: Any = _ANY_OBJECT
    description: Any = None
    if fmt["type"] == "json_object":
        name = STRUCTURED_TOOL
    elif fmt["type"] == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if schema is None:
            schema = _ANY_OBJECT
        if not isinstance(schema, Mapping):
            raise bad_request("response_format.json_schema.schema must be an object")
        if schema.get("type", "object") != "object":
            raise Unsupported(kind, "a response_format json_schema whose root is not an object")
        named = spec.get("name") if isinstance(spec, Mapping) else None
        name = named if isinstance(named, str) and _TOOL_NAME.match(named) else STRUCTURED_TOOL
        description = spec.get("description") if isinstance(spec, Mapping) else None
    else:
        raise Unsupported(kind, f"response_format of type {fmt['type']!r}")
    base, n = name, 1
    while name in taken:  # a tool of the caller's own has the name
        name, n = f"{base[:58]}_{n}", n + 1
    text = "Give your answer by calling this tool: its input is the answer, as JSON."
    if fmt["type"] == "json_schema" and isinstance(description, str) and description:
        text = f"{text} {description}"
    return {"name": name, "description": text, "input_schema": dict(schema)}


def _structured_choice(choice: dict[str, Any] | None, name: str, user_tools: bool, parallel: Any) -> dict[str, Any]:
    """The tool_choice with the structured tool: forced, or `any` beside the caller's tools;
    a caller's named choice is kept."""
    if choice is not None and choice["type"] == "tool":
        return choice
    if user_tools and (choice is None or choice["type"] in ("auto", "any")):
        mapped: dict[str, Any] = {"type": "any"}
    else:
        mapped = {"type": "tool", "name": name}
    if parallel is False:
        mapped["disable_parallel_tool_use"] = True
    return mapped


def _thinking(request: Mapping[str, Any], body: dict[str, Any]) -> None:
    """`thinking` from `reasoning_effort`, or the explicit one; then left out, or the sampling
    settings it refuses left out, as Anthropic requires."""
    if "thinking" not in body:
        budget = EFFORT_BUDGETS.get(str(request.get("reasoning_effort")))
        if budget is not None:
            budget = min(budget, int(body["max_tokens"]) - 1)
            if budget >= MIN_THINKING_BUDGET:
                body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    thinking = body.get("thinking")
    if not isinstance(thinking, Mapping) or thinking.get("type") == "disabled":
        return
    forced = (body.get("tool_choice") or {}).get("type") in _FORCED
    tool_loop = any(
        block.get("type") == "tool_use"
        for turn in body["messages"]
        if turn["role"] == "assistant"
        for block in turn["content"]
    )
    if forced or tool_loop:
        del body["thinking"]
        return
    body.pop("temperature", None)
    body.pop("top_k", None)
    if body.get("top_p") is not None and body["top_p"] < 0.95:
        del body["top_p"]


def _translate(
    request: Mapping[str, Any], *, model: str, default_max_tokens: int, kind: str
) -> tuple[dict[str, Any], str | None]:
    """The Messages API body, and the name of the tool that carries structured output."""
    if (request.get("n") or 1) != 1:
        raise Unsupported(kind, "n > 1")
    system, turns = _conversation(request.get("messages"), kind)
    max_tokens = request.get("max_completion_tokens") or request.get("max_tokens") or default_max_tokens
    body: dict[str, Any] = {"model": model, "messages": turns, "max_tokens": max_tokens}
    if system:
        body["system"] = _system(system)
    body.update(_sampling(request))
    tools = request.get("tools")
    if tools:
        body["tools"] = _tools(tools, kind)
    choice = _tool_choice(request.get("tool_choice"), request.get("parallel_tool_calls"))
    if choice is not None and tools:
        body["tool_choice"] = choice
    structured = _structured(request, {t["name"] for t in body.get("tools", [])}, kind)
    if structured is not None:
        body["tool_choice"] = _structured_choice(
            body.get("tool_choice"),
            structured["name"],
            bool(tools),
            request.get("parallel_tool_calls"),
        )
        body["tools"] = [*body.get("tools", []), structured]
    if request.get("user"):
        body["metadata"] = {"user_id": str(request["user"])}
    for key in _PASSED_THROUGH:
        if key in request:
            body[key] = request[key]
    _thinking(request, body)
    return body, structured["name"] if structured else None


def to_anthropic(
    request: Mapping[str, Any],
    *,
    model: str,
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
    kind: str = "anthropic",
) -> dict[str, Any]:
    """The Messages API body for an OpenAI chat request."""
    return _translate(request, model=model, default_max_tokens=default_max_tokens, kind=kind)[0]


# -- Anthropic answer → OpenAI answer -----------------------------------------------------------


def _usage(reported: Any) -> tuple[Usage, int]:
    """Our Usage and the cached prompt tokens, from Anthropic's usage object."""
    if not isinstance(reported, Mapping):
        return Usage(), 0
    cached = int(reported.get("cache_read_input_tokens") or 0)
    tokens_in = int(reported.get("input_tokens") or 0) + int(reported.get("cache_creation_input_tokens") or 0)
    return Usage(tokens_in=tokens_in + cached, tokens_out=int(reported.get("output_tokens") or 0)), cached


def openai_usage(usage: Usage, cached: int = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.tokens_in,
        "completion_tokens": usage.tokens_out,
        "total_tokens": usage.tokens_in + usage.tokens_out,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def _finish(stop_reason: Any, *, structured_only: bool = False) -> str:
    """OpenAI's finish reason; a turn whose only tool call was the structured answer stops."""
    if structured_only and stop_reason == "tool_use":
        return "stop"
    return FINISH_REASONS.get(str(stop_reason), "stop")


def to_openai(message: Mapping[str, Any], *, model: str, structured: str | None = None) -> dict[str, Any]:
    """The OpenAI `chat.completion` for an Anthropic message. `structured` names the tool
    that carried `response_format`: its input is the answer's text."""
    content = [b for b in message.get("content") or [] if isinstance(b, Mapping)]
    answer = next(
        (b for b in content if b.get("type") == "tool_use" and structured and b.get("name") == structured),
        None,
    )
    if answer is not None:
        text = json.dumps(answer.get("input") or {}, ensure_ascii=False)
    elif structured:
        text = ""
    else:
        text = "".join(b.get("text", "") for b in content if b.get("type") == "text")
    tool_calls = [
        {
            "id": b.get("id"),
            "type": "function",
            "function": {"name": b.get("name"), "arguments": json.dumps(b.get("input") or {})},
        }
        for b in content
        if b.get("type") == "tool_use" and b is not answer
    ]
    reply: dict[str, Any] = {"role": "assistant", "content": text or (None if tool_calls else "")}
    if tool_calls:
        reply["tool_calls"] = tool_calls
    usage, cached = _usage(message.get("usage"))
    choice: dict[str, Any] = {
        "index": 0,
        "message": reply,
        "logprobs": None,
        "finish_reason": _finish(message.get("stop_reason"), structured_only=structured is not None and not tool_calls),
    }
    return {
        "id": message.get("id"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.get("model") or model,
        "choices": [choice],
        "usage": openai_usage(usage, cached),
    }


# -- Anthropic stream → OpenAI chunks -----------------------------------------------------------


class _ChunkTranslator:
    """One Anthropic stream's events, turned into OpenAI chunks one event at a time; `usage`
    is filled in place as message_start and message_delta report it."""

    def __init__(self, usage: Usage, model: str, *, include_usage: bool, structured: str | None) -> None:
        self.usage = usage
        self.model = model
        self.include_usage = include_usage
        self.structured = structured
        self.head: dict[str, Any] = {
            "id": "",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }
        self.tools: dict[int, int] = {}  # Anthropic content block index -> OpenAI tool call index
        self.answer_blocks: set[int] = set()  # blocks of the structured tool: their JSON is the text
        self.finish = "stop"
        self.cached = 0
        self.steps = {
            "message_start": self.message_start,
            "content_block_start": self.block_start,
            "content_block_delta": self.block_delta,
            "message_delta": self.message_delta,
            "message_stop": self.message_stop,
        }

    def step(self, kind: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
        """The chunks one event makes (ping, content_block_stop and event types added later
        carry nothing to forward)."""
        handler = self.steps.get(kind)
        return handler(payload) if handler is not None else []

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        out = {**self.head, "choices": [choice]}
        if self.include_usage:
            out["usage"] = None
        return out

    def message_start(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        message = payload.get("message") or {}
        self.head["id"] = message.get("id", "")
        self.head["model"] = message.get("model") or self.model
        found, self.cached = _usage(message.get("usage"))
        self.usage.tokens_in, self.usage.tokens_out = found.tokens_in, found.tokens_out
        return [self.chunk({"role": "assistant", "content": ""})]

    def block_start(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        block = payload.get("content_block") or {}
        index = payload.get("index", 0)
        if block.get("type") == "tool_use":
            if self.structured and block.get("name") == self.structured:
                self.answer_blocks.add(index)
                return []
            self.tools[index] = position = len(self.tools)
            call = {
                "index": position,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }
            return [self.chunk({"tool_calls": [call]})]
        if block.get("type") == "text" and block.get("text") and not self.structured:
            return [self.chunk({"content": block["text"]})]
        return []

    def block_delta(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        delta = payload.get("delta") or {}
        index = payload.get("index", 0)
        if delta.get("type") == "text_delta" and not self.structured:
            return [self.chunk({"content": delta.get("text", "")})]
        if delta.get("type") != "input_json_delta" or not delta.get("partial_json"):
            return []
        if index in self.answer_blocks:
            return [self.chunk({"content": delta["partial_json"]})]
        call_index = self.tools.get(index)
        if call_index is None:
            return []
        fragment = {"index": call_index, "function": {"arguments": delta["partial_json"]}}
        return [self.chunk({"tool_calls": [fragment]})]

    def message_delta(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        delta = payload.get("delta") or {}
        self.finish = _finish(delta.get("stop_reason"), structured_only=self.structured is not None and not self.tools)
        reported = payload.get("usage") or {}
        if reported.get("output_tokens") is not None:
            self.usage.tokens_out = int(reported["output_tokens"])
        if reported.get("input_tokens") is not None:
            found, self.cached = _usage(reported)
            self.usage.tokens_in = found.tokens_in
        return []

    def message_stop(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        last = self.chunk({}, self.finish)
        if not self.include_usage:
            return [last]
        return [last, {**self.head, "choices": [], "usage": openai_usage(self.usage, self.cached)}]


def _event_payload(response: httpx.Response, data: str) -> dict[str, Any]:
    try:
        payload = wirejson.loads(data)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise stream_broken(response, f"unreadable event: {data[:120]!r}", "malformed_response")
    return payload


def _stream_error(response: httpx.Response, payload: dict[str, Any], data: str) -> UpstreamError:
    """An `error` event: a FAILURE named after its type."""
    error = payload.get("error") or {}
    kind_of_error = error.get("type", "error")
    return UpstreamError(
        Classification(Outcome.FAILURE, f"stream_{kind_of_error}"),
        status=response.status_code,
        message=f"{kind_of_error} mid-stream: {error.get('message', '')}",
        headers=response.headers,
        body=data.encode(),
    )


# -- the adapter --------------------------------------------------------------------------------


class AnthropicAdapter(Adapter):
    kind = "anthropic"
    capabilities = frozenset({"chat"})
    default_base_url = "https://api.anthropic.com"

    def __init__(self, config: ProviderConfig, client: httpx.AsyncClient) -> None:
        super().__init__(config, client)
        # The adapter appends /v1/...; accept a base URL given with the /v1 already on it.
        self.base_url = self.base_url.removesuffix("/v1")

    def headers(self) -> dict[str, str]:
        options = self.config.options
        headers = {"anthropic-version": str(options.get("version", DEFAULT_VERSION))}
        if self.config.api_key:
            headers["x-api-key"] = self.config.api_key
        beta = options.get("beta")
        if beta:
            headers["anthropic-beta"] = beta if isinstance(beta, str) else ",".join(beta)
        return headers

    def _body(self, request: Mapping[str, Any], model: str) -> tuple[dict[str, Any], str | None]:
        default = int(self.config.options.get("default_max_tokens", DEFAULT_MAX_TOKENS))
        return _translate(request, model=model, default_max_tokens=default, kind=self.kind)

    async def chat(self, request: dict[str, Any], *, model: str, timeout: float) -> Result:
        body, structured = self._body(request, model)
        response = await self.client.post(
            self.base_url + "/v1/messages",
            json=body,
            headers=self.headers(),
            timeout=self.timeout(timeout),
        )
        await self.check(response)
        message = json_object(response)
        if message.get("type") != "message" or not isinstance(message.get("content"), list):
            raise malformed("not a message", response=response)
        data = to_openai(message, model=model, structured=structured)
        usage, _ = _usage(message.get("usage"))
        return Result.json(data, usage=usage, model=data["model"])

    async def chat_stream(self, request: dict[str, Any], *, model: str, timeout: float) -> ChatStream:
        body, structured = self._body(request, model)
        response = await self.send_streaming(
            "POST",
            self.base_url + "/v1/messages",
            json={**body, "stream": True},
            headers=self.headers(),
            timeout=self.stream_timeout(timeout),
        )
        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        usage = Usage()
        translator = _ChunkTranslator(usage, model, include_usage=include_usage, structured=structured)
        stream = ChatStream(self._chunks(response, translator), model=model, response=response)
        stream.usage = usage  # filled in place as message_start and message_delta arrive
        return stream

    async def _chunks(self, response: httpx.Response, translator: _ChunkTranslator) -> AsyncIterator[dict[str, Any]]:
        try:
            async for event, data in read_sse(response):
                payload = _event_payload(response, data)
                kind = event or payload.get("type")
                if kind == "error":
                    raise _stream_error(response, payload, data)
                for chunk in translator.step(str(kind), payload):
                    yield chunk
                if kind == "message_stop":
                    return
            raise stream_broken(response, "stream ended before message_stop")
        finally:
            await response.aclose()

    async def list_models(self, *, timeout: float) -> list[ModelInfo]:
        models: list[ModelInfo] = []
        params: dict[str, Any] = {"limit": 1000}
        for _page in range(100):  # a bound, in case a server keeps saying has_more
            response = await self.client.get(
                self.base_url + "/v1/models",
                params=params,
                headers=self.headers(),
                timeout=self.timeout(timeout),
            )
            await self.check(response)
            data = json_object(response)
            items = data.get("data")
            if not isinstance(items, list):
                raise malformed("model list has no data array", response=response)
            for item in items:
                if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
                    continue
                # A retired model is still listed, as history, but refuses every request.
                if item.get("lifecycle") != "retired":
                    window = item.get("max_input_tokens") or item.get("context_window")
                    models.append(
                        ModelInfo(
                            name=item["id"],
                            capabilities=frozenset({"chat"}),
                            context_window=window if isinstance(window, int) else None,
                            details={k: v for k, v in item.items() if k != "id"},
                        )
                    )
            if not data.get("has_more") or not data.get("last_id"):
                break
            params = {"limit": 1000, "after_id": data["last_id"]}
        return models

    async def probe(self, *, timeout: float, deep: bool = False, model: str | None = None) -> dict[str, Any]:
        if not deep:
            return {"models": len(await self.list_models(timeout=timeout))}
        if model is None:
            listed = await self.list_models(timeout=timeout)
            if not listed:
                raise UpstreamError(
                    Classification(Outcome.FAILURE, "no_chat_model"),
                    message="deep probe: no model listed",
                )
            model = listed[0].name
        result = await self.chat(
            {"messages": [{"role": "user", "content": "ping"}], "max_tokens": 1},
            model=model,
            timeout=timeout,
        )
        return {
            "model": result.model,
            "finish_reason": result.data["choices"][0]["finish_reason"],
            "tokens_in": result.usage.tokens_in,
            "tokens_out": result.usage.tokens_out,
        }

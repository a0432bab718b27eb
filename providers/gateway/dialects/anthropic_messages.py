"""Anthropic's Messages API (`POST /v1/messages`, `/v1/messages/count_tokens`) as a dialect of
chat completions, so the official `anthropic` SDK (and Claude Code) work against any route.

Requests (`to_chat`), checked against `AnthropicMessageRequest` first (a 400 in Anthropic's
shape naming the field, `messages[1].content[0].source`):
- `system` (a string or text blocks) is the first, system, message.
- user turns: text, image (base64 source → data URL, url source → URL) and document (base64
  PDF → a file part; plain-text source → text) blocks become content parts; `tool_result`
  blocks become `tool` messages, placed before the rest of the turn (their text, or text and
  image parts; `is_error` kept for Anthropic targets). One plain text is a string content.
- assistant turns: text blocks become the content and `tool_use` blocks `tool_calls` (input
  as JSON arguments); thinking blocks are dropped (no chat equivalent).
- `tools` (custom tools: `input_schema` → function `parameters`) and `tool_choice` (auto,
  any → required, tool → the named function, none; `disable_parallel_tool_use` →
  `parallel_tool_calls: false`), sent only with tools, as chat requires. Anthropic's server
  tools (web search, code execution...) run inside Anthropic's service: refused with a 400.
- `max_tokens`, `temperature`, `top_p`, `stop_sequences` → `stop`, `metadata.user_id` →
  `user`, `stream`. `top_k` is carried for targets that take it (Anthropic), left out for the
  others (`for_target`). `cache_control` marks are kept on their parts and tools for
  Anthropic targets and left out for the others.
- `thinking` is carried, not dropped: as the chat `reasoning_effort` (a budget up to 2048
  tokens is low, up to 8192 medium, more high; `disabled` none), which OpenAI's reasoning
  models take and the Anthropic adapter turns back into a budget; and as itself for Anthropic
  targets, so the exact budget survives. An OpenAI-format target whose model is not an OpenAI
  reasoning model (o1, o3, o4, gpt-5...) gets neither: other models refuse the field; one
  that is gets `max_completion_tokens` and no sampling settings, as those models require.
- Other fields Anthropic defines (`service_tier`, `container`, `mcp_servers`, ...) have no
  chat equivalent and are not forwarded.

Answers, streams and errors are in anthropic_output.py. `count_request` and
`estimate_tokens` serve count_tokens: the prompt's characters / 4, images at a fixed size.
"""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..bodies import validate
from ..errors import RequestError
from .anthropic_output import (
    AnthropicErrorBody,
    AnthropicMessage,
    AnthropicTokenCount,
    StreamTranslator,
    error_body,
    from_chat,
    native_error,
)
from .dialect import Dialect

__all__ = [
    "DIALECT",
    "AnthropicCountTokensRequest",
    "AnthropicErrorBody",
    "AnthropicMessage",
    "AnthropicMessageRequest",
    "AnthropicTokenCount",
    "StreamTranslator",
    "count_request",
    "error_body",
    "estimate_tokens",
    "for_target",
    "from_chat",
    "native_error",
    "to_chat",
]

MAX_TOKENS = 2**31 - 1
IMAGE_TOKENS = 1600  # what Anthropic counts for an image of about 1.15 megapixels
EFFORTS = ((2048, "low"), (8192, "medium"))  # thinking budget up to N tokens -> effort; beyond: high
# OpenAI's reasoning models, the only OpenAI-format models that take reasoning_effort.
_REASONING_MODEL = re.compile(r"(?:^|/)(?:o\d|gpt-5)", re.IGNORECASE)


# -- the request's models: validation at the edge and the OpenAPI document -------------------


class _Edge(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class AnthropicTextBlock(_Edge):
    type: Literal["text"]
    text: str
    cache_control: dict[str, Any] | None = None


class AnthropicSource(_Edge):
    type: Literal["base64", "url", "text"]
    media_type: str | None = None
    data: str | None = None
    url: str | None = None


class AnthropicImageBlock(_Edge):
    type: Literal["image"]
    source: AnthropicSource
    cache_control: dict[str, Any] | None = None


class AnthropicDocumentBlock(_Edge):
    type: Literal["document"]
    source: AnthropicSource
    title: str | None = None
    cache_control: dict[str, Any] | None = None


class AnthropicToolUseBlock(_Edge):
    type: Literal["tool_use"]
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    input: dict[str, Any]
    cache_control: dict[str, Any] | None = None


ResultPart = Annotated[AnthropicTextBlock | AnthropicImageBlock, Field(discriminator="type")]


class AnthropicToolResultBlock(_Edge):
    type: Literal["tool_result"]
    tool_use_id: str = Field(min_length=1)
    content: str | list[ResultPart] | None = None
    is_error: bool | None = None
    cache_control: dict[str, Any] | None = None


class AnthropicThinkingBlock(_Edge):
    type: Literal["thinking", "redacted_thinking"]


Block = Annotated[
    AnthropicTextBlock
    | AnthropicImageBlock
    | AnthropicDocumentBlock
    | AnthropicToolUseBlock
    | AnthropicToolResultBlock
    | AnthropicThinkingBlock,
    Field(discriminator="type"),
]


class AnthropicMessageParam(_Edge):
    role: Literal["user", "assistant"]
    content: str | list[Block]


class AnthropicTool(_Edge):
    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    type: str | None = Field(default=None, description="custom (or left out); server tools are refused")
    cache_control: dict[str, Any] | None = None


class AnthropicToolChoice(_Edge):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class AnthropicThinking(_Edge):
    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: int | None = Field(default=None, ge=0, le=MAX_TOKENS)


class AnthropicMetadata(_Edge):
    user_id: str | None = None


class AnthropicCountTokensRequest(_Edge):
    model: str = Field(min_length=1, description="a route name, provider/model, or a model some provider lists")
    messages: list[AnthropicMessageParam] = Field(min_length=1)
    system: str | list[AnthropicTextBlock] | None = None
    tools: list[AnthropicTool] | None = None
    tool_choice: AnthropicToolChoice | None = None
    thinking: AnthropicThinking | None = None


class AnthropicMessageRequest(AnthropicCountTokensRequest):
    max_tokens: int = Field(ge=1, le=MAX_TOKENS)
    stop_sequences: list[str] | None = None
    stream: bool | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    metadata: AnthropicMetadata | None = None


# -- request -> chat -----------------------------------------------------------------------------


def _bad(param: str, message: str) -> RequestError:
    return RequestError(400, f"`{param}`: {message}", code="invalid_value", param=param)


def _marked(part: dict[str, Any], block: dict[str, Any]) -> dict[str, Any]:
    if block.get("cache_control") is not None:
        part["cache_control"] = block["cache_control"]
    return part


def _text_part(block: dict[str, Any]) -> dict[str, Any]:
    return _marked({"type": "text", "text": block["text"]}, block)


def _image_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = block["source"]
    if source["type"] == "base64":
        if not source.get("media_type") or not source.get("data"):
            raise _bad(f"{where}.source", "a base64 image source needs `media_type` and `data`.")
        url = f"data:{source['media_type']};base64,{source['data']}"
    elif source["type"] == "url" and source.get("url"):
        url = source["url"]
    else:
        raise _bad(f"{where}.source", "an image source is base64 (`media_type`, `data`) or url (`url`).")
    return _marked({"type": "image_url", "image_url": {"url": url}}, block)


def _document_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = block["source"]
    if source["type"] == "text" and isinstance(source.get("data"), str):
        return _marked({"type": "text", "text": source["data"]}, block)
    if source["type"] == "base64" and source.get("media_type") and source.get("data"):
        file = {
            "file_data": f"data:{source['media_type']};base64,{source['data']}",
            "filename": block.get("title") or "document.pdf",
        }
        return _marked({"type": "file", "file": file}, block)
    raise _bad(
        f"{where}.source",
        "a document is sent inline: a base64 source (`media_type`, `data`) "
        "or a text one (`data`); URL and file sources are not forwarded.",
    )


def _content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """One plain text part as a string (what every chat server reads), else the parts."""
    if len(parts) == 1 and set(parts[0]) == {"type", "text"}:
        return str(parts[0]["text"])
    return parts


def _tool_message(block: dict[str, Any], where: str) -> dict[str, Any]:
    content = block.get("content")
    if content is None:
        result: str | list[dict[str, Any]] = ""
    elif isinstance(content, str):
        result = content
    else:
        parts = [
            _text_part(part) if part["type"] == "text" else _image_part(part, f"{where}.content[{k}]")
            for k, part in enumerate(content)
        ]
        if all(part["type"] == "text" and "cache_control" not in part for part in parts):
            result = "\n".join(part["text"] for part in parts)
        else:
            result = parts
    message: dict[str, Any] = {"role": "tool", "tool_call_id": block["tool_use_id"], "content": result}
    if block.get("is_error"):
        message["is_error"] = True
    return message


def _user(content: list[dict[str, Any]], i: int) -> list[dict[str, Any]]:
    """The chat messages of one user turn: its tool results first, then the rest."""
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        where = f"messages[{i}].content[{j}]"
        kind = block["type"]
        if kind == "tool_result":
            results.append(_tool_message(block, where))
        elif kind == "text":
            parts.append(_text_part(block))
        elif kind == "image":
            parts.append(_image_part(block, where))
        elif kind == "document":
            parts.append(_document_part(block, where))
        elif kind == "tool_use":
            raise _bad(f"{where}.type", "`tool_use` blocks belong to assistant turns.")
        # thinking blocks in a user turn carry nothing a chat model reads
    return results + ([{"role": "user", "content": _content(parts)}] if parts else [])


def _assistant(content: list[dict[str, Any]], i: int) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        kind = block["type"]
        if kind == "text":
            if block["text"]:
                parts.append(_text_part(block))
        elif kind == "tool_use":
            calls.append(
                {
                    "id": block["id"],
                    "type": "function",
                    "function": {"name": block["name"], "arguments": json.dumps(block["input"])},
                }
            )
        elif kind in ("image", "document", "tool_result"):
            raise _bad(f"messages[{i}].content[{j}].type", f"`{kind}` blocks belong to user turns.")
    if not parts and not calls:
        return []  # only thinking: nothing a chat model reads
    message: dict[str, Any] = {"role": "assistant", "content": _content(parts) if parts else None}
    if calls:
        message["tool_calls"] = calls
    return [message]


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if isinstance(system, str) and system:
        messages.append({"role": "system", "content": system})
    elif isinstance(system, list) and system:
        messages.append({"role": "system", "content": _content([_text_part(b) for b in system])})
    for i, turn in enumerate(body["messages"]):
        content = turn["content"]
        if isinstance(content, str):
            messages.append({"role": turn["role"], "content": content})
        elif turn["role"] == "user":
            messages += _user(content, i)
        else:
            messages += _assistant(content, i)
    return messages


def _tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(tools):
        if tool.get("type") not in (None, "custom"):
            raise _bad(
                f"tools[{i}].type",
                f"the server tool {tool['type']!r} runs inside Anthropic's own "
                "service; the gateway forwards custom tools (`input_schema`) only.",
            )
        if tool.get("input_schema") is None:
            raise _bad(f"tools[{i}].input_schema", "a custom tool needs its `input_schema`.")
        function: dict[str, Any] = {"name": tool["name"], "parameters": tool["input_schema"]}
        if tool.get("description"):
            function["description"] = tool["description"]
        out.append(_marked({"type": "function", "function": function}, tool))
    return out


def _tool_choice(choice: dict[str, Any], names: set[str]) -> tuple[Any, bool]:
    """The chat tool_choice, and whether parallel tool calls are off."""
    kind = choice["type"]
    if kind == "tool":
        if not choice.get("name"):
            raise _bad("tool_choice.name", "a `tool` choice names the tool.")
        if choice["name"] not in names:
            raise _bad("tool_choice.name", f"no tool named {choice['name']!r} is defined in `tools`.")
        mapped: Any = {"type": "function", "function": {"name": choice["name"]}}
    else:
        mapped = {"auto": "auto", "any": "required", "none": "none"}[kind]
    return mapped, choice.get("disable_parallel_tool_use") is True


def _effort(thinking: dict[str, Any]) -> str | None:
    if thinking["type"] == "disabled":
        return None
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int):
        return "medium"  # adaptive: the model's own choice
    return next((effort for limit, effort in EFFORTS if budget <= limit), "high")


def _tool_fields(body: dict[str, Any]) -> dict[str, Any]:
    """tools, and tool_choice with parallel_tool_calls: only with tools, as chat requires."""
    if not body.get("tools"):
        return {}
    out: dict[str, Any] = {"tools": _tools(body["tools"])}
    if body.get("tool_choice") is not None:
        names = {tool["name"] for tool in body["tools"]}
        out["tool_choice"], serial = _tool_choice(body["tool_choice"], names)
        if serial:
            out["parallel_tool_calls"] = False
    return out


def _translate(body: dict[str, Any]) -> dict[str, Any]:
    chat: dict[str, Any] = {"model": body["model"], "messages": _messages(body)}
    for name in ("max_tokens", "temperature", "top_p", "top_k"):
        if body.get(name) is not None:
            chat[name] = body[name]
    if body.get("stop_sequences"):
        chat["stop"] = list(body["stop_sequences"])
    user = (body.get("metadata") or {}).get("user_id")
    if user:
        chat["user"] = user
    chat.update(_tool_fields(body))
    if body.get("thinking") is not None:
        chat["thinking"] = body["thinking"]
        effort = _effort(body["thinking"])
        if effort is not None:
            chat["reasoning_effort"] = effort
    if body.get("stream") is True:
        chat["stream"] = True
    return chat


def to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """The chat body for a Messages API request; a `RequestError` 400 naming a bad field."""
    validate(AnthropicMessageRequest, body)
    return _translate(body)


def count_request(body: dict[str, Any]) -> dict[str, Any]:
    """The chat body for a count_tokens request (a Messages request without `max_tokens`)."""
    validate(AnthropicCountTokensRequest, body)
    return _translate(body)


def estimate_tokens(chat: dict[str, Any]) -> int:
    """An estimate of a chat body's prompt tokens: characters / 4 of its text, tool calls and
    tool definitions, and `IMAGE_TOKENS` per image or file."""
    characters = 0
    attachments = 0
    for message in chat.get("messages") or []:
        content = message.get("content")
        parts = content if isinstance(content, list) else [{"type": "text", "text": content or ""}]
        for part in parts:
            if part.get("type") == "text":
                characters += len(part.get("text") or "")
            else:
                attachments += 1
        for call in message.get("tool_calls") or []:
            characters += len(call["function"]["name"]) + len(call["function"]["arguments"])
    if chat.get("tools"):
        characters += len(json.dumps(chat["tools"], separators=(",", ":")))
    return math.ceil(characters / 4) + attachments * IMAGE_TOKENS


# -- per target --------------------------------------------------------------------------------


def _plain(part: Any) -> Any:
    return {k: v for k, v in part.items() if k != "cache_control"} if isinstance(part, dict) else part


def _plain_message(message: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in message.items() if k != "is_error"}
    if isinstance(out.get("content"), list):
        out["content"] = [_plain(part) for part in out["content"]]
    return out


def for_target(body: dict[str, Any], kind: str, model: str) -> dict[str, Any]:
    """The chat body for one target: what only Anthropic's format takes (`thinking`, `top_k`,
    `cache_control`, a tool result's `is_error`) is left out for any other; so is
    `reasoning_effort` for an OpenAI-format model that is not a reasoning model, while one that
    is gets `max_completion_tokens` for `max_tokens` and no `temperature` or `top_p`, which
    those models refuse."""
    if kind == "anthropic":
        return body
    out = {k: v for k, v in body.items() if k not in ("thinking", "top_k")}
    if kind == "openai" and _REASONING_MODEL.search(model):
        # OpenAI's reasoning models count tokens in max_completion_tokens and refuse sampling
        for name in ("temperature", "top_p"):
            out.pop(name, None)
        if "max_tokens" in out:
            out["max_completion_tokens"] = out.pop("max_tokens")
    elif kind == "openai":
        out.pop("reasoning_effort", None)
    out["messages"] = [_plain_message(message) for message in body["messages"]]
    if "tools" in out:
        out["tools"] = [_plain(tool) for tool in out["tools"]]
    return out


DIALECT = Dialect(
    name="anthropic_messages",
    error_body=error_body,
    native_error=native_error,
    stream=StreamTranslator,
    to_chat=to_chat,
    from_chat=from_chat,
    for_target=for_target,
)

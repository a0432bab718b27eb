"""Anthropic's Messages API behind the gateway's OpenAI chat format, both ways.

Requests: system and developer messages become the top-level `system`; user and assistant
turns keep their roles, with consecutive turns of one role merged (Anthropic requires
alternation); text, image (data URL → base64 source, http(s) → url source) and file (PDF)
parts become content blocks; assistant `tool_calls` become `tool_use` blocks and `tool`
messages `tool_result` blocks at the head of the next user turn; `tools`, `tool_choice` and
`parallel_tool_calls` map to their Anthropic forms; `max_tokens` (or `max_completion_tokens`,
default 1024 because Anthropic requires one), `temperature` (capped at Anthropic's 1.0),
`top_p` and `stop` (→ `stop_sequences`) carry over. What has no Anthropic equivalent and
changes the answer's shape (`n` > 1, audio input, non-function tools) is refused as
`Unsupported`; sampling hints without an equivalent (seed, penalties, logprobs) are dropped.

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
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx

from providers.engine import Classification, Outcome, UpstreamError

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
            {"type": "base64", "media_type": inline[0], "data": inline[1]}
            if inline
            else {"type": "url", "url": url}
        )
        return {"type": "image", "source": source}
    if kind_of_part == "file":
        file = part.get("file") or {}
        inline = _data_url(str(file.get("file_data", "")))
        if inline is None:
            raise Unsupported(kind, "file parts without inline file_data")
        return {"type": "document", "source": {"type": "base64", "media_type": inline[0],
                                               "data": inline[1]}}
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


def to_anthropic(
    request: Mapping[str, Any],
    *,
    model: str,
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
    kind: str = "anthropic",
) -> dict[str, Any]:
    """The Messages API body for an OpenAI chat request."""
    if (request.get("n") or 1) != 1:
        raise Unsupported(kind, "n > 1")
    system, turns = _conversation(request.get("messages"), kind)
    max_tokens = (
        request.get("max_completion_tokens") or request.get("max_tokens") or default_max_tokens
    )
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
    if request.get("user"):
        body["metadata"] = {"user_id": str(request["user"])}
    for key in _PASSED_THROUGH:
        if key in request:
            body[key] = request[key]
    return body


# -- Anthropic answer → OpenAI answer -----------------------------------------------------------


def _usage(reported: Any) -> tuple[Usage, int]:
    """Our Usage and the cached prompt tokens, from Anthropic's usage object."""
    if not isinstance(reported, Mapping):
        return Usage(), 0
    cached = int(reported.get("cache_read_input_tokens") or 0)
    tokens_in = int(reported.get("input_tokens") or 0) + int(
        reported.get("cache_creation_input_tokens") or 0
    )
    return Usage(
        tokens_in=tokens_in + cached, tokens_out=int(reported.get("output_tokens") or 0)
    ), cached


def openai_usage(usage: Usage, cached: int = 0) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.tokens_in,
        "completion_tokens": usage.tokens_out,
        "total_tokens": usage.tokens_in + usage.tokens_out,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def to_openai(message: Mapping[str, Any], *, model: str) -> dict[str, Any]:
    """The OpenAI `chat.completion` for an Anthropic message."""
    content = message.get("content") or []
    text = "".join(
        b.get("text", "") for b in content if isinstance(b, Mapping) and b.get("type") == "text"
    )
    tool_calls = [
        {
            "id": b.get("id"),
            "type": "function",
            "function": {"name": b.get("name"), "arguments": json.dumps(b.get("input") or {})},
        }
        for b in content
        if isinstance(b, Mapping) and b.get("type") == "tool_use"
    ]
    reply: dict[str, Any] = {"role": "assistant", "content": text or (None if tool_calls else "")}
    if tool_calls:
        reply["tool_calls"] = tool_calls
    usage, cached = _usage(message.get("usage"))
    return {
        "id": message.get("id"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.get("model") or model,
        "choices": [
            {
                "index": 0,
                "message": reply,
                "logprobs": None,
                "finish_reason": FINISH_REASONS.get(str(message.get("stop_reason")), "stop"),
            }
        ],
        "usage": openai_usage(usage, cached),
    }


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

    def _body(self, request: Mapping[str, Any], model: str) -> dict[str, Any]:
        default = int(self.config.options.get("default_max_tokens", DEFAULT_MAX_TOKENS))
        return to_anthropic(request, model=model, default_max_tokens=default, kind=self.kind)

    async def chat(self, request: dict[str, Any], *, model: str, timeout: float) -> Result:
        response = await self.client.post(
            self.base_url + "/v1/messages",
            json=self._body(request, model),
            headers=self.headers(),
            timeout=self.timeout(timeout),
        )
        await self.check(response)
        message = json_object(response)
        if message.get("type") != "message" or not isinstance(message.get("content"), list):
            raise malformed("not a message", response=response)
        data = to_openai(message, model=model)
        usage, _ = _usage(message.get("usage"))
        return Result.json(data, usage=usage, model=data["model"])

    async def chat_stream(
        self, request: dict[str, Any], *, model: str, timeout: float
    ) -> ChatStream:
        body = {**self._body(request, model), "stream": True}
        response = await self.send_streaming("POST", self.base_url + "/v1/messages", json=body,
                                             headers=self.headers(), timeout=self.stream_timeout(timeout))
        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        usage = Usage()
        chunks = self._chunks(response, usage, model, include_usage)
        stream = ChatStream(chunks, model=model, response=response)
        stream.usage = usage  # filled in place as message_start and message_delta arrive
        return stream

    async def _chunks(
        self, response: httpx.Response, usage: Usage, model: str, include_usage: bool
    ) -> AsyncIterator[dict[str, Any]]:
        head: dict[str, Any] = {
            "id": "",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        }
        tools: dict[int, int] = {}  # Anthropic content block index -> OpenAI tool call index
        finish = "stop"
        cached = 0

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            out = {
                **head,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
                ],
            }
            if include_usage:
                out["usage"] = None
            return out

        try:
            async for event, data in read_sse(response):
                try:
                    payload = json.loads(data)
                except ValueError:
                    payload = None
                if not isinstance(payload, dict):
                    raise stream_broken(
                        response, f"unreadable event: {data[:120]!r}", "malformed_response"
                    )
                kind = event or payload.get("type")
                if kind == "message_start":
                    message = payload.get("message") or {}
                    head["id"] = message.get("id", "")
                    head["model"] = message.get("model") or model
                    found, cached = _usage(message.get("usage"))
                    usage.tokens_in, usage.tokens_out = found.tokens_in, found.tokens_out
                    yield chunk({"role": "assistant", "content": ""})
                elif kind == "content_block_start":
                    block = payload.get("content_block") or {}
                    if block.get("type") == "tool_use":
                        tools[payload.get("index", 0)] = position = len(tools)
                        call = {"name": block.get("name"), "arguments": ""}
                        yield chunk(
                            {
                                "tool_calls": [
                                    {
                                        "index": position,
                                        "id": block.get("id"),
                                        "type": "function",
                                        "function": call,
                                    }
                                ]
                            }
                        )
                    elif block.get("type") == "text" and block.get("text"):
                        yield chunk({"content": block["text"]})
                elif kind == "content_block_delta":
                    delta = payload.get("delta") or {}
                    if delta.get("type") == "text_delta":
                        yield chunk({"content": delta.get("text", "")})
                    elif delta.get("type") == "input_json_delta" and delta.get("partial_json"):
                        call_index = tools.get(payload.get("index", 0))
                        if call_index is not None:
                            fragment = {"arguments": delta["partial_json"]}
                            yield chunk({"tool_calls": [{"index": call_index, "function": fragment}]})
                elif kind == "message_delta":
                    finish = FINISH_REASONS.get(
                        str((payload.get("delta") or {}).get("stop_reason")), "stop"
                    )
                    reported = payload.get("usage") or {}
                    if reported.get("output_tokens") is not None:
                        usage.tokens_out = int(reported["output_tokens"])
                    if reported.get("input_tokens") is not None:
                        found, cached = _usage(reported)
                        usage.tokens_in = found.tokens_in
                elif kind == "message_stop":
                    yield chunk({}, finish)
                    if include_usage:
                        yield {**head, "choices": [], "usage": openai_usage(usage, cached)}
                    return
                elif kind == "error":
                    error = payload.get("error") or {}
                    kind_of_error = error.get("type", "error")
                    raise UpstreamError(
                        Classification(Outcome.FAILURE, f"stream_{kind_of_error}"),
                        status=response.status_code,
                        message=f"{kind_of_error} mid-stream: {error.get('message', '')}",
                        headers=response.headers,
                        body=data.encode(),
                    )
                # ping, content_block_stop and event types added later carry nothing to forward
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

    async def probe(
        self, *, timeout: float, deep: bool = False, model: str | None = None
    ) -> dict[str, Any]:
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

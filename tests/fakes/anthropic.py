"""A fake of Anthropic's Messages API (`/v1/messages`, `/v1/models`), faithful enough that
the official `anthropic` SDK cannot tell it from the real one.

The "model" is the OpenAI fake's (tests/fakes/openai.py), so both answer alike:
"Echo: <text of the last user message>"; "Tool result: <content>" after a user turn that
carries `tool_result` blocks; a tool call when `tools` are given and the last user message
names one (or `tool_choice` is `any` or names a tool), with the first JSON object written in
the message as its input, preceded by a text block "Calling <name>." as Claude often does.
`max_tokens` cuts the answer to that many words (`max_tokens`); `stop_sequences` cut it
before the first hit (`stop_sequence`). Tokens are words.

Checks, as the real API makes them: `x-api-key` (default `API_KEY`; `api_key=None` skips
the check) and `anthropic-version` headers; `model`, `max_tokens` and `messages` required;
roles only user and assistant; non-empty text blocks; every `tool_use` answered by a
`tool_result` in the next turn and every `tool_result` matching a `tool_use` of the previous
one; unknown models get 404 `not_found_error`. Consecutive turns of one role are combined, as
the real API does. Errors use `{"type": "error", "error": {"type", "message"}, "request_id"}`
and every answer carries `request-id` and `anthropic-ratelimit-*` headers (a 429 also
`retry-after`).

Fault extras (see tests/fakes/base.py): `error_code` with a status names the error type
(`overloaded_error`, ...) or a cause (`credit_balance_too_low` → the 400 "credit balance is
too low"; `enforced_spend_limit_reached` → a 429 with `error.details.error_code`);
`error_code` without a status makes a stream send `event: error` with that type after its
first text delta, then stop, as the real API does when it overloads mid-answer.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from .base import FAULT, FakeServer, Fault, sse
from .openai import Reply, compose_reply, count_words, text_of

__all__ = ["API_KEY", "DEFAULT_MODELS", "FakeAnthropic"]

API_KEY = "sk-ant-fake-key"
# 2026-10-21 is what the anthropic 2.x SDK sends; 2023-06-01 is the long-standing default.
VERSIONS = ("2023-01-01", "2023-06-01", "2026-10-21")


def _model(id_: str, name: str, created: str, lifecycle: str = "active", window: int = 200_000) -> dict[str, Any]:
    return {
        "type": "model",
        "id": id_,
        "display_name": name,
        "created_at": created,
        "lifecycle": lifecycle,
        "deprecated_at": None if lifecycle == "active" else "2026-05-01T00:00:00Z",
        "max_input_tokens": window,
        "max_tokens": 64_000,
    }


# Newest first, as the real list is. A retired model is listed but refuses inference.
DEFAULT_MODELS: tuple[dict[str, Any], ...] = (
    _model("claude-opus-4-6", "Claude Opus 4.6", "2026-02-05T00:00:00Z", window=1_000_000),
    _model("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-17T00:00:00Z", window=1_000_000),
    _model("claude-opus-4-5-20251101", "Claude Opus 4.5", "2025-11-01T00:00:00Z"),
    _model("claude-haiku-4-5-20251001", "Claude Haiku 4.5", "2025-10-01T00:00:00Z"),
    _model("claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z", "deprecated"),
    _model("claude-3-haiku-20240307", "Claude Haiku 3", "2024-03-07T00:00:00Z", "retired"),
)

ERROR_TYPES_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}
_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low to access the Anthropic API."),
    403: (
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: (
        "rate_limit_error",
        "This request would exceed the rate limit for your organization of 50 requests per minute. "
        "For details, refer to: https://docs.claude.com/en/api/rate-limits.",
    ),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}
_CREDIT = (
    "Your credit balance is too low to access the Anthropic API. "
    "Please go to Plans & Billing to upgrade or purchase credits."
)
_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "stop_sequence": "stop_sequence",
}
_BLOCK_TYPES = (
    "text",
    "image",
    "document",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
)


def new_id(prefix: str) -> str:
    return f"{prefix}_01{uuid.uuid4().hex[:22]}"


def error_payload(kind: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": kind, "message": message}
    if details:
        error["details"] = details
    return {"type": "error", "error": error, "request_id": new_id("req")}


def fail(status: int, kind: str, message: str) -> web.Response:
    return web.json_response(error_payload(kind, message), status=status)


class FakeAnthropic(FakeServer):
    kind = "anthropic"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str | None = API_KEY,
        models: Iterable[dict[str, Any]] = DEFAULT_MODELS,
    ) -> None:
        super().__init__(host, port)
        self.api_key = api_key
        self.models = list(models)

    # -- frame hooks ----------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        app.on_response_prepare.append(self._add_headers)
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_post("/v1/messages/count_tokens", self.count_tokens)
        app.router.add_get("/v1/models", self.list_models)
        app.router.add_get("/v1/models/{model}", self.get_model)
        app.router.add_route("*", "/{tail:.*}", self.unknown_url)

    def error_body(self, status: int, fault: Fault) -> dict[str, Any]:
        kind, message = _ERRORS.get(
            status, ("api_error" if status >= 500 else "invalid_request_error", f"HTTP {status}")
        )
        code = fault.error_code
        if code in ERROR_TYPES_STATUS:
            return error_payload(code, _ERRORS.get(ERROR_TYPES_STATUS[code], (code, message))[1])
        if code == "credit_balance_too_low":
            return error_payload("invalid_request_error", _CREDIT)
        if code:
            return error_payload(kind, message, {"error_code": code})
        return error_payload(kind, message)

    async def _add_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        if request.path.startswith("/__"):
            return
        headers = response.headers
        request_id = None
        if isinstance(response, web.Response) and isinstance(response.body, bytes) and response.status >= 400:
            try:
                request_id = json.loads(response.body).get("request_id")
            except (ValueError, AttributeError):
                request_id = None
        headers.setdefault("request-id", request_id or new_id("req"))
        headers.setdefault("anthropic-organization-id", "00000000-0000-0000-0000-000000000000")
        fault: Fault | None = request.get(FAULT)
        limited = response.status == 429 and not (fault and fault.error_code)
        soon = (datetime.now(UTC) + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for kind, limit in (
            ("requests", 4000),
            ("tokens", 2_000_000),
            ("input-tokens", 2_000_000),
            ("output-tokens", 400_000),
        ):
            exhausted = limited and kind == "requests"
            headers.setdefault(f"anthropic-ratelimit-{kind}-limit", str(limit))
            headers.setdefault(f"anthropic-ratelimit-{kind}-remaining", "0" if exhausted else str(limit - 1))
            headers.setdefault(f"anthropic-ratelimit-{kind}-reset", soon)
        if limited:
            headers.setdefault("retry-after", "1")

    # -- shared checks --------------------------------------------------------------------------

    def find_model(self, name: str) -> dict[str, Any] | None:
        """The listed model with this id or alias (the id without its date)."""
        for model in self.models:
            if name in (model["id"], re.sub(r"-\d{8}$", "", model["id"])):
                return model
        return None

    async def _prelude(self, request: web.Request) -> tuple[dict[str, Any], web.Response | None]:
        if self.api_key is not None:
            # x-api-key, or a Bearer token as the 2.x SDK sends it.
            key = request.headers.get("x-api-key")
            bearer = request.headers.get("Authorization", "")
            if key is None and bearer.lower().startswith("bearer "):
                key = bearer[7:].strip()
            if key is None:
                return {}, fail(401, "authentication_error", "x-api-key header is required")
            if key != self.api_key:
                return {}, fail(401, "authentication_error", "invalid x-api-key")
        version = request.headers.get("anthropic-version")
        if version is None:
            return {}, fail(400, "invalid_request_error", "anthropic-version: header is required")
        if version not in VERSIONS:
            return {}, fail(400, "invalid_request_error", f"anthropic-version: invalid version {version!r}")
        if request.method != "POST":
            return {}, None
        try:
            body = json.loads(await request.read() or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return {}, fail(
                400,
                "invalid_request_error",
                "There was an issue with the request body: invalid JSON",
            )
        return body, None

    def _validate(
        self, body: dict[str, Any], *, needs_max_tokens: bool = True
    ) -> tuple[list[dict[str, Any]], web.Response | None]:
        required = ("model", "max_tokens", "messages") if needs_max_tokens else ("model", "messages")
        for name in required:
            if name not in body:
                return [], fail(400, "invalid_request_error", f"{name}: Field required")
        if needs_max_tokens and (not isinstance(body["max_tokens"], int) or body["max_tokens"] < 1):
            return [], fail(
                400,
                "invalid_request_error",
                "max_tokens: Input should be greater than or equal to 1",
            )
        temperature = body.get("temperature")
        if temperature is not None and not 0 <= temperature <= 1:
            return [], fail(400, "invalid_request_error", "temperature: range: 0..1")
        messages = body["messages"]
        if not isinstance(messages, list):
            return [], fail(400, "invalid_request_error", "messages: Input should be a valid list")
        turns: list[dict[str, Any]] = []
        for i, message in enumerate(messages):
            role = message.get("role") if isinstance(message, dict) else None
            if role not in ("user", "assistant"):
                return [], fail(
                    400,
                    "invalid_request_error",
                    f"messages.{i}.role: Input should be 'user' or 'assistant'",
                )
            content = message.get("content")
            if isinstance(content, str):
                content = [{"type": "text", "text": content}]
            if not isinstance(content, list):
                return [], fail(
                    400,
                    "invalid_request_error",
                    f"messages.{i}.content: Input should be a valid list",
                )
            for j, block in enumerate(content):
                kind = block.get("type") if isinstance(block, dict) else None
                if kind not in _BLOCK_TYPES:
                    return [], fail(
                        400,
                        "invalid_request_error",
                        f"messages.{i}.content.{j}: Input tag '{kind}' found using 'type' does not "
                        f"match any of the expected tags: {', '.join(map(repr, _BLOCK_TYPES))}",
                    )
                if kind == "text" and not block.get("text"):
                    return [], fail(
                        400,
                        "invalid_request_error",
                        "messages: text content blocks must be non-empty",
                    )
                if kind == "image" and (block.get("source") or {}).get("type") not in (
                    "base64",
                    "url",
                    "file",
                ):
                    return [], fail(
                        400,
                        "invalid_request_error",
                        f"messages.{i}.content.{j}.image.source: Field required",
                    )
            if turns and turns[-1]["role"] == role:  # the real API combines consecutive turns
                turns[-1]["content"].extend(content)
            else:
                turns.append({"role": role, "content": list(content)})
        if not turns:
            return [], fail(400, "invalid_request_error", "messages: at least one message is required")
        for i, turn in enumerate(turns):
            uses = [b["id"] for b in turn["content"] if b.get("type") == "tool_use"]
            results = [b.get("tool_use_id") for b in turn["content"] if b.get("type") == "tool_result"]
            if results:
                before = turns[i - 1]["content"] if i > 0 and turns[i - 1]["role"] == "assistant" else []
                offered = {b.get("id") for b in before if b.get("type") == "tool_use"}
                stray = [r for r in results if r not in offered]
                if stray:
                    return [], fail(
                        400,
                        "invalid_request_error",
                        f"messages.{i}.content.0: unexpected `tool_use_id` found in `tool_result` blocks: "
                        f"{stray[0]}. Each `tool_result` block must have a corresponding `tool_use` block "
                        "in the previous message.",
                    )
            if uses and i + 1 < len(turns):
                answered = {b.get("tool_use_id") for b in turns[i + 1]["content"] if b.get("type") == "tool_result"}
                missing = [u for u in uses if u not in answered]
                if missing:
                    return [], fail(
                        400,
                        "invalid_request_error",
                        f"messages.{i}: `tool_use` ids were found without `tool_result` blocks "
                        f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
                        "corresponding `tool_result` block in the next message.",
                    )
        for i, tool in enumerate(body.get("tools") or []):
            if not isinstance(tool, dict) or "name" not in tool:
                return [], fail(400, "invalid_request_error", f"tools.{i}.custom.name: Field required")
            if "type" not in tool and "input_schema" not in tool:
                return [], fail(400, "invalid_request_error", f"tools.{i}.custom.input_schema: Field required")
        model = self.find_model(body["model"]) if isinstance(body["model"], str) else None
        if model is None or model["lifecycle"] == "retired":
            return [], fail(404, "not_found_error", f"model: {body['model']}")
        return turns, None

    # -- messages -------------------------------------------------------------------------------

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body, bad = await self._prelude(request)
        if bad is not None:
            return bad
        turns, bad = self._validate(body)
        if bad is not None:
            return bad
        reply = self.reply(body, turns)
        if body.get("stream"):
            return await self.stream(request, self._events(body, reply, request.get(FAULT)))
        return web.json_response(self.message(body, reply))

    def _prompt_tokens(self, body: dict[str, Any], turns: list[dict[str, Any]]) -> int:
        return count_words(text_of(body.get("system"))) + sum(count_words(text_of(t["content"])) for t in turns)

    def reply(self, body: dict[str, Any], turns: list[dict[str, Any]]) -> Reply:
        last = turns[-1]
        results = [b for b in last["content"] if b.get("type") == "tool_result"]
        user_turn = next((t for t in reversed(turns) if t["role"] == "user"), {"content": []})
        user_text = text_of([b for b in user_turn["content"] if b.get("type") == "text"])
        tools = [(t.get("name", ""), t.get("input_schema")) for t in body.get("tools") or [] if isinstance(t, dict)]
        choice = body.get("tool_choice") or {"type": "auto"}
        forced = None
        if choice.get("type") == "tool":
            forced = choice.get("name")
        elif choice.get("type") == "any" and tools:
            lowered = user_text.lower()
            forced = next((n for n, _ in tools if n.lower() in lowered), tools[0][0])
        reply = compose_reply(
            last_role="tool" if results else last["role"],
            last_text=" ".join(text_of(r.get("content")) for r in results),
            user_text=user_text,
            tools=tools,
            forced_tool=forced,
            tools_allowed=choice.get("type") != "none",
            max_words=body["max_tokens"],
            stop=list(body.get("stop_sequences") or []),
            prompt_tokens=self._prompt_tokens(body, turns),
            call_id=new_id("toolu"),
        )
        if reply.tool_calls:
            reply.text = f"Calling {reply.tool_calls[0].name}."
        return reply

    def _usage(self, reply: Reply, output_tokens: int) -> dict[str, Any]:
        return {
            "input_tokens": reply.prompt_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }

    def message(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        content: list[dict[str, Any]] = [{"type": "text", "text": reply.text}] if reply.text else []
        content += [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments} for c in reply.tool_calls]
        return {
            "id": new_id("msg"),
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": _STOP_REASONS[reply.finish],
            "stop_sequence": reply.stop_sequence,
            "usage": self._usage(reply, reply.completion_tokens),
        }

    def _events(self, body: dict[str, Any], reply: Reply, fault: Fault | None) -> Iterator[bytes]:
        start = {
            **self.message(body, reply),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
        }
        start["usage"] = self._usage(reply, 1)
        yield sse({"type": "message_start", "message": start}, "message_start")
        index = 0
        if reply.text:
            yield sse(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
                "content_block_start",
            )
            yield sse({"type": "ping"}, "ping")
            for n, piece in enumerate(reply.pieces()):
                delta = {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": piece},
                }
                yield sse(delta, "content_block_delta")
                if n == 0 and fault is not None and fault.status is None and fault.error_code:
                    kind = fault.error_code if fault.error_code in ERROR_TYPES_STATUS else "api_error"
                    message = _ERRORS.get(ERROR_TYPES_STATUS[kind], (kind, "Internal server error"))[1]
                    yield sse({"type": "error", "error": {"type": kind, "message": message}}, "error")
                    return
            yield sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
            index = 1
        for call in reply.tool_calls:
            block = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
            yield sse(
                {"type": "content_block_start", "index": index, "content_block": block},
                "content_block_start",
            )
            arguments = json.dumps(call.arguments)
            step = max(1, len(arguments) // 3)
            for fragment in [
                "",
                *(arguments[i : i + step] for i in range(0, len(arguments), step)),
            ]:
                delta = {"type": "input_json_delta", "partial_json": fragment}
                yield sse(
                    {"type": "content_block_delta", "index": index, "delta": delta},
                    "content_block_delta",
                )
            yield sse({"type": "content_block_stop", "index": index}, "content_block_stop")
            index += 1
        stop = {"stop_reason": _STOP_REASONS[reply.finish], "stop_sequence": reply.stop_sequence}
        usage = {"output_tokens": reply.completion_tokens}
        yield sse({"type": "message_delta", "delta": stop, "usage": usage}, "message_delta")
        yield sse({"type": "message_stop"}, "message_stop")

    async def count_tokens(self, request: web.Request) -> web.Response:
        body, bad = await self._prelude(request)
        if bad is not None:
            return bad
        turns, bad = self._validate(body, needs_max_tokens=False)
        if bad is not None:
            return bad
        return web.json_response({"input_tokens": self._prompt_tokens(body, turns)})

    # -- models ---------------------------------------------------------------------------------

    async def list_models(self, request: web.Request) -> web.Response:
        _, bad = await self._prelude(request)
        if bad is not None:
            return bad
        try:
            limit = int(request.query.get("limit", "20"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 1000:
            return fail(400, "invalid_request_error", "limit: Input should be between 1 and 1000")
        ids = [m["id"] for m in self.models]
        after, before = request.query.get("after_id"), request.query.get("before_id")
        items = self.models
        if after in ids:
            items = items[ids.index(after) + 1 :]
        elif before in ids:
            items = items[: ids.index(before)]
        page = items[:limit]
        return web.json_response(
            {
                "data": page,
                "has_more": len(items) > limit,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
            }
        )

    async def get_model(self, request: web.Request) -> web.Response:
        _, bad = await self._prelude(request)
        if bad is not None:
            return bad
        model = self.find_model(request.match_info["model"])
        if model is None:
            return fail(404, "not_found_error", f"model: {request.match_info['model']}")
        return web.json_response(model)

    async def unknown_url(self, request: web.Request) -> web.Response:
        return fail(404, "not_found_error", "Not Found")

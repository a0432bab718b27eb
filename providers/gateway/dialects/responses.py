"""OpenAI's Responses API (`POST /v1/responses`) as a dialect of chat completions.

Pure translation, no I/O and no Django; the view routes the chat body like any other:

- `to_chat(body)`: a Responses request -> the chat-completions body the gateway routes.
- `from_chat(completion, model=..., request=...)`: a chat completion -> a Response object.
- `StreamTranslator`: chat.completion.chunk dicts -> the Responses stream's typed events,
  `(event type, payload)` pairs whose payloads carry `type` and `sequence_number`.
- `error_body(...)`: OpenAI's error shape.

This module reads requests; the answers are made in responses_output.py.

The gateway keeps no responses. What needs kept state (`previous_response_id`,
`conversation`, stored `prompt`s, `background`, `item_reference` items) is refused with a 400;
`store` is accepted and has no effect (answers say `"store": false`). Built-in tools
(web_search, file_search, ...) run inside OpenAI's own service, so only function tools
translate. Fields chat completions shares (`user`, `service_tier`, `safety_identifier`,
`prompt_cache_key`) and fields the Responses API does not know pass through as they came.

Errors: one class, `DialectError` (a ValueError): a request the dialect cannot translate, with
the HTTP status, OpenAI error type and code, and `param`, the field path
(`input[2].content[0].image_url`).
"""

from __future__ import annotations

from typing import Any

from .responses_output import StreamTranslator, from_chat

__all__ = ["DialectError", "StreamTranslator", "error_body", "from_chat", "to_chat"]

# Responses request fields this module translates, echoes or refuses; anything else passes
# through to the chat body (chat completions shares some, providers take extras of their own).
_RESPONSES_FIELDS = frozenset(
    {
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "max_output_tokens",
        "text",
        "reasoning",
        "metadata",
        "store",
        "include",
        "truncation",
        "max_tool_calls",
        "previous_response_id",
        "conversation",
        "prompt",
        "background",
        "stream_options",
        "top_logprobs",
        "context_management",
        "prompt_cache_retention",
    }
)
_NOT_KEPT = "this gateway does not store responses (`store` has no effect here)"
_STATEFUL = {
    "previous_response_id": f"{_NOT_KEPT}, so there is no earlier response to continue. "
    "Send the whole conversation in `input` instead.",
    "conversation": f"{_NOT_KEPT} or conversations. Send the whole conversation in `input` instead.",
    "prompt": "stored prompt templates live in OpenAI's dashboard; send `instructions` and `input` instead.",
}
_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
_IMAGE_DETAILS = ("low", "high", "auto", "original")


class DialectError(ValueError):
    """A Responses request that cannot be translated; `param` is the offending field's path."""

    def __init__(
        self, status: int, type_: str, message: str, param: str | None = None, *, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.type, str(self), self.param, code=self.code)


def error_body(
    status: int, type: str, message: str, param: str | None = None, *, code: str | None = None
) -> dict[str, Any]:
    """OpenAI's error shape. `status` is the HTTP status the body goes with (the shape does
    not repeat it); `code` defaults to none, as OpenAI leaves it for most errors."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def _bad(param: str, message: str, code: str = "invalid_value") -> DialectError:
    return DialectError(400, "invalid_request_error", message, param, code=code)


# -- request ------------------------------------------------------------------------------


def to_chat(body: dict[str, Any]) -> dict[str, Any]:
    """The chat-completions body for a Responses request; `DialectError` when it has none."""
    if not isinstance(body, dict):
        raise DialectError(400, "invalid_request_error", "The body must be a JSON object.")
    _refuse_stateful(body)
    chat = {key: value for key, value in body.items() if key not in _RESPONSES_FIELDS}
    chat["messages"] = _conversation(body)
    _check_plain_fields(body)
    if body.get("max_output_tokens") is not None:
        # chat's current name for the limit: OpenAI's reasoning models refuse `max_tokens`,
        # and every other adapter reads either
        chat["max_completion_tokens"] = _count_field(body["max_output_tokens"], "max_output_tokens")
    if body.get("tools") is not None:
        chat["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    if body.get("text") is not None:
        chat.update(_text_config(body["text"]))
    if body.get("reasoning") is not None:
        effort = _object(body["reasoning"], "reasoning").get("effort")
        if effort is not None:
            if effort not in _EFFORTS:
                raise _bad("reasoning.effort", f"`reasoning.effort` must be one of {', '.join(_EFFORTS)}.")
            chat["reasoning_effort"] = effort
    return chat


def _refuse_stateful(body: dict[str, Any]) -> None:
    """What needs a response the gateway would have kept: a 400 saying so."""
    for name, why in _STATEFUL.items():
        if body.get(name) is not None:
            raise _bad(name, f"`{name}` is not supported: {why}", "unsupported_parameter")
    if body.get("background"):
        raise _bad(
            "background",
            "`background` is not supported: " + _NOT_KEPT + ", so a background response could never be fetched.",
            "unsupported_parameter",
        )


def _conversation(body: dict[str, Any]) -> list[dict[str, Any]]:
    """`instructions` as the system message, then the `input` items as chat messages."""
    messages: list[dict[str, Any]] = []
    if body.get("instructions") is not None:
        messages.append({"role": "system", "content": _string(body["instructions"], "instructions")})
    if body.get("input") is None:
        raise _bad("input", "`input` is required: a string or a list of input items.", "missing_required_parameter")
    messages += _messages(body["input"])
    if not messages:
        raise _bad("input", "`input` must not be empty.")
    return messages


def _check_plain_fields(body: dict[str, Any]) -> None:
    """Fields passed on (or echoed) as they came: checked for their type only."""
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            _number(body[name], name)
    for name in ("stream", "parallel_tool_calls"):
        if body.get(name) is not None and not isinstance(body[name], bool):
            raise _bad(name, f"`{name}` must be true or false.", "invalid_type")
    if body.get("metadata") is not None:
        # echoed on the Response, not sent on: OpenAI's chat API takes metadata only with store
        for key, value in _object(body["metadata"], "metadata").items():
            _string(value, f"metadata.{key}")
    if body.get("truncation") not in (None, "auto", "disabled"):
        raise _bad("truncation", "`truncation` must be 'auto' or 'disabled'.")
    if body.get("user") is not None:
        _string(body["user"], "user")


def _messages(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list):
        raise _bad("input", "`input` must be a string or a list of input items.", "invalid_type")
    messages: list[dict[str, Any]] = []
    for i, raw in enumerate(value):
        where = f"input[{i}]"
        item = _object(raw, where)
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            messages.append(_message(item, where))
        elif kind == "function_call":
            _add_call(messages, item, where)
        elif kind == "function_call_output":
            call_id = _string(item.get("call_id"), f"{where}.call_id")
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": call_id,
                    "content": _tool_output(item.get("output"), f"{where}.output"),
                }
            )
        elif kind == "reasoning":
            # a reasoning item handed back from an earlier turn: chat has no slot for it, and
            # the answer it led to is in the following items
            continue
        elif kind == "item_reference":
            raise _bad(
                where, f"`{where}` refers to a stored item: {_NOT_KEPT}. Send the item itself.", "unsupported_parameter"
            )
        else:
            raise _bad(
                f"{where}.type",
                f"`{where}.type` {kind!r} is not supported: only message, "
                "function_call and function_call_output items translate to chat completions.",
            )
    return messages


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise _bad(f"{where}.role", f"`{where}.role` must be user, assistant, system or developer.")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    parts = _list(content, f"{where}.content", "a string or a list of content parts")
    converted = [_part(part, f"{where}.content[{i}]") for i, part in enumerate(parts)]
    if role == "user":
        return {"role": role, "content": converted}
    # assistant, system and developer turns are text in chat completions
    for i, part in enumerate(converted):
        if part["type"] != "text":
            raise _bad(f"{where}.content[{i}]", f"`{where}.content[{i}]`: {role} messages take text only.")
    return {"role": role, "content": "".join(part["text"] for part in converted)}


def _part(raw: Any, where: str) -> dict[str, Any]:
    """One Responses content part as a chat content part."""
    part = _object(raw, where)
    kind = part.get("type")
    if kind in ("input_text", "output_text"):
        return {"type": "text", "text": _string(part.get("text"), f"{where}.text")}
    if kind == "refusal":
        return {"type": "text", "text": _string(part.get("refusal"), f"{where}.refusal")}
    if kind == "input_image":
        if part.get("image_url") is None:
            if part.get("file_id") is not None:
                raise _bad(
                    f"{where}.file_id",
                    f"`{where}.file_id`: file ids need OpenAI's file store; "
                    "send `image_url` (an https: or data: URL) instead.",
                    "unsupported_parameter",
                )
            raise _bad(
                f"{where}.image_url",
                f"`{where}.image_url` is required: an https: or data: URL.",
                "missing_required_parameter",
            )
        image: dict[str, Any] = {"url": _string(part["image_url"], f"{where}.image_url")}
        detail = part.get("detail")
        if detail is not None:
            if detail not in _IMAGE_DETAILS:
                raise _bad(f"{where}.detail", f"`{where}.detail` must be one of {', '.join(_IMAGE_DETAILS)}.")
            image["detail"] = detail
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        if part.get("file_url") is not None:
            raise _bad(
                f"{where}.file_url",
                f"`{where}.file_url` has no chat-completions form; send the file inline as `file_data`.",
                "unsupported_parameter",
            )
        file: dict[str, Any] = {}
        for name in ("file_data", "file_id", "filename"):
            if part.get(name) is not None:
                file[name] = _string(part[name], f"{where}.{name}")
        if "file_data" not in file and "file_id" not in file:
            raise _bad(
                f"{where}.file_data",
                f"`{where}` needs `file_data` (the file as a data: URL).",
                "missing_required_parameter",
            )
        return {"type": "file", "file": file}
    raise _bad(
        f"{where}.type",
        f"`{where}.type` {kind!r} is not a content part this gateway "
        "translates: use input_text, input_image, input_file or output_text.",
    )


def _add_call(messages: list[dict[str, Any]], item: dict[str, Any], where: str) -> None:
    arguments = item.get("arguments", "{}")
    call = {
        "id": _string(item.get("call_id"), f"{where}.call_id"),
        "type": "function",
        "function": {
            "name": _string(item.get("name"), f"{where}.name"),
            "arguments": _string(arguments, f"{where}.arguments"),
        },
    }
    last = messages[-1] if messages else None
    # One model turn is a message and/or several calls in Responses, one assistant message in chat.
    if last is not None and last["role"] == "assistant":
        last.setdefault("tool_calls", []).append(call)
        if last.get("content") == "":
            last["content"] = None
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _tool_output(value: Any, where: str) -> str | list[dict[str, Any]]:
    if isinstance(value, str):
        return value
    parts = _list(value, where, "a string or a list of content parts")
    converted = [_part(part, f"{where}[{i}]") for i, part in enumerate(parts)]
    if all(part["type"] == "text" for part in converted):
        return "".join(part["text"] for part in converted)
    return converted


def _tools(value: Any) -> list[dict[str, Any]]:
    tools = []
    for i, raw in enumerate(_list(value, "tools", "a list of tools")):
        where = f"tools[{i}]"
        tool = _object(raw, where)
        if tool.get("type") != "function":
            raise _bad(
                f"{where}.type",
                f"`{where}.type` {tool.get('type')!r} is not supported: built-in "
                "tools run inside OpenAI's own service, and this gateway answers /v1/responses "
                "through chat completions, where only `function` tools exist.",
                "unsupported_parameter",
            )
        function: dict[str, Any] = {"name": _string(tool.get("name"), f"{where}.name")}
        if tool.get("description") is not None:
            function["description"] = _string(tool["description"], f"{where}.description")
        if tool.get("parameters") is not None:
            function["parameters"] = _object(tool["parameters"], f"{where}.parameters")
        if tool.get("strict") is not None:
            if not isinstance(tool["strict"], bool):
                raise _bad(f"{where}.strict", f"`{where}.strict` must be true or false.", "invalid_type")
            function["strict"] = tool["strict"]
        tools.append({"type": "function", "function": function})
    return tools


def _tool_choice(value: Any) -> str | dict[str, Any]:
    if value in ("none", "auto", "required"):
        return str(value)
    choice = _object(value, "tool_choice", "'none', 'auto', 'required' or a function choice")
    if choice.get("type") != "function":
        raise _bad(
            "tool_choice.type",
            f"`tool_choice.type` {choice.get('type')!r} is not supported: "
            "only function tools translate to chat completions.",
            "unsupported_parameter",
        )
    return {"type": "function", "function": {"name": _string(choice.get("name"), "tool_choice.name")}}


def _text_config(value: Any) -> dict[str, Any]:
    text = _object(value, "text")
    out: dict[str, Any] = {}
    if text.get("verbosity") is not None:
        if text["verbosity"] not in ("low", "medium", "high"):
            raise _bad("text.verbosity", "`text.verbosity` must be low, medium or high.")
        out["verbosity"] = text["verbosity"]
    if text.get("format") is None:
        return out
    form = _object(text["format"], "text.format")
    kind = form.get("type")
    if kind == "json_object":
        out["response_format"] = {"type": "json_object"}
    elif kind == "json_schema":
        schema: dict[str, Any] = {
            "name": _string(form.get("name"), "text.format.name"),
            "schema": _object(form.get("schema"), "text.format.schema"),
        }
        if form.get("description") is not None:
            schema["description"] = _string(form["description"], "text.format.description")
        if form.get("strict") is not None:
            if not isinstance(form["strict"], bool):
                raise _bad("text.format.strict", "`text.format.strict` must be true or false.", "invalid_type")
            schema["strict"] = form["strict"]
        out["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif kind != "text":  # plain text is chat's default: nothing to send
        raise _bad("text.format.type", "`text.format.type` must be text, json_object or json_schema.")
    return out


def _object(value: Any, where: str, what: str = "an object") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(where, f"`{where}` must be {what}.", "invalid_type")
    return value


def _list(value: Any, where: str, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise _bad(where, f"`{where}` must be {what}.", "invalid_type")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _bad(
            where, f"`{where}` must be a string.", "missing_required_parameter" if value is None else "invalid_type"
        )
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(where, f"`{where}` must be a number.", "invalid_type")
    return value


def _count_field(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _bad(where, f"`{where}` must be a whole number of at least 1.")
    return value

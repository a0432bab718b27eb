"""What a client API ("dialect") gives the gateway's views: pure functions at the two ends
of a request whose middle (routing, fallback, breakers, headers, records) is the same for all.

- `to_chat(body) -> dict`: the caller's request as an internal chat body (OpenAI's
  chat-completions body); a bad field is a `RequestError` 400 whose `param` is the field's
  path in the caller's terms. None: the body is the internal one already.
- `from_chat(completion, *, model, request) -> dict`: a non-streamed internal completion in
  the caller's shape; `model` is the name the caller asked for, `request` the caller's own
  body. None: the provider's bytes go out as they came.
- `stream(*, model, request) -> StreamTranslator`: a new translator for one streamed answer.
- `error_body(status, type_, message, **extra) -> dict`: an error in the caller's shape.
  `type_` is the gateway's word (`invalid_request_error`, `all_targets_failed`, ...); `extra`
  may hold `code`, `param` and `attempts`, which a shape without room for them leaves out.
- `native_error(data) -> bool`: whether a provider's JSON error body is already in the
  caller's shape, and so relayed as it came; any other is said again with `error_body`.
- `for_target(body, kind, model) -> dict`, optional: the internal body for one target, with
  what the translation added that this wire format (`kind`) would refuse left out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Dialect", "SseEvent", "StreamTranslator", "for_path"]

# One server-sent event: (event name, or None for none; data). Data is JSON unless it is a
# string (OpenAI's closing `[DONE]`).
SseEvent = tuple[str | None, dict[str, Any] | str]


class StreamTranslator(Protocol):
    """Internal chat chunks in, the caller's server-sent events out, for one stream:
    `start()` once, `feed()` for every chunk, then `close()` when the chunks end well or
    `fail()` when the stream breaks after it began (no retry is possible then)."""

    def start(self) -> list[SseEvent]: ...

    def feed(self, chunk: dict[str, Any]) -> list[SseEvent]: ...

    def close(self, usage: dict[str, Any] | None = None) -> list[SseEvent]:
        """`usage` is OpenAI's usage object (`prompt_tokens`, `completion_tokens`, ...)."""
        ...

    def fail(self, message: str) -> list[SseEvent]: ...


@dataclass(frozen=True)
class Dialect:
    name: str
    error_body: Callable[..., dict[str, Any]]
    native_error: Callable[[Any], bool]
    stream: Callable[..., StreamTranslator]
    to_chat: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    from_chat: Callable[..., dict[str, Any]] | None = None
    for_target: Callable[[dict[str, Any], str, str], dict[str, Any]] | None = None


def for_path(path: str) -> Dialect:
    """The dialect an API path answers in (OpenAI's, unless another claims the path): for
    the answers made outside a view (no such endpoint, a method not allowed, too large)."""
    from .anthropic_messages import DIALECT as ANTHROPIC
    from .openai_chat import DIALECT as OPENAI
    from .responses_api import DIALECT as RESPONSES

    if path == "/v1/messages" or path.startswith("/v1/messages/"):
        return ANTHROPIC
    if path == "/v1/responses" or path.startswith("/v1/responses/"):
        return RESPONSES
    return OPENAI

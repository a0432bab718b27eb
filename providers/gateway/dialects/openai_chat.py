"""OpenAI's chat completions: the internal model itself, so the identity dialect.

The caller's body goes upstream as it came (only `model` replaced, by the adapter), the
provider's bytes come back as they are, a stream's chunks are relayed one `data:` event each
and end with `data: [DONE]`, and a stream that breaks after it began ends with one
`{"error": {...}}` event (type and code `stream_aborted`; the message says why).

A stream carries usage only when the caller asked (`stream_options.include_usage: true`), as
OpenAI's does: the gateway asks every upstream for it (its analytics count tokens), and a
caller that did not ask gets neither the usage-only chunk nor a `usage` field on the others
(`wants_usage`, `StreamTranslator`).
A provider's error already in OpenAI's shape is relayed as it came; any other (Anthropic's
`{"type": "error", ...}`, Ollama's `{"error": "text"}`) is said again in OpenAI's.
"""

from __future__ import annotations

from typing import Any

from ..errors import openai_error_body
from .dialect import Dialect, SseEvent

__all__ = ["DIALECT", "StreamTranslator", "error_body", "native_error", "wants_usage"]

error_body = openai_error_body


def native_error(data: Any) -> bool:
    """An OpenAI error body: `{"error": {...}}`, and not Anthropic's `{"type": "error", ...}`."""
    return isinstance(data, dict) and isinstance(data.get("error"), dict) and data.get("type") != "error"


def wants_usage(request: dict[str, Any] | None) -> bool:
    """Whether a chat request asked for its stream's usage chunk."""
    options = (request or {}).get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


class StreamTranslator:
    """Chunks relayed as they are, but for usage the caller did not ask for."""

    def __init__(self, *, model: str = "", request: dict[str, Any] | None = None) -> None:
        self.usage = wants_usage(request)

    def start(self) -> list[SseEvent]:
        return []

    def feed(self, chunk: dict[str, Any]) -> list[SseEvent]:
        if not self.usage and "usage" in chunk:
            if chunk["usage"] and not chunk.get("choices"):
                return []  # the usage-only chunk
            chunk = {k: v for k, v in chunk.items() if k != "usage"}
        return [(None, chunk)]

    def close(self, usage: dict[str, Any] | None = None) -> list[SseEvent]:
        return [(None, "[DONE]")]

    def fail(self, message: str) -> list[SseEvent]:
        return [(None, {"error": {"type": "stream_aborted", "code": "stream_aborted", "message": message}})]


DIALECT = Dialect(name="openai_chat", error_body=error_body, native_error=native_error, stream=StreamTranslator)

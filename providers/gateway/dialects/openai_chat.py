"""OpenAI's chat completions: the internal model itself, so the identity dialect.

The caller's body goes upstream as it came (only `model` replaced, by the adapter), the
provider's bytes come back as they are, a stream's chunks are relayed one `data:` event each
and end with `data: [DONE]`, and a stream that breaks after it began ends with one
`{"error": {...}}` event (type and code `stream_aborted`; the message says why).
A provider's error already in OpenAI's shape is relayed as it came; any other (Anthropic's
`{"type": "error", ...}`, Ollama's `{"error": "text"}`) is said again in OpenAI's.
"""

from __future__ import annotations

from typing import Any

from ..errors import openai_error_body
from .dialect import Dialect, SseEvent

__all__ = ["DIALECT", "StreamTranslator", "error_body", "native_error"]

error_body = openai_error_body


def native_error(data: Any) -> bool:
    """An OpenAI error body: `{"error": {...}}`, and not Anthropic's `{"type": "error", ...}`."""
    return isinstance(data, dict) and isinstance(data.get("error"), dict) and data.get("type") != "error"


class StreamTranslator:
    """Chunks relayed as they are."""

    def __init__(self, *, model: str = "", request: dict[str, Any] | None = None) -> None:
        pass

    def start(self) -> list[SseEvent]:
        return []

    def feed(self, chunk: dict[str, Any]) -> list[SseEvent]:
        return [(None, chunk)]

    def close(self, usage: dict[str, Any] | None = None) -> list[SseEvent]:
        return [(None, "[DONE]")]

    def fail(self, message: str) -> list[SseEvent]:
        return [(None, {"error": {"type": "stream_aborted", "code": "stream_aborted", "message": message}})]


DIALECT = Dialect(name="openai_chat", error_body=error_body, native_error=native_error,
                  stream=StreamTranslator)

"""Server-sent events, as OpenAI-compatible servers and Anthropic frame their streams."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx


class SseJson(dict[str, Any]):
    """A JSON object read from one event's data, with that data as it came (`text`), so that a
    chunk relayed unchanged can be written out as it was read instead of serialised again.
    Made with `as_read`.

    `text` holds only while the object is unchanged: whoever changes a chunk makes a plain
    dict of it (`dict(chunk)`, or a new one), never changes this in place.
    """

    __slots__ = ("text",)
    text: str


def as_read(data: dict[str, Any], text: str) -> dict[str, Any]:
    """`data`, read from `text`, as an `SseJson` that keeps `text`; `data` as it is when `text`
    spans lines (it would no longer fit one `data:` line)."""
    if "\n" in text or "\r" in text:
        return data
    kept = SseJson(data)
    kept.text = text
    return kept


async def read_sse(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """The server-sent events of a streamed response, as (event name, data) pairs.

    Follows the SSE rules that matter here: `data` lines of one event are joined with
    newlines, comment lines (`: keep-alive`, OpenRouter's `: OPENROUTER PROCESSING`) are
    skipped, and an event is dispatched at its blank line. The event name is "" when the
    server sent none.
    """
    event = ""
    data: list[str] = []
    async for line in response.aiter_lines():
        if line.startswith("data: "):  # the common line first
            data.append(line[6:])
            continue
        if not line:
            if data:
                yield event, data[0] if len(data) == 1 else "\n".join(data)
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
    if data:  # the last event lacked its blank line; let the caller judge its content
        yield event, "\n".join(data)

"""Server-sent events, as OpenAI-compatible servers and Anthropic frame their streams."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx


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
        if not line:
            if data:
                yield event, "\n".join(data)
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

"""Reading a server-sent event stream from the in-process ASGI application.

httpx's own ASGITransport hands a response over only once the application has finished it,
and an event stream never finishes. `StreamingASGITransport` hands the body over as the
application sends it, and closing the response is the client going away: the application
hears `http.disconnect`, and the close waits (a bounded time) for it to end.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

END = None


class _Body(httpx.AsyncByteStream):
    def __init__(self, chunks: asyncio.Queue[bytes | None], gone: asyncio.Event, app: asyncio.Task[None]) -> None:
        self.chunks = chunks
        self.gone = gone
        self.app = app

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (chunk := await self.chunks.get()) is not END:
            if chunk:
                yield chunk

    async def aclose(self) -> None:
        self.gone.set()
        await asyncio.wait_for(asyncio.shield(self.app), 10)  # the application ends when the client goes


class StreamingASGITransport(httpx.AsyncBaseTransport):
    def __init__(self, app: Any) -> None:
        self.app = app

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = b"".join([part async for part in request.stream])  # type: ignore[union-attr]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "scheme": request.url.scheme,
            "path": request.url.path,
            "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query,
            "server": (request.url.host, request.url.port),
            "client": ("127.0.0.1", 123),
            "root_path": "",
        }
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        started: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        gone = asyncio.Event()
        read = False

        async def receive() -> dict[str, Any]:
            nonlocal read
            if not read:
                read = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                started.set_result(message)
            elif message["type"] == "http.response.body":
                await chunks.put(message.get("body", b""))
                if not message.get("more_body", False):
                    await chunks.put(END)

        app = asyncio.get_running_loop().create_task(self.app(scope, receive, send))
        await asyncio.wait({started, app}, return_when=asyncio.FIRST_COMPLETED, timeout=30)
        if not started.done():
            app.result()  # the application's own error
            raise RuntimeError("the application sent no answer")
        start = started.result()
        return httpx.Response(
            start["status"], headers=start.get("headers", []), stream=_Body(chunks, gone, app), request=request
        )


@dataclass
class Event:
    id: int | None
    event: str
    data: dict[str, Any]


class EventReader:
    """The events of a streaming response, one at a time; comments are counted, not returned."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.aiter_lines()
        self.comments: list[str] = []

    async def next(self, limit_s: float = 10.0) -> Event:
        return await asyncio.wait_for(self._next(), limit_s)

    async def comment(self, limit_s: float = 10.0) -> str:
        """Read until the next comment line (events before it are returned by `next` no more)."""
        seen = len(self.comments)

        async def until_comment() -> str:
            while len(self.comments) == seen:
                await self._line()
            return self.comments[seen]

        return await asyncio.wait_for(until_comment(), limit_s)

    async def _line(self) -> str:
        line = await self.lines.__anext__()
        if line.startswith(":"):
            self.comments.append(line[1:].strip())
        return line

    async def _next(self) -> Event:
        fields: dict[str, str] = {}
        while True:
            line = await self._line()
            if line.startswith(":"):
                continue
            if not line:
                if "data" in fields:
                    return Event(
                        int(fields["id"]) if "id" in fields else None,
                        fields.get("event", "message"),
                        json.loads(fields["data"]),
                    )
                fields = {}
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")

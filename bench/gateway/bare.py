"""The bare pass-through: the floor of what any Python gateway costs on this machine.

A raw ASGI app, no framework: read the body, POST it to the upstream with one shared aiohttp
session, answer with what came back (a stream relayed chunk by chunk as it arrives). Run it
under the server to measure, with the upstream's base URL in BARE_UPSTREAM:

    BARE_UPSTREAM=http://127.0.0.1:9100 .venv/bin/python -m uvicorn bench.gateway.bare:app \
        --loop uvloop --http httptools --port 9200
    BARE_UPSTREAM=http://127.0.0.1:9100 .venv/bin/daphne -p 9200 bench.gateway.bare:app
"""

from __future__ import annotations

import os
from typing import Any

import aiohttp

UPSTREAM = os.environ.get("BARE_UPSTREAM", "http://127.0.0.1:9100")
_session: aiohttp.ClientSession | None = None


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _session
    if scope["type"] != "http":
        return
    if _session is None:  # made on the server's loop
        _session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30))
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    async with _session.post(
        UPSTREAM + scope["path"], data=body, headers={"Content-Type": "application/json"}
    ) as upstream:
        headers = [(b"content-type", upstream.headers.get("Content-Type", "application/json").encode())]
        if upstream.content_length is not None:  # a whole answer: one message, with its length
            data = await upstream.read()
            headers.append((b"content-length", str(len(data)).encode()))
            await send({"type": "http.response.start", "status": upstream.status, "headers": headers})
            await send({"type": "http.response.body", "body": data})
            return
        await send({"type": "http.response.start", "status": upstream.status, "headers": headers})
        async for chunk in upstream.content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})

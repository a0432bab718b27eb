"""A fast fake OpenAI upstream for benchmarks: answers a fixed chat completion at once.

`python -m bench.upstream --port 9100` (optionally `--delay-ms`, `--stream-chunks`).

A request whose body asks for `"stream": true` gets a server-sent event stream instead:
`--stream-chunks` (200) `chat.completion.chunk` events of one token each, written one by one
as fast as the socket takes them, then a last chunk with `finish_reason` and usage, then
`data: [DONE]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from aiohttp import web

COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "bench-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello from the benchmark upstream."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
    }
).encode()


def chunk(delta: dict[str, str], finish: str | None = None, usage: dict[str, int] | None = None) -> bytes:
    data: dict[str, object] = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "bench-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    if usage is not None:
        data["usage"] = usage
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


def stream_events(n: int) -> list[bytes]:
    """The stream's events, built once: a role chunk, n - 2 tokens, the finish chunk, [DONE]."""
    tokens = max(n - 2, 0)
    return (
        [chunk({"role": "assistant", "content": ""})]
        + [chunk({"content": f" tok{i}"}) for i in range(tokens)]
        + [chunk({}, "stop", {"prompt_tokens": 12, "completion_tokens": tokens, "total_tokens": 12 + tokens})]
        + [b"data: [DONE]\n\n"]
    )


def build_app(delay_ms: float = 0.0, stream_chunks: int = 200) -> web.Application:
    events = stream_events(stream_chunks)

    async def chat(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        # a cheap look before a parse: most requests are not streamed
        if b'"stream"' in raw and json.loads(raw).get("stream") is True:
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
            await response.prepare(request)
            for event in events:
                await response.write(event)
            await response.write_eof()
            return response
        return web.Response(body=COMPLETION, content_type="application/json")

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "bench-model", "object": "model"}]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument(
        "--stream-chunks", type=int, default=200, help="events of a streamed answer, [DONE] not counted (default 200)"
    )
    args = parser.parse_args()
    web.run_app(
        build_app(args.delay_ms, args.stream_chunks), host=args.host, port=args.port, access_log=None, print=None
    )


if __name__ == "__main__":
    main()

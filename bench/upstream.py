"""A fast fake OpenAI upstream for benchmarks: answers a fixed chat completion at once.

`python -m bench.upstream --port 9100` (optionally `--delay-ms`).
"""

from __future__ import annotations

import argparse
import asyncio
import json

from aiohttp import web

COMPLETION = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": "bench-model",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the benchmark upstream."},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
}).encode()


def build_app(delay_ms: float = 0.0) -> web.Application:
    async def chat(request: web.Request) -> web.Response:
        await request.read()
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
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
    args = parser.parse_args()
    web.run_app(build_app(args.delay_ms), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()

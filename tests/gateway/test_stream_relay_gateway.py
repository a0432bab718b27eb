"""The batched stream relay end to end, through the ASGI application against fake providers:
events written by the provider in pieces cut anywhere reach the caller whole and in order,
the stream's usage is recorded, a credential echoed in a chunk is scrubbed, and a provider that
stalls past the request's deadline ends the stream with the deadline's error in the caller's
own shape (OpenAI chat chunks, Anthropic Messages events, Responses events)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from asgiref.sync import sync_to_async

from providers.adapters.scrub import REDACTED
from tests.fakes.base import FakeServer

from .conftest import auth, provider

pytestmark = pytest.mark.django_db(transaction=True)

ECHOED = "sk-relay-echoed-0123456789abcdef"  # the provider's own key, echoed back in a chunk


def wire_events() -> list[dict[str, Any]]:
    base = {"id": "chatcmpl-r", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}
    words = ["Hello", " wörld", " ☃", f" {ECHOED}", " again"] + [f" w{i}" for i in range(40)]
    events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}]
    events += [{**base, "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]} for w in words]
    events.append(
        {
            **base,
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": len(words), "total_tokens": 11 + len(words)},
        }
    )
    return events


class PiecesUpstream(FakeServer):
    """An OpenAI-style upstream whose stream is one byte string written in pieces of `size`
    bytes, each its own write (so the gateway reads events cut anywhere)."""

    kind = "pieces"

    def __init__(self) -> None:
        super().__init__()
        self.size = 7

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self.chat)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = b"".join(b"data: " + json.dumps(e, ensure_ascii=False).encode() + b"\n\n" for e in wire_events())
        body += b"data: [DONE]\n\n"
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i in range(0, len(body), self.size):
            await response.write(body[i : i + self.size])
            await asyncio.sleep(0)
        await response.write_eof()
        return response


@pytest.fixture
def pieces() -> Iterator[PiecesUpstream]:
    server = PiecesUpstream()
    with server:
        yield server


def data_lines(text: str) -> list[str]:
    return [line[6:] for line in text.splitlines() if line.startswith("data: ")]


@pytest.mark.parametrize("size", [1, 5, 64, 100_000])
async def test_events_cut_anywhere_arrive_whole_in_order_counted_and_scrubbed(gateway, configure, key, pieces, size):
    from analytics.models import RequestLog
    from analytics.recorder import flush_all

    pieces.size = size
    await configure(
        {
            "providers": [provider("pieces", pieces.url + "/v1", key=ECHOED)],
            "routes": [{"name": "chain", "targets": [{"provider": "pieces", "model": "gpt-4o"}]}],
        }
    )
    response = await gateway.post(
        "/v1/chat/completions",
        json={"model": "chain", "messages": [{"role": "user", "content": "hi"}], "stream": True},
        headers=auth(key),
    )
    assert response.status_code == 200
    events = data_lines(response.text)
    assert events[-1] == "[DONE]"
    said = [json.loads(e) for e in events[:-1]]
    expected = json.loads(json.dumps(wire_events()).replace(ECHOED, REDACTED))
    del expected[-1]["usage"]  # the caller did not ask for usage: left out of what it hears
    assert said == expected
    assert ECHOED not in response.text
    await flush_all()
    row = await sync_to_async(RequestLog.objects.get)()
    assert (row.outcome, row.tokens_in, row.tokens_out) == ("success", 11, 45)


async def stalled_stream(gateway, configure, key, upstream_a, path: str, body: dict[str, Any]) -> str:  # type: ignore[no-untyped-def,unused-ignore]
    await configure(
        {
            "providers": [provider("up-a", upstream_a.url + "/v1")],
            "routes": [{"name": "chain", "targets": [{"provider": "up-a", "model": "gpt-4o"}]}],
        }
    )
    upstream_a.fault(trickle_s=0.8)  # the first frame after 0.8 s, the next at 1.6 s: past the deadline
    response = await gateway.post(
        path, json={**body, "stream": True}, headers={**auth(key), "x-api-key": key, "X-Gateway-Deadline": "1.5"}
    )
    assert response.status_code == 200, response.text
    return response.text


async def test_a_stall_past_the_deadline_ends_an_openai_stream_with_its_error(gateway, configure, key, upstream_a):
    text = await stalled_stream(
        gateway,
        configure,
        key,
        upstream_a,
        "/v1/chat/completions",
        {"model": "chain", "messages": [{"role": "user", "content": "hi"}]},
    )
    events = data_lines(text)
    assert events[-1] != "[DONE]" and json.loads(events[0])["object"] == "chat.completion.chunk"
    error = json.loads(events[-1])["error"]
    assert error["code"] == "stream_aborted" and "deadline" in error["message"]


async def test_a_stall_past_the_deadline_ends_a_messages_stream_with_its_error(gateway, configure, key, upstream_a):
    text = await stalled_stream(
        gateway,
        configure,
        key,
        upstream_a,
        "/v1/messages",
        {"model": "chain", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]},
    )
    events = [json.loads(e) for e in data_lines(text)]
    assert events[0]["type"] == "message_start"
    assert events[-1]["type"] == "error" and "deadline" in events[-1]["error"]["message"]
    assert "event: error" in text


async def test_a_stall_past_the_deadline_ends_a_responses_stream_with_its_error(gateway, configure, key, upstream_a):
    text = await stalled_stream(gateway, configure, key, upstream_a, "/v1/responses", {"model": "chain", "input": "hi"})
    events = [json.loads(e) for e in data_lines(text)]
    assert events[0]["type"] == "response.created"
    assert events[-1]["type"] == "response.failed"
    assert "deadline" in events[-1]["response"]["error"]["message"]

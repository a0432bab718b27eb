"""The relay of a stream's chunks in batches (providers/gateway/calls.py `ChunkBatches`): the
chunks that arrive together are handed out together, in order, none lost; a wait ends at the
request's deadline (one timer for the whole stream, on the engine's fake clock here); a held
read is cancelled when the relay is left. And the OpenAI adapter's chunks, read from bytes
split anywhere, come out as the provider wrote them (scrubbed at the transport first)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import httpx
import pytest

from providers.adapters import scrub
from providers.adapters.base import ProviderConfig
from providers.adapters.openai import OpenAIAdapter
from providers.adapters.scrub import REDACTED, ScrubbingTransport
from providers.adapters.sse import SseJson
from providers.engine import FakeClock, StreamDeadline
from providers.gateway.calls import ChunkBatches
from providers.gateway.dialects.openai_chat import StreamTranslator
from providers.gateway.serving import relay as serving_relay


class Gate:
    """An async chunk source: each group of chunks is ready at once; between groups it waits
    until `open()` (or forever)."""

    def __init__(self, groups: list[list[dict[str, Any]]], *, stall_after: int | None = None) -> None:
        self.groups = groups
        self.stall_after = stall_after
        self.opened = asyncio.Event()
        self.closed = False

    async def chunks(self) -> AsyncGenerator[dict[str, Any], None]:
        try:
            for n, group in enumerate(self.groups):
                if n:
                    if self.stall_after is not None and n >= self.stall_after:
                        await asyncio.Event().wait()  # never set: the provider stalls
                    await asyncio.sleep(0)
                    await asyncio.sleep(0)
                for chunk in group:
                    yield chunk
        finally:
            self.closed = True


def chunk(n: int) -> dict[str, Any]:
    return {"n": n}


async def test_chunks_ready_together_come_in_one_batch_in_order() -> None:
    gate = Gate([[chunk(1), chunk(2), chunk(3)], [chunk(4)], [chunk(5), chunk(6)]])
    batches = ChunkBatches(gate.chunks())
    got = [[c["n"] for c in batch] async for batch in batches]
    assert got == [[1, 2, 3], [4], [5, 6]]
    assert batches.ended and gate.closed


async def test_a_break_after_ready_chunks_relays_them_first_then_raises() -> None:
    async def broken() -> AsyncIterator[dict[str, Any]]:
        yield chunk(1)
        await asyncio.sleep(0)
        yield chunk(2)
        yield chunk(3)
        raise RuntimeError("stream broke")

    batches = ChunkBatches(broken())
    assert [c["n"] for c in await anext(batches)] == [1]
    assert [c["n"] for c in await anext(batches)] == [2, 3]
    with pytest.raises(RuntimeError, match="stream broke"):
        await anext(batches)
    assert not batches.ended


def test_a_stall_past_the_deadline_ends_in_stream_deadline_and_leaves_the_task_uncancelled() -> None:
    clock = FakeClock()

    async def run() -> tuple[list[list[int]], float, int]:
        gate = Gate([[chunk(1)], [chunk(2), chunk(3)], [chunk(4)]], stall_after=2)
        loop = asyncio.get_running_loop()
        batches = ChunkBatches(gate.chunks(), loop.time() + 5.0)
        got: list[list[int]] = []
        with pytest.raises(StreamDeadline, match="deadline"):
            async for batch in batches:
                got.append([c["n"] for c in batch])
        await batches.aclose()
        task = asyncio.current_task()
        assert task is not None and gate.closed
        return got, clock.monotonic(), task.cancelling()

    got, now, cancelling = clock.run(run())
    assert got == [[1], [2, 3]]
    assert now == pytest.approx(1005.0)  # the wait ended at the deadline, on the fake clock
    assert cancelling == 0  # the deadline's cancellation was taken back, none other left


def test_a_deadline_passed_before_the_next_batch_ends_the_stream() -> None:
    clock = FakeClock()

    async def run() -> None:
        gate = Gate([[chunk(1)], [chunk(2)]])
        loop = asyncio.get_running_loop()
        batches = ChunkBatches(gate.chunks(), loop.time() - 1.0)
        with pytest.raises(StreamDeadline):
            async for _batch in batches:
                pass
        await batches.aclose()

    clock.run(run())


async def test_the_callers_cancellation_during_a_wait_stays_a_cancellation() -> None:
    gate = Gate([[chunk(1)], [chunk(2)]], stall_after=1)
    loop = asyncio.get_running_loop()
    batches = ChunkBatches(gate.chunks(), loop.time() + 3600)

    async def consume() -> None:
        async for _batch in batches:
            pass

    task = asyncio.ensure_future(consume())
    for _ in range(5):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await batches.aclose()
    assert gate.closed


async def test_leaving_with_a_read_held_cancels_it_so_the_source_can_be_closed() -> None:
    gate = Gate([[chunk(1)], [chunk(2)]], stall_after=1)
    source = gate.chunks()
    batches = ChunkBatches(source)
    assert [c["n"] for c in await anext(batches)] == [1]  # the next read is now held
    await batches.aclose()
    await source.aclose()  # would raise "already running" had the held read been left as it was
    assert gate.closed


# -- the OpenAI adapter's chunks, from bytes split anywhere -------------------------------------

KEY = "sk-relay-test-0123456789abcdef"
EVENTS = [
    {"id": "c1", "object": "chat.completion.chunk", "model": "m", "choices": [{"index": 0, "delta": {"role": "x"}}]},
    {
        "id": "c1",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": "é ☃"}}],
    },
    {"id": "c1", "object": "chat.completion.chunk", "model": "m", "choices": [{"index": 0, "delta": {"content": KEY}}]},
    {
        "id": "c1",
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    },
]


def upstream_body() -> bytes:
    parts = [b"data: " + json.dumps(e, ensure_ascii=False).encode() + b"\n\n" for e in EVENTS]
    parts.insert(2, b": keep-alive\n\n")
    return b"".join(parts) + b"data: [DONE]\n\n"


class Pieces(httpx.AsyncByteStream):
    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            await asyncio.sleep(0)  # each piece is one read: the relay waits for it
            yield piece


async def relay(pieces: list[bytes], request: dict[str, Any]) -> tuple[bytes, OpenAIAdapter, Any]:
    """The gateway's relay (serving.relay) of one OpenAI stream to an OpenAI caller."""

    def handler(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Pieces(pieces))

    client = httpx.AsyncClient(transport=ScrubbingTransport(httpx.MockTransport(handler)))
    adapter = OpenAIAdapter(ProviderConfig(name="up", kind="openai", base_url="http://up.test/v1", api_key=KEY), client)
    translator = StreamTranslator(request=request)
    stream = await adapter.chat_stream(request, model="m", timeout=5)
    chunks = aiter(stream)
    first = await anext(chunks)
    batches = ChunkBatches(chunks)
    try:
        writes = [data async for data in serving_relay(translator, first, batches, stream)]
    finally:
        await batches.aclose()
        await stream.aclose()
        await client.aclose()
    return b"".join(writes), adapter, stream


def events_of(body: bytes) -> list[Any]:
    text = body.decode()
    assert text.endswith("\n\n")
    return [block.removeprefix("data: ") for block in text[:-2].split("\n\n")]


@pytest.fixture
def held_key() -> Any:
    scrub.use_secrets("stream-relay-test", [KEY])
    yield
    scrub.forget_secrets("stream-relay-test")


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 13, 64, 10_000])
async def test_events_split_anywhere_arrive_whole_in_order_scrubbed_and_counted(held_key, size):
    body = upstream_body()
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    asked = {"messages": [], "stream": True, "stream_options": {"include_usage": True}}
    relayed, _adapter, stream = await relay(pieces, asked)
    events = events_of(relayed)
    assert events[-1] == "[DONE]"
    said = [json.loads(e) for e in events[:-1]]
    expected = json.loads(json.dumps(EVENTS).replace(KEY, REDACTED))
    assert said == expected
    assert KEY not in relayed.decode() and REDACTED in relayed.decode()
    assert (stream.usage.tokens_in, stream.usage.tokens_out) == (3, 4)


async def test_an_unchanged_chunk_is_relayed_as_the_provider_wrote_it():
    wire = '{"id":"c1", "object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"\\u00e9"}}]}'
    body = f"data: {wire}\n\ndata: {wire}\n\ndata: [DONE]\n\n".encode()
    relayed, _, _ = await relay([body], {"messages": [], "stream": True})
    assert events_of(relayed) == [wire, wire, "[DONE]"]


async def test_a_chunk_whose_usage_the_caller_did_not_ask_for_is_written_anew():
    body = upstream_body()
    relayed, _, stream = await relay([body], {"messages": [], "stream": True})
    said = [json.loads(e) for e in events_of(relayed)[:-1]]
    assert said[-1]["choices"][0]["finish_reason"] == "stop" and "usage" not in said[-1]
    assert (stream.usage.tokens_in, stream.usage.tokens_out) == (3, 4)  # still counted


def test_a_chunk_read_from_data_of_several_lines_keeps_no_text():
    from providers.adapters.sse import as_read

    assert type(as_read({"a": 1}, '{"a":\n1}')) is dict
    kept = as_read({"a": 1}, '{"a": 1}')
    assert isinstance(kept, SseJson) and kept.text == '{"a": 1}' and kept == {"a": 1}

"""Exact accounting under concurrency: a burst of requests with faults mixed in, nothing
written until SIGTERM (the flush interval is an hour), then every request in the log exactly
once, and /api/analytics of the restarted server counting the same."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from tests.fakes.openai import FakeOpenAI

from .live import LiveGateway, chain, openai_provider

pytestmark = pytest.mark.e2e

QUIET_BREAKER = {"consecutive_failures": 10_000, "min_calls": 10_000}
REQUESTS = 240
CONCURRENCY = 16


@pytest.fixture
def quiet_live(tmp_path) -> Iterator[LiveGateway]:
    gateway = LiveGateway.start(tmp_path / "live", {"ANALYTICS_FLUSH_INTERVAL_S": "3600"})
    yield gateway
    gateway.stop()


async def burst(live: LiveGateway, fake: FakeOpenAI) -> Counter[str]:
    """REQUESTS chats (every third streamed) at CONCURRENCY; faults injected as they run."""
    seen: Counter[str] = Counter()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(REQUESTS):
        queue.put_nowait(i)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            if i % 40 == 0:  # a fresh dose of faults for whoever comes next
                fake.fault(status=500, times=3)
                fake.fault(status=429, retry_after="30", times=1)
                fake.fault(status=200, body="{broken", times=2)
                fake.fault(cut_stream_after=1, times=4)  # only a stream feels it: one in three
            body = {"model": "burst", "messages": [{"role": "user", "content": f"request {i}"}]}
            if i % 3 == 0:
                async with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as response:
                    text = "".join([line async for line in response.aiter_lines()])
                    aborted = '"stream_aborted"' in text
            else:
                response = await client.post("/v1/chat/completions", json=body)
                aborted = False
            live.sent.append(response.headers["x-request-id"])
            seen["aborted" if aborted else str(response.status_code)] += 1

    async with httpx.AsyncClient(base_url=live.url, headers=live.headers(), timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
    return seen


async def test_a_concurrent_burst_with_faults_is_counted_exactly_once_after_sigterm(quiet_live):
    live = quiet_live
    with FakeOpenAI() as a, FakeOpenAI() as b:
        live.configure(
            {
                "providers": [
                    openai_provider("burst-a", a.url, breaker=QUIET_BREAKER),
                    openai_provider("burst-b", b.url, breaker=QUIET_BREAKER),
                ],
                "routes": [chain("burst", "burst-a", "burst-b")],
            }
        )
        seen = await burst(live, a)
        assert sum(seen.values()) == REQUESTS == len(live.sent) == len(set(live.sent))
        assert live.rows() == []  # still queued: the writer flushes at shutdown
        assert live.terminate() == 0
    rows = live.rows()
    assert sorted(r["request_id"] for r in rows) == sorted(live.sent)
    outcomes = Counter(r["outcome"] for r in rows)
    # what the log says happened is what the client saw
    assert outcomes["success"] == seen["200"]
    assert outcomes["stream_aborted"] == seen["aborted"] > 0
    assert (
        sum(
            1
            for r in rows
            if any(a["provider"] == "burst-a" and a["outcome"] != "success" for a in json.loads(r["attempts"]))
        )
        > 0
    )
    live.restart()
    try:
        total = live.api("GET", "/api/analytics?window=1h").json()["total"]
    finally:
        live.stop()
    assert total["requests"] == REQUESTS
    assert total["successes"] == outcomes["success"]

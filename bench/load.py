"""A closed-loop load generator: C concurrent clients, warm-up, then N measured requests.

Used by every benchmark here; prints nothing itself. Latencies are per request, in ms. With
`max_seconds`, no request starts after that long: a slow subject is measured on fewer.
`run_load` reads whole answers; `run_stream_load` reads server-sent event streams and also
records each stream's time to its first event and the events it carried.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp


def percentile(data: list[float], p: float) -> float:
    if not data:
        return float("nan")
    ordered = sorted(data)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


@dataclass
class LoadResult:
    concurrency: int
    requests: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    # streams only: ms to the first event; events (`data:` lines other than [DONE]) received
    ttfb_ms: list[float] = field(default_factory=list)
    events: int = 0
    cpu_ms: float | None = None  # CPU of the measured server per request, when known

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        return percentile(self.latencies_ms, p)

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")

    @property
    def ttfb_p50(self) -> float:
        return statistics.median(self.ttfb_ms) if self.ttfb_ms else float("nan")

    @property
    def failures(self) -> int:
        return sum(v for k, v in self.statuses.items() if k != 200) + self.errors

    def row(self) -> dict[str, Any]:
        out = {
            "c": self.concurrency,
            "rps": round(self.rps),
            "p50": round(self.p50, 3),
            "p95": round(self.pct(95), 3),
            "p99": round(self.pct(99), 3),
            "statuses": dict(sorted(self.statuses.items())),
            "errors": self.errors,
        }
        if self.ttfb_ms:
            out.update(ttfb_p50=round(self.ttfb_p50, 3), events=self.events, events_per_s=round(self.events_per_s))
        if self.cpu_ms is not None:
            out["cpu_ms"] = round(self.cpu_ms, 3)
        return out


One = Callable[[aiohttp.ClientSession, "LoadResult | None"], Awaitable[None]]


async def _closed_loop(
    one: One, *, concurrency: int, requests: int, warmup: int, max_seconds: float | None = None
) -> LoadResult:
    connector = aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=30)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        deadline = float("inf")
        taken = 0

        async def worker(queue: asyncio.Queue[int], result: LoadResult | None) -> None:
            nonlocal taken
            while result is None or time.perf_counter() < deadline:
                try:
                    queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                if result is not None:
                    taken += 1
                await one(session, result)

        async def phase(n: int, result: LoadResult | None) -> None:
            queue: asyncio.Queue[int] = asyncio.Queue()
            for i in range(n):
                queue.put_nowait(i)
            await asyncio.gather(*(worker(queue, result) for _ in range(concurrency)))

        await phase(warmup, None)
        result = LoadResult(concurrency, requests, 0.0)
        start = time.perf_counter()
        if max_seconds is not None:
            deadline = start + max_seconds
        await phase(requests, result)
        result.seconds = time.perf_counter() - start
        result.requests = taken  # fewer than asked when the time ran out
        return result


async def run_load(
    url: str,
    body: bytes,
    *,
    concurrency: int,
    requests: int,
    warmup: int = 100,
    headers: dict[str, str] | None = None,
    max_seconds: float | None = None,
) -> LoadResult:
    hdrs = {"Content-Type": "application/json", **(headers or {})}

    async def one(session: aiohttp.ClientSession, result: LoadResult | None) -> None:
        start = time.perf_counter()
        try:
            async with session.post(url, data=body, headers=hdrs) as response:
                await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError):
            if result is not None:
                result.errors += 1
            return
        if result is not None:
            result.latencies_ms.append((time.perf_counter() - start) * 1000)
            result.statuses[status] = result.statuses.get(status, 0) + 1

    return await _closed_loop(one, concurrency=concurrency, requests=requests, warmup=warmup, max_seconds=max_seconds)


async def run_stream_load(
    url: str,
    body: bytes,
    *,
    concurrency: int,
    requests: int,
    warmup: int = 20,
    headers: dict[str, str] | None = None,
    max_seconds: float | None = None,
) -> LoadResult:
    """Streamed requests: latency is the whole stream's; `ttfb_ms` the time to its first
    event (not to the headers: a gateway may answer them before the upstream has said a word)."""
    hdrs = {"Content-Type": "application/json", "Accept": "text/event-stream", **(headers or {})}

    async def one(session: aiohttp.ClientSession, result: LoadResult | None) -> None:
        start = time.perf_counter()
        first = 0.0
        events = 0
        try:
            async with session.post(url, data=body, headers=hdrs) as response:
                status = response.status
                async for line in response.content:
                    if line.startswith(b"data:"):
                        if not first:
                            first = time.perf_counter()
                        if line.strip() != b"data: [DONE]":
                            events += 1
        except (TimeoutError, aiohttp.ClientError):
            if result is not None:
                result.errors += 1
            return
        if result is not None:
            end = time.perf_counter()
            result.latencies_ms.append((end - start) * 1000)
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if first:
                result.ttfb_ms.append((first - start) * 1000)
            result.events += events

    return await _closed_loop(one, concurrency=concurrency, requests=requests, warmup=warmup, max_seconds=max_seconds)

"""A closed-loop load generator: C concurrent clients, warm-up, then N measured requests.

Used by every benchmark here; prints nothing itself. Latencies are per request, in ms.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp


@dataclass
class LoadResult:
    concurrency: int
    requests: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, max(0, round(p / 100 * len(data)) - 1))]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")

    def row(self) -> dict[str, Any]:
        return {"c": self.concurrency, "rps": round(self.rps), "p50": round(self.p50, 3),
                "p95": round(self.pct(95), 3), "p99": round(self.pct(99), 3),
                "statuses": dict(sorted(self.statuses.items())), "errors": self.errors}


async def run_load(url: str, body: bytes, *, concurrency: int, requests: int, warmup: int = 100,
                   headers: dict[str, str] | None = None) -> LoadResult:
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    connector = aiohttp.TCPConnector(limit=concurrency, keepalive_timeout=30)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(result: LoadResult | None) -> None:
            start = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=hdrs) as response:
                    await response.read()
                    status = response.status
            except aiohttp.ClientError:
                if result is not None:
                    result.errors += 1
                return
            if result is not None:
                result.latencies_ms.append((time.perf_counter() - start) * 1000)
                result.statuses[status] = result.statuses.get(status, 0) + 1

        async def worker(queue: asyncio.Queue[int], result: LoadResult | None) -> None:
            while True:
                try:
                    queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await one(result)

        async def phase(n: int, result: LoadResult | None) -> None:
            queue: asyncio.Queue[int] = asyncio.Queue()
            for i in range(n):
                queue.put_nowait(i)
            await asyncio.gather(*(worker(queue, result) for _ in range(concurrency)))

        await phase(warmup, None)
        result = LoadResult(concurrency, requests, 0.0)
        start = time.perf_counter()
        await phase(requests, result)
        result.seconds = time.perf_counter() - start
        return result

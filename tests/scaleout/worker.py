"""One gateway worker of the scale-out tests: its own process, event loop, `Engine` and
`RedisStateStore`, driven by JSON commands on stdin (one per line, one JSON reply each).

Run: python -m tests.scaleout.worker <name>   (the name is also the store's reporter id)

Every call goes to one target "p" through a one-attempt route, to a fake transport that
counts what reaches it, so "calls that reached the provider" is exact.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import traceback
from collections import Counter
from typing import Any

import httpx

from providers.engine import (
    AllTargetsFailed,
    BreakerPolicy,
    BreakerStateChanged,
    Engine,
    Outcome,
    RetryPolicy,
    RoutePolicy,
    TargetSpec,
    UpstreamError,
)
from providers.engine.redis_store import RedisStateStore

KEY = "p"
ROUTE = RoutePolicy("r", max_attempts=1)


class Worker:
    def __init__(self, name: str) -> None:
        self.name = name
        self.store: RedisStateStore | None = None
        self.engine = Engine()
        self.target = TargetSpec(KEY, "m")
        self.events: list[BreakerStateChanged] = []
        self.sent = 0

    # commands ------------------------------------------------------------------------------
    async def configure(
        self, url: str, prefix: str, policy: dict[str, Any], store: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        if self.store is not None:
            await self.store.aclose()
        self.store = RedisStateStore.from_url(url, prefix=prefix, reporter_id=self.name, **(store or {}))
        self.engine = Engine(store=self.store)
        self.events = []
        self.engine.subscribe(self._event)
        breaker = BreakerPolicy(**policy)
        self.target = TargetSpec(KEY, "m", breaker=breaker, retry=RetryPolicy(max_attempts=1, throttle=False))
        self.engine.breaker(KEY, self.target.breaker)
        return {"connected": await self.store.connect()}

    def _event(self, event: object) -> None:
        if isinstance(event, BreakerStateChanged):
            self.events.append(event)

    async def record(self, outcome: str, n: int = 1) -> dict[str, Any]:
        """Count outcomes as the monitor does, concurrently; the wall time when all are in."""
        await asyncio.gather(*(self.engine.record(KEY, Outcome(outcome), 0.1, self.target.breaker) for _ in range(n)))
        return {"done_at": time.time()}

    async def execute(
        self,
        n: int = 1,
        status: int | None = None,
        delay: float = 0.0,
        headers: dict[str, str] | None = None,
        at: float | None = None,
    ) -> dict[str, Any]:
        """`n` concurrent requests (from wall time `at`); what reached the transport, how each
        ended, and each one's latency."""
        if at is not None:
            await asyncio.sleep(max(0.0, at - time.time()))
        before = self.sent

        async def call(target: TargetSpec, ctx: object) -> str:
            self.sent += 1
            if delay:
                await asyncio.sleep(delay)
            if status is not None:
                raise UpstreamError.from_response(status, httpx.Headers(headers or {}), b"")
            return "ok"

        async def one() -> tuple[str, float]:
            start = time.perf_counter()
            try:
                await self.engine.execute(ROUTE, [self.target], call)
                ending = "ok"
            except AllTargetsFailed as exc:
                ending = f"skipped:{exc.attempts[0].skipped}" if exc.all_skipped else f"failed:{exc.attempts[0].reason}"
            except Exception as exc:  # anything else reaching the caller is what tests look for
                ending = f"raised:{type(exc).__module__}.{type(exc).__name__}"
            return ending, time.perf_counter() - start

        results = await asyncio.gather(*(one() for _ in range(n)))
        return {
            "sent": self.sent - before,
            "endings": dict(Counter(e for e, _ in results)),
            "latencies": [lat for _, lat in results],
        }

    async def run(self, seconds: float, concurrency: int = 1, status: int | None = None) -> dict[str, Any]:
        """Back-to-back requests for `seconds` from `concurrency` tasks: each one's start
        (wall time), latency, ending, and whether the store used Redis's shared state once it
        ended (False: the store's own breaker is open and local state decides)."""
        samples: list[tuple[float, float, str]] = []
        stop = time.perf_counter() + seconds

        async def call(target: TargetSpec, ctx: object) -> str:
            self.sent += 1
            if status is not None:
                raise UpstreamError.from_response(status, httpx.Headers({}), b"")
            return "ok"

        async def one() -> None:
            wall, start = time.time(), time.perf_counter()
            try:
                await self.engine.execute(ROUTE, [self.target], call)
                ending = "ok"
            except AllTargetsFailed as exc:
                ending = "skipped" if exc.all_skipped else "failed"
            except Exception as exc:
                ending = f"raised:{type(exc).__module__}.{type(exc).__name__}"
            available = self.store is not None and self.store.shared_available
            samples.append((wall, time.perf_counter() - start, ending, available))

        async def loop() -> None:
            while time.perf_counter() < stop:
                await asyncio.create_task(one())  # a task per request, as in the gateway
                await asyncio.sleep(0.001)

        await asyncio.gather(*(loop() for _ in range(concurrency)))
        return {"samples": samples}

    async def state(self) -> dict[str, Any]:
        assert self.store is not None
        shared, local = self.store.layers(KEY)
        cooldowns = self.store.cooldowns(KEY)
        now = self.engine.clock.monotonic()
        return {
            "view": self.engine.breaker(KEY).state(),
            "shared": shared.state if shared is not None else None,
            "local": local.state,
            "available": self.store.shared_available,
            "cooldown": [cd.kind for cd in cooldowns.values() if cd.active(now)],
            "check": self.engine.breaker(KEY).check(),
        }

    async def wait(self, field: str, value: Any, timeout: float = 30.0) -> dict[str, Any]:
        """Poll state() every millisecond until `field` equals `value`; the wall time then.
        `timeout` only stops a hang: how soon is a benchmark's question, not a test's."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if (await self.state())[field] == value:
                return {"at": time.time()}
            await asyncio.sleep(0.001)
        return {"at": None, "state": await self.state()}

    async def wait_rejected(self, timeout: float = 30.0) -> dict[str, Any]:
        """Send a request every 2 ms until one is refused without reaching the transport.
        `timeout` only stops a hang."""
        deadline = time.perf_counter() + timeout
        sent = 0
        while time.perf_counter() < deadline:
            result = await self.execute(1)
            sent += result["sent"]
            if result["sent"] == 0:
                return {"at": time.time(), "sent": sent, "endings": result["endings"]}
            await asyncio.sleep(0.002)
        return {"at": None, "sent": sent}

    async def generation(self) -> int:
        return self.engine.store.state(KEY).generation

    async def transitions(self) -> list[list[Any]]:
        return [[e.old, e.new, e.reason] for e in self.events]

    async def close(self) -> dict[str, Any]:
        if self.store is not None:
            await self.store.aclose()
        return {}


async def serve(name: str) -> None:
    worker = Worker(name)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps({"ready": name}), flush=True)
    while line := await reader.readline():
        command = json.loads(line)
        op = command.pop("op")
        try:
            reply: Any = {"ok": await getattr(worker, op)(**command)}
        except Exception:
            reply = {"error": traceback.format_exc()}
        print(json.dumps(reply), flush=True)
        if op == "close":
            break


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1]))

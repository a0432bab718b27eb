"""Outcome counts pooled in Redis, and the quorum rule that decides which layer a trip opens.

Every outcome goes to both layers; the Redis side is one script that returns the pooled window
(5 s buckets) and who reported its failures (or slow calls). Outcomes of one key that arrive
while its script is in flight ride together in the next call, each applied in order, so a
burst of calls is a few round trips rather than a queue. The pooled counts decide, and a trip
writes the shared state, only if failures came from >= 2 reporters or one reporter alone has
more than 10 x min_calls, and they trip the breaker's policy; otherwise the local counts
decide and a trip opens only the local breaker. `add_outcome` tells the `compare_and_set` that
follows it which layer a trip belongs to through `trip_layer` (both run in the caller's task).
"""

from __future__ import annotations

import asyncio
import contextvars
from contextvars import ContextVar
from typing import Any

from .breaker import trip_reason
from .policy import BreakerPolicy
from .redis_cache import LOCAL, SHARED, SharedCache
from .redis_link import RedisLink, skip_until
from .window import WindowCounts

Outcome3 = tuple[int, int, int]  # (failure, slow, consecutive) as 0 or 1

# Which layer the last add_outcome of this task chose for `key`: (key, SHARED | LOCAL).
trip_layer: ContextVar[tuple[str, str] | None] = ContextVar("redis_store_trip_layer", default=None)


class SharedCounts:
    """This process's outcomes, counted in Redis together with every other process's."""

    def __init__(self, link: RedisLink, cache: SharedCache, reporter_id: str) -> None:
        self.link = link
        self.cache = cache
        self.reporter_id = reporter_id
        self.queues: dict[str, list[tuple[Outcome3, asyncio.Future[list[Any] | None]]]] = {}
        self.flushers: set[asyncio.Task[None]] = set()

    def forget(self) -> None:
        """A new event loop: the queues of the old one will never be flushed."""
        self.queues.clear()

    async def add_outcome(
        self,
        key: str,
        now: float,
        *,
        failure: bool,
        slow: bool,
        window_s: float,
        buckets: int,
        consecutive: bool,
        policy: BreakerPolicy | None,
    ) -> WindowCounts:
        """The counts the breaker judges: pooled where the quorum rule allows, else local."""
        local = await self.cache.local.add_outcome(
            key, now, failure=failure, slow=slow, window_s=window_s, buckets=buckets, consecutive=consecutive
        )
        self.cache.windows[key] = (window_s, buckets)
        reply = await self._count(key, (int(failure), int(slow), int(consecutive)))
        if reply is None:
            trip_layer.set((key, LOCAL))
            return local
        calls, fails, slows, run, reporters, most = (int(x) for x in reply)
        pooled = WindowCounts(calls, fails, slows, run)
        entry = self.cache.entry(key)
        entry.counts, entry.counts_at = pooled, self.link.clock.monotonic()
        min_calls = policy.min_calls if policy is not None else 10
        quorum = reporters >= 2 or most > 10 * min_calls
        if quorum and (policy is None or trip_reason(policy, pooled) is not None):
            trip_layer.set((key, SHARED))
            return pooled
        trip_layer.set((key, LOCAL))
        if policy is not None and trip_reason(policy, local) is not None:
            return local
        return pooled if quorum else local

    def counts(self, key: str, now: float) -> WindowCounts:
        entry = self.cache.entries.get(key)
        link = self.link
        if (
            entry is not None
            and entry.counts is not None
            and not link.gate.open
            and link.clock.monotonic() - entry.counts_at <= 2 * link.cache_ttl_s
        ):
            return entry.counts
        return self.cache.local.counts(key, now)

    async def clear(self, key: str, *, shared: bool) -> None:
        """Forget `key`'s counts here and, if `shared`, in Redis too."""
        await self.cache.local.clear_counts(key)
        if shared:
            entry = self.cache.entry(key)
            entry.counts = None
            await self.link.run("clear", [self.cache.base_name(key) + ":s"], [], at=1)

    async def _count(self, key: str, outcome: Outcome3) -> list[Any] | None:
        """The pooled window just after `outcome`, or None when Redis did not answer within
        the op timeout. Outcomes of one key that arrive while its script is in flight go
        together in the next one, so a burst of calls costs a few round trips, not a queue."""
        link = self.link
        if not link.bind() or link.gate.open:
            return None
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[Any] | None] = loop.create_future()
        queue = self.queues.get(key)
        if queue is None:
            queue = self.queues[key] = []
            task = loop.create_task(self._flush(key, queue), context=contextvars.Context())
            self.flushers.add(task)
            task.add_done_callback(self.flushers.discard)
        queue.append((outcome, done))
        if skip_until.get() > link.clock.monotonic():
            return None  # this call has waited out one timeout already: local counts only
        try:
            async with asyncio.timeout(link.op_timeout_s):
                return await asyncio.shield(done)
        except TimeoutError:
            skip_until.set(link.clock.monotonic() + link.cache_ttl_s)
            return None  # decide on local counts; the outcome still reaches Redis with its batch

    async def _flush(self, key: str, queue: list[tuple[Outcome3, asyncio.Future[list[Any] | None]]]) -> None:
        try:
            while queue:
                batch = queue[:]
                del queue[:]
                window_s, buckets = self.cache.windows[key]
                bucket_ms = window_s / buckets * 1000.0
                base = self.cache.base_name(key)
                args: list[Any] = [
                    base,
                    f"{bucket_ms:.3f}",
                    buckets,
                    self.reporter_id,
                    int(window_s * 1000 + bucket_ms),
                ]
                for outcome, _ in batch:
                    args += outcome
                reply = await self.link.run("count", [base + ":s"], args, at=0, caller=False)
                for i, (_, done) in enumerate(batch):
                    if not done.done():
                        done.set_result(None if reply is None else reply[1 + 6 * i : 7 + 6 * i])
        finally:
            if self.queues.get(key) is queue:
                del self.queues[key]
            for _, done in queue:
                if not done.done():
                    done.set_result(None)

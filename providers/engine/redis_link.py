"""The Redis state store's connection: clients, scripts, its own breaker, and the clock offset.

Failures: each Redis operation runs under `op_timeout_s` (50 ms) and behind a small breaker of
its own (the gate). A refused or broken connection, or an error, opens it at once; a timeout is
checked first by a patient ping in the background (a busy process can read a prompt answer
late), and the ping's failure opens it. A call that waited out one timeout does not wait for
Redis again (for `cache_ttl_s`), so no call pays more than one timeout. While the gate is open
no caller touches Redis. The cache's refresher reopens the connection (once per `cache_ttl_s`)
through `open`; errors are logged once per outage, never raised.

Clocks: every shared deadline is set and judged on Redis TIME inside the scripts, never on a
host's wall clock. At the edge it is converted to the engine's monotonic clock with an offset
sampled on every reply (midpoint of the round trip, tightest round trip preferred):
`local = shared - offset`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import math
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from .clock import Clock

log = logging.getLogger(__name__)

_LUA = Path(__file__).with_name("lua")
_SCRIPTS = ("count", "cas", "clear", "reserve", "release", "probe_result", "cooldown", "uncool", "drop", "snapshot")

# Until when this task leaves Redis alone, having waited out one timeout (local clock).
skip_until: ContextVar[float] = ContextVar("redis_store_skip_until", default=0.0)

Worker = tuple[str, Callable[[], Coroutine[Any, Any, None]]]  # (task name, coroutine function)


def _load_scripts() -> dict[str, str]:
    common = (_LUA / "common.lua").read_text()
    return {name: common + "\n" + (_LUA / f"{name}.lua").read_text() for name in _SCRIPTS}


class ClockLink:
    """Redis TIME against this process's monotonic clock: shared = local + offset."""

    __slots__ = ("at", "offset", "rtt")

    def __init__(self) -> None:
        self.offset: float | None = None
        self.rtt = math.inf
        self.at = -math.inf

    def sample(self, shared_ms: Any, t0: float, t1: float) -> None:
        # The reply was made somewhere inside the round trip, so a tight one pins the offset
        # best; an old estimate is trusted a little less every second (clocks drift apart).
        rtt = t1 - t0
        if rtt <= self.rtt + (t1 - self.at) * 1e-3:
            self.offset = float(shared_ms) / 1000.0 - (t0 + t1) / 2
            self.rtt = rtt
            self.at = t1

    def local(self, shared_ms: Any) -> float:
        return float(shared_ms) / 1000.0 - (self.offset or 0.0)


class Gate:
    """The store's own breaker around Redis (§8 "behind its own local breaker")."""

    __slots__ = ("epoch", "open", "retry_at")

    def __init__(self) -> None:
        self.open = True  # until the first connection is made (at once, in the background)
        self.retry_at = 0.0
        self.epoch = 0  # bumped on every change, so cached views know to recompute


class RedisLink:
    """One store's way to Redis, in the running event loop.

    `bind` builds the clients on first use in a loop and keeps the `workers` (the cache's
    refresher and listener) running; `on_new_loop` lets the owner drop what belonged to the
    previous loop. Both are set by the owner right after construction.
    """

    def __init__(
        self, url: str, *, op_timeout_s: float, cache_ttl_s: float, clock: Clock, max_connections: int
    ) -> None:
        self.url = url
        self.op_timeout_s = op_timeout_s
        self.cache_ttl_s = cache_ttl_s
        self.clock = clock
        self.max_connections = max_connections
        self.texts = _load_scripts()
        self.gate = Gate()
        self.time = ClockLink()
        self.warned = False  # an outage is logged once
        self.verifying: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.client: Any = None  # callers' operations: op_timeout_s on every read
        self.patient: Any = None  # the store's own checks and reconnections: `patience`
        self.patience = max(0.25, 5 * op_timeout_s)
        self.scripts: dict[str, Any] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.wake: asyncio.Event | None = None  # the refresher's: there is work now
        self.up: asyncio.Event | None = None  # connected, every key read
        self.subscribed: asyncio.Event | None = None
        self.workers: tuple[Worker, ...] = ()
        self.on_new_loop: Callable[[], None] = lambda: None

    def bind(self) -> bool:
        """Use this loop's client, building it (and starting the workers) on first use in a
        loop. False outside a running loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        if loop is not self.loop:
            self._start_loop(loop)
        if self.client is not None and (not self.tasks or any(t.done() for t in self.tasks)):
            for task in self.tasks:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    log.error("Redis state store task failed", exc_info=task.exception())
            # a fresh context each: the tasks must not inherit a caller's skip_until
            self.tasks = [
                loop.create_task(work(), name=name, context=contextvars.Context()) for name, work in self.workers
            ]
        return True

    def _start_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.tasks = []
        self.wake, self.up, self.subscribed = asyncio.Event(), asyncio.Event(), asyncio.Event()
        self.verifying = None
        self.on_new_loop()
        gate = self.gate
        gate.open, gate.retry_at = True, 0.0
        gate.epoch += 1
        try:
            self.client = self.new_client(self.op_timeout_s, self.op_timeout_s)
            self.patient = self.new_client(None, self.patience, max_connections=2)
        except Exception as exc:  # a malformed URL: say so, and stay local
            log.error("REDIS_URL %r is unusable (%s); breakers use local state", self.url, exc)
            self.client = None
            gate.open, gate.retry_at = True, math.inf
            return
        self.scripts = {name: self.client.register_script(text) for name, text in self.texts.items()}

    def new_client(
        self, socket_timeout: float | None, connect_timeout: float, max_connections: int | None = None
    ) -> Any:
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url,
            max_connections=max_connections or self.max_connections,
            timeout=None,
            socket_timeout=socket_timeout,
            socket_connect_timeout=connect_timeout,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
            health_check_interval=0,
        )
        return aioredis.Redis(connection_pool=pool)

    async def run(self, name: str, keys: list[str], args: list[Any], at: int | None = None, caller: bool = True) -> Any:
        """Run one script under the op timeout; None (use local state) if Redis failed.

        A caller (a request's task, as opposed to this store's own tasks) that has waited out
        one timeout does not wait for Redis again for `cache_ttl_s`: one call pays at most
        one timeout, however many operations it makes. `at`: the reply's index of a Redis
        TIME, to sample the clock offset with.
        """
        if not self.bind() or self.gate.open:
            return None
        clock = self.clock
        t0 = clock.monotonic()
        if caller and skip_until.get() > t0:
            return None
        try:
            async with asyncio.timeout(self.op_timeout_s):
                reply = await self.scripts[name](keys=keys, args=args)
        except (TimeoutError, RedisTimeoutError) as exc:
            if caller:
                skip_until.set(clock.monotonic() + self.cache_ttl_s)
            self.suspect(exc)
            return None
        except Exception as exc:  # down or refusing: never the caller's problem
            self.fail(exc)
            return None
        if at is not None:
            self.time.sample(reply[at], t0, clock.monotonic())
        return reply

    # failures ------------------------------------------------------------------------------
    def report(self, exc: BaseException) -> None:
        if isinstance(exc, (TimeoutError, RedisTimeoutError)):
            self.suspect(exc)
        else:
            self.fail(exc)

    def suspect(self, exc: BaseException) -> None:
        """A timeout: Redis may be hung, or only this process too busy to read its answer in
        time. Check with a patient ping (in the background) before giving up on Redis."""
        if self.gate.open or self.verifying is not None or self.loop is None:
            return
        self.verifying = self.loop.create_task(self._verify(exc), context=contextvars.Context())

    async def _verify(self, exc: BaseException) -> None:
        try:
            async with asyncio.timeout(self.patience):
                await self.patient.ping()
        except Exception:
            self.fail(exc)
        finally:
            self.verifying = None

    def fail(self, exc: BaseException) -> None:
        gate = self.gate
        if gate.open:
            return
        gate.open = True
        gate.epoch += 1
        gate.retry_at = self.clock.monotonic() + self.cache_ttl_s
        if self.up is not None:
            self.up.clear()
        if self.wake is not None:
            self.wake.set()
        if not self.warned:
            self.warned = True
            log.warning(
                "Redis unavailable (%s: %s); breakers use local state until it answers", type(exc).__name__, exc
            )

    # (re)connecting ------------------------------------------------------------------------
    async def open(self) -> bool:
        """While the gate is open: load the scripts and sample the clock, off the callers' path
        and with time to spare, and close the gate. False (and a retry time) if Redis did not
        answer; callers meanwhile do not wait for Redis, they use local state."""
        gate = self.gate
        client = self.patient
        for stale in (self.client, client):  # connections to a dead server are stale
            with contextlib.suppress(Exception):
                await stale.connection_pool.disconnect()
        try:
            async with asyncio.timeout(2 * self.patience):
                async with client.pipeline(transaction=False) as pipe:
                    for text in self.texts.values():
                        pipe.script_load(text)
                    await pipe.execute()
                t0 = self.clock.monotonic()
                seconds, micros = await client.time()
                self.time.sample(seconds * 1000 + micros / 1000, t0, self.clock.monotonic())
        except Exception as exc:
            gate.retry_at = self.clock.monotonic() + self.cache_ttl_s
            if not self.warned:
                self.warned = True
                log.warning(
                    "Redis at %s unavailable (%s: %s); breakers use local state until it answers",
                    self.url,
                    type(exc).__name__,
                    exc,
                )
            return False
        gate.open = False
        gate.epoch += 1
        return True

    def mark_up(self) -> None:
        """Every shared key is read again: the shared layer is in use."""
        assert self.up is not None
        self.up.set()
        if self.warned:
            log.warning("Redis answers again; breakers use shared state")
        self.warned = False

    async def ready(self, timeout_s: float, *, subscribe: bool) -> bool:
        """Wait until connected, every key read and (with `subscribe`) the listener
        subscribed; False if that did not happen within `timeout_s`."""
        self.bind()
        if self.up is None or self.subscribed is None:
            return False
        try:
            async with asyncio.timeout(timeout_s):
                await self.up.wait()
                if subscribe:
                    await self.subscribed.wait()
        except TimeoutError:
            return False
        return True

    async def scan_keys(self, prefix: str) -> list[str]:
        """Breaker keys with a shared state in Redis (read once per connection)."""
        escaped = "".join("\\" + c if c in "*?[]\\" else c for c in prefix)
        head, tail = len(prefix) + 1, len("}:s")
        found = []
        async for name in self.patient.scan_iter(match=escaped + "{*}:s", count=1000):
            found.append(name[head:-tail])
        return found

    async def quietly(self, cleanup: Awaitable[Any]) -> None:
        """Close something that may belong to a dead connection: bounded, errors dropped."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.patience):
                await cleanup

    async def aclose(self, others: Iterable[asyncio.Task[None]] = ()) -> None:
        """Stop the workers (and `others`) and close the connections."""
        tasks = [*self.tasks, *others]
        if self.verifying is not None:
            tasks.append(self.verifying)
        self.tasks = []
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2 * self.patience)
        for client in (self.client, self.patient):
            if client is not None:
                await self.quietly(client.aclose())
        self.client = self.patient = None
        self.loop = None

"""What one event loop needs to route calls: the engine, one pooled HTTP client, adapters,
and the configuration snapshot kept fresh in the background.

There is one `Runtime` per event loop (the engine's in-process state and the HTTP client's
connection pool are bound to a loop). The gateway, the operations API and the embedded
monitor of one process share it, so probes and live calls feed the same breakers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Callable
from typing import Any

import httpx
from django.conf import settings
from django.utils import timezone

from project.database import db_call

from .adapters import Adapter, adapter_class
from .adapters.client import build_client
from .engine import Engine, Event
from .models import ConfigState
from .snapshot import ProviderEntry, Snapshot, load_snapshot

log = logging.getLogger(__name__)

_runtimes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Runtime] = weakref.WeakKeyDictionary()

# Called with each new Runtime (the health and analytics apps subscribe to its engine).
runtime_created: list[Callable[[Runtime], None]] = []


class Runtime:
    def __init__(self, *, engine: Engine | None = None, client: httpx.AsyncClient | None = None) -> None:
        self.engine = engine or Engine(store=_build_store(), limits=_build_limits())
        self.client = client or build_client(settings.GATEWAY_HTTP_TRANSPORT,
                                                  max_response_bytes=settings.GATEWAY_MAX_RESPONSE_BYTES)
        self.snapshot: Snapshot | None = None
        self._adapters: dict[tuple[str, str | None, int], Adapter] = {}
        self._loading: asyncio.Lock | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._modes: dict[str, str] = {}
        self._last_forced_check = 0.0
        for hook in runtime_created:
            hook(self)

    # -- configuration -----------------------------------------------------------------------

    async def current(self) -> Snapshot:
        """The snapshot, loaded on first use; the refresher keeps it fresh afterwards."""
        snapshot = self.snapshot
        if snapshot is not None:
            return snapshot
        if self._loading is None:
            self._loading = asyncio.Lock()
        async with self._loading:
            if self.snapshot is None:
                connect = getattr(self.engine.store, "connect", None)
                if connect is not None:  # a shared store: load its state before the first call
                    await connect()
                await self.install(await db_call(load_snapshot))
                self._start_refresher()
        assert self.snapshot is not None
        return self.snapshot

    async def install(self, snapshot: Snapshot) -> None:
        for error in snapshot.errors:
            log.error("configuration: %s", error)
        self.snapshot = snapshot
        self._adapters.clear()
        for provider in snapshot.providers.values():
            # Only a change of mode is applied: re-applying "normal" would undo nothing,
            # but it must not touch a breaker an operator forced open.
            if self._modes.get(provider.name, "normal") != provider.breaker_mode:
                await self.engine.set_mode(provider.name, provider.breaker_mode)
                self._modes[provider.name] = provider.breaker_mode

    async def refresh(self, *, force: bool = False) -> bool:
        """Reload if the configuration changed (or a maintenance window opened or closed)."""
        version = await db_call(ConfigState.current)
        snapshot = self.snapshot
        due = snapshot is not None and snapshot.next_change_at is not None and timezone.now() >= snapshot.next_change_at
        if force or snapshot is None or version != snapshot.version or due:
            await self.install(await db_call(load_snapshot))
            return True
        return False

    async def refresh_soon(self) -> bool:
        """Check for a new configuration now unless that was done less than a second ago
        (a miss on an API key must not turn every random key into a query)."""
        now = time.monotonic()
        if now - self._last_forced_check < 1.0:
            return False
        self._last_forced_check = now
        return await self.refresh()

    def _start_refresher(self) -> None:
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_forever())

    async def _refresh_forever(self) -> None:
        interval = settings.CONFIG_POLL_INTERVAL_S
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh()
            except Exception:
                log.exception("configuration refresh failed; keeping the previous snapshot")

    # -- adapters ----------------------------------------------------------------------------

    def adapter(self, provider: ProviderEntry, credential: str | None) -> Adapter:
        key = (provider.name, credential, id(provider))
        adapter = self._adapters.get(key)
        if adapter is None:
            api_key = dict(provider.credentials).get(credential) if credential else None
            config = provider.config
            if api_key is not None:
                from dataclasses import replace

                config = replace(config, api_key=api_key)
            adapter = adapter_class(provider.kind)(config, self.client)
            self._adapters[key] = adapter
        return adapter

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        await self.client.aclose()
        for shared in (self.engine.store, self.engine.limits):
            aclose = getattr(shared, "aclose", None)
            if aclose is not None:
                await aclose()


def _build_store() -> Any:
    if settings.REDIS_URL and settings.SHARED_STATE:
        from .engine.redis_store import RedisStateStore  # scale-out

        return RedisStateStore.from_url(settings.REDIS_URL)
    return None


def _build_limits() -> Any:
    if settings.REDIS_URL and settings.SHARED_STATE:
        from .engine.limits import RedisLimits  # request limits shared by every worker

        return RedisLimits.from_url(settings.REDIS_URL)
    return None


def runtime() -> Runtime:
    """The Runtime of the running event loop, created on first use."""
    loop = asyncio.get_running_loop()
    rt = _runtimes.get(loop)
    if rt is None:
        rt = _runtimes[loop] = Runtime()
    return rt


def install_runtime(rt: Runtime) -> Runtime:
    """Use `rt` for the running loop (tests inject engines with fake clocks)."""
    _runtimes[asyncio.get_running_loop()] = rt
    return rt


def emit_to(callback: Callable[[Event], None]) -> Callable[[Runtime], None]:
    """A `runtime_created` hook that subscribes `callback` to each new engine."""

    def hook(rt: Runtime) -> None:
        rt.engine.subscribe(callback)

    return hook


def monotonic() -> float:
    return time.monotonic()

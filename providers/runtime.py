"""What one event loop needs to route calls: the engine, one pooled HTTP client, adapters,
and the configuration snapshot kept fresh in the background.

There is one `Runtime` per event loop (the engine's in-process state and the HTTP client's
connection pool are bound to a loop). The gateway, the operations API and the embedded
monitor of one process share it, so probes and live calls feed the same breakers.

What later apps add is wired in their AppConfig.ready, through the two lists below, and
lands in fields the class declares: `runtime_created` hooks run on each new runtime (health
attaches its `event_sink` there), and `secret_sources` name more secrets every upstream
answer is scrubbed of (health's alert channel targets).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, urlsplit

import httpx
from django.conf import settings
from django.utils import timezone

from project.database import db_call

from .adapters import Adapter, adapter_class, scrub
from .adapters.client import build_client
from .engine import Classification, Engine, Event, Outcome, UpstreamError
from .models import ConfigState
from .snapshot import ProviderEntry, Snapshot, load_snapshot

if TYPE_CHECKING:
    from .gateway.auth import KeyUsage
    from .gateway.cache import ResponseCache

log = logging.getLogger(__name__)

_runtimes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Runtime] = weakref.WeakKeyDictionary()


class EventSink(Protocol):
    """What listens to a runtime's engine events on behalf of a later app (health/hooks.py
    writes breaker changes and cooldowns to the event history)."""

    # Called on a breaker's change (an embedded monitor evaluates at once); None: nobody.
    on_breaker_change: Callable[[], None] | None

    def __call__(self, event: Event) -> None: ...

    async def flush(self) -> None:
        """Write the events queued so far."""

    async def written(self, limit_s: float = 5.0) -> None:
        """Wait (at most `limit_s`) until the events emitted so far are written."""


# Called with each new Runtime, in the order added (health attaches its event sink). Filled in
# the apps' AppConfig.ready.
runtime_created: list[Callable[[Runtime], None]] = []
# Sync functions returning more secrets that no upstream answer may show (health: its alert
# channels' webhook URLs); read with each configuration load. Filled in AppConfig.ready.
secret_sources: list[Callable[[], list[str]]] = []


class Runtime:
    engine: Engine
    client: httpx.AsyncClient  # one connection pool for every provider
    snapshot: Snapshot | None  # the configuration in use; None until first loaded
    # Set by a `runtime_created` hook (health/hooks.py); None when no app listens.
    event_sink: EventSink | None
    # Per-key request counts and last-use times; made by the gateway's auth on first use.
    key_usage: KeyUsage | None
    # Kept answers (providers/gateway/cache.py): Redis with REDIS_URL, else in-process on the
    # engine's clock.
    response_cache: ResponseCache

    def __init__(
        self,
        *,
        engine: Engine | None = None,
        client: httpx.AsyncClient | None = None,
        response_cache: ResponseCache | None = None,
    ) -> None:
        self.engine = engine or Engine(store=_build_store(), limits=_build_limits())
        self.response_cache = (
            response_cache if response_cache is not None else _build_cache(self.engine.clock.monotonic)
        )
        self.client = client or build_client(
            settings.GATEWAY_HTTP_TRANSPORT, max_response_bytes=settings.GATEWAY_MAX_RESPONSE_BYTES
        )
        self.snapshot = None
        self.event_sink = None
        self.key_usage = None
        self._adapters: dict[tuple[str, str | None, int], Adapter] = {}
        self._loading: asyncio.Lock | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._modes: dict[str, str] = {}
        self._last_forced_check = 0.0
        # What this runtime holds goes into the process-wide set that every upstream answer
        # is scrubbed of (providers/adapters/scrub.py); forgotten when the runtime goes.
        self._scrub_sources = (("providers", id(self)), ("sources", id(self)))
        weakref.finalize(self, _forget, self._scrub_sources)
        scrub.use_secrets("server", server_secrets())
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
                await self._reload()
                self._start_refresher()
        assert self.snapshot is not None
        return self.snapshot

    async def _reload(self) -> None:
        snapshot, more_secrets = await db_call(_load_configuration)
        scrub.use_secrets(self._scrub_sources[1], more_secrets)
        await self.install(snapshot)

    async def install(self, snapshot: Snapshot) -> None:
        for error in snapshot.errors:
            log.error("configuration: %s", error)
        # Before the snapshot is swapped in: no answer to a call made with a new credential
        # may be read before that credential is scrubbed from it.
        scrub.use_secrets(self._scrub_sources[0], provider_secrets(snapshot))
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
            await self._reload()
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
        if provider.problem:
            # Unusable as configured (an `env:` base URL unset or refused): probes and tests say
            # why, and nothing is sent anywhere, least of all to the kind's public default.
            raise UpstreamError(Classification(Outcome.FAILURE, "misconfigured"), message=provider.problem)
        key = (provider.name, credential, id(provider))
        adapter = self._adapters.get(key)
        if adapter is None:
            api_key = dict(provider.credentials).get(credential) if credential else None
            config = provider.config
            if api_key is not None:
                from dataclasses import replace

                config = replace(config, api_key=api_key)
            try:
                adapter = adapter_class(provider.kind)(config, self.client)
            except (ValueError, TypeError) as exc:
                # Options saved before they were validated (or edited in the database): the
                # target is unusable, which probes and the attempt list say in words, not
                # with a traceback every probe interval.
                raise UpstreamError(
                    Classification(Outcome.FAILURE, "misconfigured"),
                    message=f"the provider's options are invalid: {exc}",
                ) from None
            self._adapters[key] = adapter
        return adapter

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        await self.client.aclose()
        _forget(self._scrub_sources)
        for shared in (self.engine.store, self.engine.limits, self.response_cache):
            aclose = getattr(shared, "aclose", None)
            if aclose is not None:
                await aclose()


def server_secrets() -> list[str]:
    """The server's own keys: a provider must never be able to show them to anyone."""
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", ())]
    keys += [k.decode() if isinstance(k, bytes) else str(k) for k in settings.ENCRYPTION_KEYS]
    return keys


def url_secrets(url: str) -> Iterator[str]:
    """A URL that embeds a token (`https://user:pass@host`, `/services/T0/B0/<token>`,
    `?token=...`): the whole URL, its password and every long path segment or query value."""
    yield url
    with contextlib.suppress(ValueError):
        parts = urlsplit(url)
        if parts.password:
            yield parts.password
        # Long parts only: short ones ("v1", "services") are words, not tokens.
        yield from (segment for segment in parts.path.split("/") if len(segment) >= 16)
        yield from (value for _, value in parse_qsl(parts.query) if len(value) >= 16)


def provider_secrets(snapshot: Snapshot) -> list[str]:
    """Every credential of every provider in `snapshot`, and passwords in their base URLs."""
    values: list[str] = []
    for provider in snapshot.providers.values():
        values += [key for _, key in provider.credentials if key]
        with contextlib.suppress(ValueError):
            if password := urlsplit(provider.config.base_url).password:
                values.append(password)
    return values


def _load_configuration() -> tuple[Snapshot, list[str]]:
    return load_snapshot(), [value for source in secret_sources for value in source()]


def _forget(sources: tuple[Any, ...]) -> None:
    for source in sources:
        scrub.forget_secrets(source)


def _build_store() -> Any:
    if settings.REDIS_URL and settings.SHARED_STATE:
        from .engine import RedisStateStore  # scale-out

        return RedisStateStore.from_url(settings.REDIS_URL, op_timeout_s=settings.REDIS_OP_TIMEOUT_S)
    return None


def _build_limits() -> Any:
    if settings.REDIS_URL and settings.SHARED_STATE:
        from .engine import RedisLimits  # request limits shared by every worker

        return RedisLimits.from_url(settings.REDIS_URL)
    return None


def _build_cache(now: Callable[[], float]) -> ResponseCache:
    from .gateway import cache  # the store only: no view, nothing of Django

    if settings.REDIS_URL:
        return cache.RedisCache.from_url(settings.REDIS_URL, op_timeout_s=settings.REDIS_OP_TIMEOUT_S)
    return cache.LocalCache(max_entries=getattr(settings, "RESPONSE_CACHE_MAX_ENTRIES", 10_000), now=now)


def runtime() -> Runtime:
    """The Runtime of the running event loop, created on first use."""
    loop = asyncio.get_running_loop()
    rt = _runtimes.get(loop)
    if rt is None:
        rt = _runtimes[loop] = Runtime()
    return rt


def existing_runtime() -> Runtime | None:
    """The Runtime of the running event loop if one was made, never creating one (recording
    and other bookkeeping must not build an engine and an HTTP pool); None outside a loop."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return _runtimes.get(loop)


def install_runtime(rt: Runtime) -> Runtime:
    """Use `rt` for the running loop (tests inject engines with fake clocks)."""
    _runtimes[asyncio.get_running_loop()] = rt
    return rt


def monotonic() -> float:
    return time.monotonic()

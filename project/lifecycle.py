"""What runs beside the server in one process, and what must happen before it stops.

Components register an async shutdown hook (the analytics writer flushes its queue there);
`serve` runs the hooks on SIGTERM/SIGINT under daphne or uvicorn, and the ASGI lifespan
handler runs them under any server that speaks lifespan. Embedded tasks (the monitor, in
the single-process default) are named in `settings.EMBEDDED_TASKS` and receive a stop event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

log = logging.getLogger(__name__)

ShutdownHook = Callable[[], Awaitable[None]]
_shutdown_hooks: list[ShutdownHook] = []


def on_shutdown(hook: ShutdownHook) -> ShutdownHook:
    if hook not in _shutdown_hooks:
        _shutdown_hooks.append(hook)
    return hook


async def run_shutdown_hooks(limit_s: float = 10.0) -> None:
    for hook in list(_shutdown_hooks):
        try:
            await asyncio.wait_for(hook(), limit_s)
        except Exception:
            log.exception("shutdown hook %r failed", hook)


def embedded_tasks() -> list[Callable[[asyncio.Event], Awaitable[Any]]]:
    return [import_string(path) for path in settings.EMBEDDED_TASKS]


async def run_embedded(stop: asyncio.Event) -> None:
    """Run every embedded task until `stop` is set; one failing task does not stop the others."""

    async def guarded(fn: Callable[[asyncio.Event], Awaitable[Any]]) -> None:
        try:
            await fn(stop)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("embedded task %s stopped with an error", getattr(fn, "__qualname__", fn))

    await asyncio.gather(*(guarded(fn) for fn in embedded_tasks()))


async def lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """ASGI lifespan: start nothing (workers start lazily), flush on shutdown."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await run_shutdown_hooks()
            await send({"type": "lifespan.shutdown.complete"})
            return

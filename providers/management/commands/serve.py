"""`manage.py serve`: console, gateway and (by default) the monitor in one process.

Runs the ASGI application under uvicorn or daphne (`--server`, default `settings.ASGI_SERVER`),
starts the embedded tasks of `settings.EMBEDDED_TASKS` on the server's event loop, and on
SIGTERM/SIGINT stops them and runs the shutdown hooks (the analytics writer flushes) before
the process exits.

Under uvicorn the loop is uvloop, the HTTP parser httptools and websockets the `websockets`
package (all three come with `uvicorn[standard]`), each falling back to the pure-Python one
when it is missing; its `X-Forwarded-*` handling is off, because the project decides itself
whether to trust a proxy (`BEHIND_HTTPS_PROXY`), as it does under daphne.
"""

from __future__ import annotations

import asyncio
import socket
from importlib.util import find_spec
from typing import Any

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from project import lifecycle


def prepare_heap() -> None:
    """Load the application, then move everything alive into the permanent generation: the
    collector stops re-scanning Django's and the libraries' long-lived objects on every
    collection (a few tenths of a millisecond per request, measured in docs/performance.md)."""
    import gc

    import project.asgi  # noqa: F401  (loads settings, apps, URLs and the gateway)

    gc.collect()
    gc.freeze()


class Command(BaseCommand):
    help = "Serve the console, the gateway and the embedded monitor."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=settings.PORT)
        parser.add_argument("--server", choices=["daphne", "uvicorn"], default=settings.ASGI_SERVER)
        parser.add_argument(
            "--no-embedded", action="store_true", help="do not run the embedded tasks (the monitor) in this process"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        embedded = not options["no_embedded"]
        prepare_heap()
        self.stdout.write(
            f"serving on http://{options['host']}:{options['port']} with {options['server']}"
            f"{' + embedded monitor' if embedded and settings.EMBEDDED_TASKS else ''}"
        )
        if options["server"] == "uvicorn":
            self.run_uvicorn(options["host"], options["port"], embedded)
        else:
            self.run_daphne(options["host"], options["port"], embedded)

    def run_uvicorn(self, host: str, port: int, embedded: bool) -> None:
        loop, http, ws = uvicorn_protocols()
        if ws == "none":
            self.stderr.write("neither websockets nor wsproto is installed: the console's live updates are off")
        config = uvicorn.Config(
            "project.asgi:application",
            host=host,
            port=port,
            loop=loop,
            http=http,
            ws=ws,
            lifespan="off",
            proxy_headers=False,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=10,
        )
        EmbeddingServer(config, embedded).run()

    def run_daphne(self, host: str, port: int, embedded: bool) -> None:
        from daphne.server import Server  # installs the asyncio reactor
        from twisted.internet import defer, reactor

        from project.asgi import application

        stop = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []

        def start() -> None:
            if embedded:
                tasks.append(asyncio.get_event_loop().create_task(lifecycle.run_embedded(stop)))

        async def finish() -> None:
            stop.set()
            if tasks:
                await asyncio.wait(tasks, timeout=10)
            await lifecycle.run_shutdown_hooks()

        def before_shutdown() -> defer.Deferred:
            return defer.Deferred.fromFuture(asyncio.ensure_future(finish()))

        reactor.callWhenRunning(start)
        # Twisted's interfaces declare methods without `self`, which only the mypy-zope plugin
        # reads right: plain mypy sees every argument shifted by one.
        reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)  # type: ignore[arg-type]
        server = Server(
            application=application,
            endpoints=[f"tcp:port={port}:interface={host}"],
            signal_handlers=True,
            verbosity=0,
            websocket_timeout=86400,
            application_close_timeout=10,
        )
        server.run()


def uvicorn_protocols() -> tuple[str, str, str]:
    """uvicorn's event loop, HTTP and websocket implementations: the fast ones when installed."""
    loop = "uvloop" if find_spec("uvloop") else "asyncio"
    http = "httptools" if find_spec("httptools") else "h11"
    ws = "websockets-sansio" if find_spec("websockets") else "wsproto" if find_spec("wsproto") else "none"
    return loop, http, ws


class EmbeddingServer(uvicorn.Server):
    """uvicorn's server with the embedded tasks on its loop: started once it listens, stopped
    (and the shutdown hooks run) once its connections are closed. Both happen inside
    `serve()`: uvicorn re-raises a caught SIGTERM when `serve()` returns, with the default
    handler back in place, so nothing after it would run."""

    def __init__(self, config: uvicorn.Config, embedded: bool) -> None:
        super().__init__(config)
        self.embedded = embedded
        self.stop_embedded = asyncio.Event()
        self.embedded_tasks: asyncio.Task[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.embedded and not self.should_exit:
            self.embedded_tasks = asyncio.create_task(lifecycle.run_embedded(self.stop_embedded))

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().shutdown(sockets)
        finally:
            self.stop_embedded.set()
            if self.embedded_tasks is not None:
                await asyncio.wait({self.embedded_tasks}, timeout=10)
            await lifecycle.run_shutdown_hooks()

"""`manage.py serve`: console, gateway and (by default) the monitor in one process.

Runs the ASGI application under daphne or uvicorn, starts the embedded tasks of
`settings.EMBEDDED_TASKS` on the server's event loop, and on SIGTERM/SIGINT stops them and
runs the shutdown hooks (the analytics writer flushes) before the process exits.
"""

from __future__ import annotations

import asyncio
from typing import Any

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
        parser.add_argument("--no-embedded", action="store_true",
                            help="do not run the embedded tasks (the monitor) in this process")

    def handle(self, *args: Any, **options: Any) -> None:
        embedded = not options["no_embedded"]
        prepare_heap()
        self.stdout.write(f"serving on http://{options['host']}:{options['port']} with {options['server']}"
                          f"{' + embedded monitor' if embedded and settings.EMBEDDED_TASKS else ''}")
        if options["server"] == "uvicorn":
            self.run_uvicorn(options["host"], options["port"], embedded)
        else:
            self.run_daphne(options["host"], options["port"], embedded)

    def run_uvicorn(self, host: str, port: int, embedded: bool) -> None:
        import uvicorn
        import uvloop

        config = uvicorn.Config("project.asgi:application", host=host, port=port, loop="none",
                                http="httptools", lifespan="off", log_level="warning", access_log=False)
        server = uvicorn.Server(config)

        async def main() -> None:
            stop = asyncio.Event()
            tasks = asyncio.create_task(lifecycle.run_embedded(stop)) if embedded else None
            try:
                await server.serve()
            finally:
                stop.set()
                if tasks is not None:
                    await asyncio.wait({tasks}, timeout=10)
                await lifecycle.run_shutdown_hooks()

        uvloop.install()
        asyncio.run(main())

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

"""`python manage.py monitor`: the monitoring loop alone (for scale-out).

SIGTERM or SIGINT stops it cleanly: probes in flight are cancelled, the lease is released so
another monitor takes over at once, and pending records are flushed.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from project import lifecycle


class Command(BaseCommand):
    help = "Run the monitoring loop (probes, health scores, events, alerts) in this process."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="run one tick, wait for its probes, and exit")

    def handle(self, *args: Any, **options: Any) -> None:
        from health.checks import separate_monitor_warnings

        for warning in separate_monitor_warnings():
            self.stderr.write(self.style.WARNING(f"{warning.id}: {warning.msg}\n  {warning.hint}"))
        asyncio.run(self.main(once=options["once"]))

    async def main(self, *, once: bool) -> None:
        from health.monitor import Monitor

        monitor = Monitor()
        if once:
            await monitor.tick()
            await monitor.wait_for_probes()
            await monitor.tick()
        else:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            self.stdout.write(f"monitor running as {monitor.lease.holder}; SIGTERM or Ctrl-C stops it")
            await monitor.run(stop)
        await lifecycle.run_shutdown_hooks()
        await monitor.rt.close()
        if not once:
            self.stdout.write("monitor stopped cleanly")

"""`manage.py discover [--register]`: find local AI servers and offer to register them."""

from __future__ import annotations

import asyncio
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from providers.discovery import discover_configured, register


class Command(BaseCommand):
    help = (
        "Look for Ollama, Stable Diffusion WebUI and OpenAI-compatible servers on the DISCOVERY_* "
        "hosts and ports; --register creates a provider for each one not registered yet."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--register", action="store_true", help="create providers for what is found")
        parser.add_argument("--timeout", type=float, default=0.5, help="seconds to wait on each port")

    def handle(self, *args: Any, **options: Any) -> None:
        found = asyncio.run(discover_configured(options["timeout"]))
        if not found:
            self.stdout.write("no local AI servers found (see DISCOVERY_HOSTS and DISCOVERY_*_PORTS)")
            return
        for server in found:
            models = ", ".join(server.models[:8]) + (" …" if len(server.models) > 8 else "")
            self.stdout.write(f"{server.kind:<8} {server.base_url:<32} {server.version or '':<10} {models}")
            if options["register"]:
                name, created = register(server, actor="manage.py discover")
                self.stdout.write(f"  {'registered as' if created else 'already registered as'} {name}")
        if not options["register"]:
            self.stdout.write("run with --register to add them as providers")

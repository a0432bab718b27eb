"""`manage.py demo`: load the demo configuration into an empty database; `--remove` deletes it."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from providers.demo import load_demo, remove_demo


class Command(BaseCommand):
    help = "Load the demo (simulated providers and a route) into an empty database, or --remove it."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--remove", action="store_true", help="delete the demo providers and route")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["remove"]:
            self.stdout.write(f"removed {remove_demo(actor='manage.py demo')} demo objects")
            return
        if settings.NO_DEMO:
            self.stdout.write("NO_DEMO is set: demo not loaded")
            return
        if load_demo():
            self.stdout.write("loaded the demo configuration (simulated providers, route 'demo')")
        else:
            self.stdout.write("configuration not empty: demo not loaded")

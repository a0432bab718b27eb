"""`manage.py export_config`: the configuration as YAML (or JSON); secrets masked or env: refs."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from providers.config import dump_yaml, export_config


class Command(BaseCommand):
    help = "Print the current configuration in the import_config format; secrets never in clear."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", choices=["yaml", "json"], default="yaml")

    def handle(self, *args: Any, **options: Any) -> None:
        doc = export_config()
        if options["format"] == "json":
            self.stdout.write(json.dumps(doc, indent=2))
        else:
            self.stdout.write(dump_yaml(doc), ending="")

"""`manage.py import_config FILE`: create or update providers, routes and alert channels."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from providers.config import ConfigError, apply_config, load_document


class Command(BaseCommand):
    help = "Create or update providers, routes and alert channels from a YAML or JSON file (- for stdin)."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="YAML or JSON file, or - for standard input")
        parser.add_argument(
            "--prune",
            action="store_true",
            help="also delete providers, routes and alert channels the file does not name",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = options["file"]
        try:
            text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"{path}: {exc.strerror}") from exc
        try:
            doc = load_document(text)
            summary = apply_config(doc, actor="import_config", prune=options["prune"])
        except ConfigError as exc:
            raise CommandError(f"{path}: nothing changed:\n" + "\n".join(exc.errors)) from exc
        for line in summary.created:
            self.stdout.write(f"created {line}")
        for line in summary.updated:
            self.stdout.write(f"updated {line}")
        for line in summary.deleted:
            self.stdout.write(f"deleted {line}")
        self.stdout.write(self.style.SUCCESS(f"{path}: {summary}"))

"""`manage.py create_api_key NAME --scopes gateway,read,admin`: prints the key once."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from providers.models import ApiKey, AuditLog, Scope


class Command(BaseCommand):
    help = "Create an API key; the key is printed once, alone on the last line, and only its hash is kept."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--scopes", default="gateway",
                            help=f"comma-separated: {', '.join(Scope.values)} (default: gateway)")
        parser.add_argument("--rate-limit", type=int, default=None, help="requests per minute")

    def handle(self, *args: Any, **options: Any) -> None:
        scopes = [s.strip() for s in options["scopes"].split(",") if s.strip()]
        if ApiKey.objects.filter(name=options["name"]).exists():
            raise CommandError(f"an API key named {options['name']!r} exists already")
        try:
            row, key = ApiKey.issue(options["name"], scopes, rate_limit_per_minute=options["rate_limit"])
        except ValidationError as exc:
            raise CommandError("; ".join(f"{f}: {', '.join(m)}" for f, m in exc.message_dict.items())) from exc
        AuditLog.objects.create(actor="create_api_key", action="create", object_type="api_key",
                                object_name=row.name, changes={"scopes": scopes, "prefix": row.prefix})
        self.stderr.write(f"API key {row.name!r} ({', '.join(scopes)}), prefix {row.prefix}. "
                          "It is shown once; store it now.")
        self.stdout.write(key)

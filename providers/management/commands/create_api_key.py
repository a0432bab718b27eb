"""`manage.py create_api_key NAME --scopes gateway,read,admin`: prints the key once.

Limits, all optional: `--routes r1,r2` (empty: every route), `--budget 25 --budget-period
day|week|month` (in the prices' currency, per UTC calendar period), `--rpm 600`, `--tpm 100000`,
`--expires-days 30`.
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from providers.models import ApiKey, AuditLog, BudgetPeriod, Route, Scope

MAX_EXPIRES_DAYS = 3650


def _whole(text: str, *, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"must be >= {low} and <= {high}, not {value}")
    return value


def rpm(text: str) -> int:
    return _whole(text, low=1, high=10_000_000)


def tpm(text: str) -> int:
    return _whole(text, low=1, high=10**12)


def days(text: str) -> int:
    return _whole(text, low=1, high=MAX_EXPIRES_DAYS)


def budget(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"must be an amount such as 25 or 12.50, not {text!r}") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"must be an amount >= 0, not {text!r}")
    return value


def names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


class Command(BaseCommand):
    help = "Create an API key; the key is printed once, alone on the last line, and only its hash is kept."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument(
            "--scopes", default="gateway", help=f"comma-separated: {', '.join(Scope.values)} (default: gateway)"
        )
        parser.add_argument(
            "--routes",
            type=names,
            default=[],
            help="comma-separated route names the key may use (default: every route)",
        )
        parser.add_argument(
            "--budget",
            type=budget,
            default=None,
            help="spend allowed per period, in the prices' currency (default: none)",
        )
        parser.add_argument(
            "--budget-period",
            choices=BudgetPeriod.values,
            default=None,
            help="the budget's UTC calendar period (default: month)",
        )
        parser.add_argument(
            "--rpm", "--rate-limit", dest="rpm", type=rpm, default=None, help="requests per minute (default: no limit)"
        )
        parser.add_argument("--tpm", type=tpm, default=None, help="tokens (in + out) per minute (default: no limit)")
        parser.add_argument(
            "--expires-days",
            type=days,
            default=None,
            help=f"the key stops working after this many days (1-{MAX_EXPIRES_DAYS}; default: never)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        scopes = [s.strip() for s in options["scopes"].split(",") if s.strip()]
        if ApiKey.objects.filter(name=options["name"]).exists():
            raise CommandError(f"an API key named {options['name']!r} exists already")
        if options["budget_period"] is not None and options["budget"] is None:
            raise CommandError("--budget-period needs --budget")
        fields: dict[str, Any] = {
            "routes": options["routes"],
            "budget": options["budget"],
            "rate_limit_per_minute": options["rpm"],
            "tokens_per_minute": options["tpm"],
            "budget_period": options["budget_period"] or BudgetPeriod.MONTH,
        }
        if options["expires_days"] is not None:
            fields["expires_at"] = timezone.now() + timedelta(days=options["expires_days"])
        try:
            row, key = ApiKey.issue(options["name"], scopes, **fields)
        except ValidationError as exc:
            raise CommandError("; ".join(f"{f}: {', '.join(m)}" for f, m in exc.message_dict.items())) from exc
        limits = {
            name: value
            for name, value in (
                ("routes", row.routes),
                ("budget", None if row.budget is None else str(row.budget)),
                ("budget_period", row.budget_period if row.budget is not None else None),
                ("rpm", row.rate_limit_per_minute),
                ("tpm", row.tokens_per_minute),
                ("expires_at", row.expires_at.isoformat() if row.expires_at else None),
            )
            if value
        }
        AuditLog.objects.create(
            actor="create_api_key",
            action="create",
            object_type="api_key",
            object_name=row.name,
            changes={"scopes": scopes, "prefix": row.prefix, **limits},
        )
        unknown = sorted(
            set(row.routes) - set(Route.objects.filter(name__in=row.routes).values_list("name", flat=True))
        )
        if unknown:
            self.stderr.write(
                f"Note: no route is named {', '.join(unknown)} (yet); the key may use only the routes listed."
            )
        said = ", ".join(f"{name} {value}" for name, value in limits.items() if name != "routes")
        self.stderr.write(
            f"API key {row.name!r} ({', '.join(scopes)}), prefix {row.prefix}"
            + (f", routes {', '.join(row.routes)}" if row.routes else "")
            + (f", {said}" if said else "")
            + ". It is shown once; store it now."
        )
        self.stdout.write(key)

"""`manage.py seed_analytics --rows N [--days D] [--providers ...] [--seed S] [--until TIME]`:
realistic request history. The same seed and the same `--until` give the same history."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from analytics.models import ErrorRollup, ProviderRollup, RequestLog, RouteRollup
from analytics.seed import DEFAULT_PROVIDERS, seed


class Command(BaseCommand):
    help = (
        "Write N realistic gateway requests over the last D days (several providers and routes, "
        "failovers, outages, latency, tokens, cost) with their rollups, in bulk."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rows", type=int, required=True, help="how many requests")
        parser.add_argument("--days", type=float, default=30, help="spread over the last D days (default 30)")
        parser.add_argument(
            "--providers",
            nargs="+",
            default=list(DEFAULT_PROVIDERS),
            help=f"provider names (default: {' '.join(DEFAULT_PROVIDERS)})",
        )
        parser.add_argument(
            "--seed", type=int, default=1, help="random seed (the same seed and --until, the same history)"
        )
        parser.add_argument(
            "--until",
            type=_instant,
            default=None,
            help="end the history at this time (ISO 8601, UTC unless it says; default: now)",
        )
        parser.add_argument("--clear", action="store_true", help="delete every request row and rollup first")
        parser.add_argument("--database", default=None, help="database alias (default: the usual one)")

    def handle(self, *args: Any, **options: Any) -> None:
        rows, days = options["rows"], options["days"]
        if rows < 0 or days <= 0:
            raise CommandError("--rows must be >= 0 and --days > 0")
        if not options["providers"]:
            raise CommandError("--providers needs at least one name")
        if options["clear"]:
            for model in (RequestLog, RouteRollup, ProviderRollup, ErrorRollup):
                model.objects.using(options["database"] or "default")._raw_delete(options["database"] or "default")
        last = [-1]

        def progress(done: int, total: int, seconds: float) -> None:
            step = max(1, total // 20)
            if done // step == last[0] and done != total:
                return
            last[0] = done // step
            rate = done / seconds if seconds else 0
            eta = (total - done) / rate if rate else 0
            self.stdout.write(
                f"  {done:>12,} / {total:,} rows ({done / total:.0%}) {rate:,.0f} rows/s, {eta:,.0f} s left"
                if total
                else "  nothing to write"
            )
            self.stdout.flush()

        written = seed(
            rows,
            days=days,
            providers=options["providers"],
            rng_seed=options["seed"],
            now=options["until"],
            using=options["database"],
            progress=progress,
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"seeded {written:,} requests over {days:g} days for {len(options['providers'])} providers"
            )
        )


def _instant(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)

"""`manage.py prune_analytics`: apply the analytics retention now (the monitor also does)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from analytics.retention import apply_retention, cutoffs


class Command(BaseCommand):
    help = "Delete request log rows and rollups older than their retention settings."

    def handle(self, *args: Any, **options: Any) -> None:
        due = cutoffs()
        deleted = apply_retention()
        for kind, count in deleted.items():
            before = due[kind]
            if before is None:
                self.stdout.write(f"{kind}: kept (no retention set)")
            else:
                self.stdout.write(f"{kind}: deleted {count} rows older than {before:%Y-%m-%d %H:%M} UTC")

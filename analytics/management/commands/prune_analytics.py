"""`manage.py prune_analytics`: apply the analytics retention now (the monitor also does)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from analytics.retention import apply_retention, cutoffs


class Command(BaseCommand):
    help = "Delete request log rows and rollups older than their retention settings."

    def handle(self, *args: Any, **options: Any) -> None:
        due = cutoffs()
        deleted = apply_retention()
        for kind, count in deleted.items():
            before = due[kind]
            if kind == "bodies" and settings.REQUEST_BODY_RETENTION_DAYS <= 0:
                self.stdout.write(f"{kind}: deleted {count} rows (REQUEST_BODY_RETENTION_DAYS is 0: none are kept)")
            elif before is None:
                self.stdout.write(f"{kind}: kept (no retention set)")
            else:
                self.stdout.write(f"{kind}: deleted {count} rows older than {before:%Y-%m-%d %H:%M} UTC")

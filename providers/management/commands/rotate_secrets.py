"""`manage.py rotate_secrets`: re-encrypt every stored secret with the newest ENCRYPTION_KEYS key."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from health.models import AlertChannel
from providers import crypto
from providers.models import AuditLog, Secret


class Command(BaseCommand):
    help = "Re-encrypt all secrets with the first key of ENCRYPTION_KEYS (then the old keys can go)."
    requires_system_checks: list[str] = []

    def handle(self, *args: Any, **options: Any) -> None:
        crypto.reset_keys()
        count = 0
        with transaction.atomic():
            for secret in Secret.objects.exclude(ciphertext="").select_for_update():
                secret.ciphertext = crypto.rotate(secret.ciphertext)
                secret.save(update_fields=["ciphertext"])
                count += 1
            for channel in AlertChannel.objects.exclude(target_ciphertext="").select_for_update():
                channel.target_ciphertext = crypto.rotate(channel.target_ciphertext)
                channel.save(update_fields=["target_ciphertext"])
                count += 1
            AuditLog.objects.create(actor="rotate_secrets", action="rotate", object_type="secrets",
                                    object_name="all", changes={"count": count})
        self.stdout.write(self.style.SUCCESS(f"re-encrypted {count} secrets with the newest key"))

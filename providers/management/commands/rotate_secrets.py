"""`manage.py rotate_secrets`: re-encrypt every stored secret with the newest ENCRYPTION_KEYS key.

The secrets are found through Django's app registry: every installed model that declares a
`sealed = crypto.SealedField(...)` (a provider's credentials, an alert channel's target), so
a later app's secrets are rotated without this command naming its models, and a new sealed
model cannot be forgotten here.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import transaction

from providers import crypto
from providers.models import AuditLog


def sealed_models() -> list[tuple[type[Any], str]]:
    """(model, its ciphertext field) for every installed model that keeps a sealed secret."""
    found = []
    for model in apps.get_models():
        sealed = getattr(model, "sealed", None)
        if isinstance(sealed, crypto.SealedField):
            found.append((model, sealed.ciphertext))
    return found


class Command(BaseCommand):
    help = "Re-encrypt all secrets with the first key of ENCRYPTION_KEYS (then the old keys can go)."
    requires_system_checks: list[str] = []

    def handle(self, *args: Any, **options: Any) -> None:
        crypto.reset_keys()
        count = 0
        with transaction.atomic():
            for model, field in sealed_models():
                for row in model.objects.exclude(**{field: ""}).select_for_update():
                    setattr(row, field, crypto.rotate(getattr(row, field)))
                    row.save(update_fields=[field])
                    count += 1
            AuditLog.objects.create(
                actor="rotate_secrets",
                action="rotate",
                object_type="secrets",
                object_name="all",
                changes={"count": count},
            )
        self.stdout.write(self.style.SUCCESS(f"re-encrypted {count} secrets with the newest key"))

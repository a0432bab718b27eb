"""System checks for settings an operator can get wrong."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks


def check_secrets(app_configs: Any, **kwargs: Any) -> list[checks.CheckMessage]:
    from project.settings import INSECURE_DEV_SECRET_KEY

    messages: list[checks.CheckMessage] = []
    if settings.SECRET_KEY == INSECURE_DEV_SECRET_KEY:
        messages.append(
            checks.Warning(
                "SECRET_KEY is the insecure development default.",
                hint="Run `make run` once to generate .env, or set SECRET_KEY.",
                id="providers.W001",
            )
        )
    if not settings.ENCRYPTION_KEYS:
        messages.append(
            checks.Warning(
                "ENCRYPTION_KEYS is empty: provider secrets are encrypted with a key derived from SECRET_KEY.",
                hint="Set ENCRYPTION_KEYS (Fernet keys, comma separated, newest first).",
                id="providers.W002",
            )
        )
    return messages


def register() -> None:
    checks.register(check_secrets, checks.Tags.security)

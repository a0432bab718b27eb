"""A monitor in its own process with an in-process channel layer talks to no console."""

from __future__ import annotations

from django.conf import settings
from django.core import checks


def separate_monitor_warnings() -> list[checks.CheckMessage]:
    backend = settings.CHANNEL_LAYERS.get("default", {}).get("BACKEND", "")
    if backend.endswith("InMemoryChannelLayer"):
        return [
            checks.Warning(
                "The monitor runs as its own process with the in-process channel layer: its updates "
                "will not reach the console, and its breaker state is not the web workers'.",
                hint="Set REDIS_URL for a separate monitor, or let `make run` / `manage.py serve` embed it.",
                id="health.W001",
            )
        ]
    return []

"""A generic JSON webhook: one POST per notice.

The body: {"event": "alert" | "reminder" | "recovery" | "acknowledged" | "test" | "budget", "channel",
"provider", "status", "breaker", "reason", "at", "since", "incident" (its id, or null),
"console_url", "title"}; times are ISO 8601
in UTC, and a test or a budget notice carries null for the provider's fields.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from . import Notice
from .http import post_json


def payload(notice: Notice) -> dict[str, Any]:
    test = notice.event in ("test", "budget")  # no provider's state in it
    return {
        "event": notice.event,
        "channel": notice.channel,
        "provider": None if test else notice.provider,
        "status": None if test else notice.status,
        "breaker": None if test else notice.breaker,
        "reason": notice.reason,
        "at": _iso(notice.at),
        "since": _iso(notice.since) if notice.since else None,
        "incident": notice.incident,
        "console_url": notice.console_url,
        "title": notice.title,
    }


async def send(notice: Notice, target: str, client: httpx.AsyncClient) -> str:
    response = await post_json(client, target, payload(notice))
    return f"{notice.title} (HTTP {response.status_code})"


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")

"""A generic JSON webhook: one POST per notice.

The body: {"event": "alert" | "reminder" | "recovery" | "acknowledged" | "test" | "budget", "channel",
"provider", "status", "breaker", "reason", "at", "since", "incident" (its id, or null),
"console_url", "title", "providers"}; times are ISO 8601 in UTC, and a test or a budget notice
carries null for the provider's fields.

`providers` lists every provider the notice is about, each as {"provider", "status",
"breaker", "reason", "incident", "since"}: one entry for a notice about one provider, one per
member for a group (providers that went bad, or recovered, in the same evaluation), none for
a test or a budget notice. The top-level provider fields are always the first entry's, so a
receiver that reads only `provider` keeps working; `title` speaks of the whole notice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from . import Notice
from .http import post_json


def payload(notice: Notice) -> dict[str, Any]:
    test = notice.event in ("test", "budget")  # no provider's state in it
    first = notice.members[0]
    return {
        "event": notice.event,
        "channel": notice.channel,
        "provider": None if test else first.provider,
        "status": None if test else first.status,
        "breaker": None if test else first.breaker,
        "reason": first.reason,
        "at": _iso(notice.at),
        "since": _iso(first.since) if first.since else None,
        "incident": first.incident,
        "console_url": first.console_url,
        "title": notice.title,
        "providers": [] if test else [_member(m) for m in notice.members],
    }


def _member(notice: Notice) -> dict[str, Any]:
    return {
        "provider": notice.provider,
        "status": notice.status,
        "breaker": notice.breaker,
        "reason": notice.reason,
        "incident": notice.incident,
        "since": _iso(notice.since) if notice.since else None,
    }


async def send(notice: Notice, target: str, client: httpx.AsyncClient) -> str:
    response = await post_json(client, target, payload(notice))
    return f"{notice.title} (HTTP {response.status_code})"


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")

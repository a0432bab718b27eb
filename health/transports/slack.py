"""A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat, ...).

Slack takes {"text": ..., "blocks": [...]}: `text` is the fallback shown in notifications,
`blocks` the Block Kit layout (a header, a section with fields, a context line with the
console link). Block limits respected here: header text 150 characters, section text 3000,
field text 2000. Slack answers 404 (no such hook) or 410 (channel archived) for a hook that
will never work again, which the shared HTTP rules count as permanent.
"""

from __future__ import annotations

from typing import Any

import httpx

from . import Notice, stamp
from .http import post_json


def escape(text: str) -> str:
    """Slack's mrkdwn treats &, < and > as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def payload(notice: Notice) -> dict[str, Any]:
    title = notice.title
    if notice.event in ("test", "budget"):
        summary = notice.reason or "A test from the gateway."
        fields = [("Channel", notice.channel), ("Sent at", stamp(notice.at))]
    else:
        summary = notice.reason or notice.title
        fields = [
            ("Provider", notice.provider),
            ("Status", notice.status),
            ("Breaker", notice.breaker),
            ("At", stamp(notice.at)),
        ]
        if notice.since is not None:
            fields.append(("Alerted at", stamp(notice.since)))
        if notice.incident is not None:
            fields.append(("Incident", f"#{notice.incident}"))
    return {
        "text": title,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": escape(summary)[:3000]},
                "fields": [{"type": "mrkdwn", "text": f"*{label}*\n{escape(value)}"[:2000]} for label, value in fields],
            },
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": f"<{notice.console_url}|Open in the console>"},
                ],
            },
        ],
    }


async def send(notice: Notice, target: str, client: httpx.AsyncClient) -> str:
    response = await post_json(client, target, payload(notice))
    return f"{notice.title} (HTTP {response.status_code})"

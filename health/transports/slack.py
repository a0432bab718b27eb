"""A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat, ...).

Slack takes {"text": ..., "blocks": [...]}: `text` is the fallback shown in notifications,
`blocks` the Block Kit layout (a header, a section with fields, a context line with the
console link). Block limits respected here: header text 150 characters, section text 3000,
field text 2000. A group (several providers in one notice) lists one provider a line in the
section text, as many as its 3000 characters hold, then how many more there are. Slack answers 404 (no such hook) or 410 (channel archived) for a hook that
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


def roster(notice: Notice, limit: int = 3000) -> str:
    """A group's providers, one a line ("• *name* unhealthy, breaker open, ..."), as many whole
    lines as fit in `limit` characters, then a line counting the ones left out."""
    lines = [f"\u2022 *{escape(m.provider)}* {escape(m.state())}"[:500] for m in notice.members]
    kept: list[str] = []
    size = 0
    for i, line in enumerate(lines):
        left = len(lines) - i - 1
        room = len(f"\n\u2026 and {left} more") if left else 0  # to say what a cut after this line leaves out
        if size + len(line) + room > limit:
            kept.append(f"\u2026 and {left + 1} more")
            break
        kept.append(line)
        size += len(line) + 1
    return "\n".join(kept)


def payload(notice: Notice) -> dict[str, Any]:
    title = notice.title
    if notice.grouped:
        summary = roster(notice)
        fields = [("Providers", str(len(notice.members))), ("At", stamp(notice.at))]
        if notice.alerted_at is not None:
            fields.append(("Alerted at", stamp(notice.alerted_at)))
    elif notice.event in ("test", "budget"):
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
                "text": {"type": "mrkdwn", "text": (summary if notice.grouped else escape(summary))[:3000]},
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

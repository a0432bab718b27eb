"""How an alert reaches people: one module per kind of channel (webhook, slack, email).

Each module has `async def send(notice, target, client) -> str`, which returns a short line
saying what was sent, or raises `DeliveryError`. The error tree is that one class:
`permanent=True` when trying again cannot help (HTTP 4xx other than 408/429, a redirect,
an address refused by the URL rules or no valid email address, an SMTP 5xx), `False` for
what may pass (timeouts, refused connections, 5xx, 408, 429, SMTP 4xx). Transports never
put the target in a message: a webhook URL usually embeds its token.

A `Notice` may stand for several providers at once (`group`: the alerter's grouping of the
providers that went bad, or recovered, in the same evaluation): its own provider fields are
the first member's, `members` lists them all, and `title` and `lines()` speak of the whole
group. Each transport renders every member.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

import httpx
from django.conf import settings

EVENTS = ("alert", "reminder", "recovery", "acknowledged", "test")
GROUPED_EVENTS = ("alert", "reminder", "recovery")  # what several providers may share
NAMES_SHOWN = 10  # provider names in a group's title; the rest are counted


class DeliveryError(Exception):
    def __init__(self, message: str, *, permanent: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.retry_after = retry_after


@dataclass(frozen=True)
class Notice:
    """What one alert says; every transport renders it in its own format."""

    event: str  # alert | reminder | recovery | acknowledged | test | budget (an API key passed a share of its budget)
    channel: str
    provider: str  # "" for a test
    status: str
    breaker: str
    reason: str
    at: datetime
    since: datetime | None = None  # when the incident's alert went out (reminders, recoveries)
    incident: int | None = None  # the incident it is about (health/incidents.py)
    # Every member's own notice when this one speaks for several providers (the first member
    # is this notice without its group); empty for a notice about one provider or none.
    group: tuple[Notice, ...] = ()

    @property
    def members(self) -> tuple[Notice, ...]:
        """The notices this one stands for: its group, or itself."""
        return self.group or (self,)

    @property
    def grouped(self) -> bool:
        return len(self.group) > 1

    @property
    def providers(self) -> list[str]:
        return [m.provider for m in self.members if m.provider]

    @property
    def alerted_at(self) -> datetime | None:
        """When the first alert of its members went out (a group's members may differ)."""
        return min((m.since for m in self.members if m.since is not None), default=None)

    @property
    def console_url(self) -> str:
        base = settings.CONSOLE_URL.rstrip("/")
        if self.grouped:
            return f"{base}/incidents"
        return f"{base}/providers/{quote(self.provider)}" if self.provider else f"{base}/"

    def trouble(self, still: bool = False) -> str:
        """What is wrong, in a few words ("is unhealthy", "still has its breaker open")."""
        if self.status == "unhealthy" or self.breaker != "open":
            return f"is still {self.status}" if still else f"is {self.status}"
        return "still has its breaker open" if still else "has its breaker open"

    @property
    def title(self) -> str:
        if self.grouped:
            return self._group_title()
        if self.event == "alert":
            return f"ALERT: {self.provider} {self.trouble()}"
        if self.event == "reminder":
            lasting = f" (for {duration(self.since, self.at)})" if self.since else ""
            return f"REMINDER: {self.provider} {self.trouble(still=True)}{lasting}"
        if self.event == "recovery":
            return f"RECOVERED: {self.provider} is {self.status} again"
        if self.event == "acknowledged":
            return f"ACKNOWLEDGED: {self.provider} incident{self.number} ({self.reason})"
        if self.event == "budget":
            return f"BUDGET: {self.reason}"
        return f"TEST: alert channel {self.channel} works"

    def _group_title(self) -> str:
        names = self.providers
        shown = ", ".join(names[:NAMES_SHOWN]) + (
            f" and {len(names) - NAMES_SHOWN} more" if len(names) > NAMES_SHOWN else ""
        )
        count = f"{len(names)} providers"
        if self.event == "reminder":
            lasting = f" (for {duration(self.alerted_at, self.at)})" if self.alerted_at else ""
            return f"REMINDER: {count} are still down{lasting}: {shown}"
        if self.event == "recovery":
            return f"RECOVERED: {count} are back: {shown}"
        return f"ALERT: {count} are down: {shown}"

    def state(self) -> str:
        """One provider's state in a line: "unhealthy, breaker open, incident #4: <reason>"."""
        text = f"{self.status}, breaker {self.breaker}" + (
            f", incident #{self.incident}" if self.incident is not None else ""
        )
        return f"{text}: {self.reason}" if self.reason else text

    def lines(self) -> list[tuple[str, str]]:
        """(label, value) pairs for the body of a message; a group's has one per provider."""
        if self.grouped:
            rows = [(m.provider, m.state()) for m in self.members]
            rows.append(("At", stamp(self.at)))
            if self.alerted_at is not None:
                rows.append(("Alerted at", stamp(self.alerted_at)))
            return rows
        if self.event in ("test", "budget"):
            return [("Channel", self.channel), ("Sent at", stamp(self.at)), ("Note", self.reason)]
        rows = [
            ("Provider", self.provider),
            ("Status", self.status),
            ("Breaker", self.breaker),
            ("Reason", self.reason or "-"),
            ("At", stamp(self.at)),
        ]
        if self.event == "acknowledged":
            rows = [("Provider", self.provider), ("Note", self.reason), ("At", stamp(self.at))]
        if self.since is not None:
            rows.append(("Alerted at", stamp(self.since)))
        if self.incident is not None:
            rows.append(("Incident", f"#{self.incident}"))
        return rows

    @property
    def number(self) -> str:
        return f" #{self.incident}" if self.incident is not None else ""


def stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def duration(start: datetime, end: datetime) -> str:
    seconds = max(0, int((end - start).total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


Send = Callable[[Notice, str, httpx.AsyncClient], Awaitable[str]]


def transport(kind: str) -> Send:
    from . import email, slack, webhook

    senders: dict[str, Send] = {"webhook": webhook.send, "slack": slack.send, "email": email.send}
    try:
        return senders[kind]
    except KeyError:
        raise DeliveryError(f"unknown channel kind {kind!r}", permanent=True) from None

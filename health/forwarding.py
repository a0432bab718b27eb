"""Event feeds: webhook channels that name event types receive those events as they happen.

A webhook AlertChannel with `events` (the events API's names: `breaker.opened`,
`provider.status`, `request.failed`, ...) is a feed, not an alert channel: it gets no incident
alerts (plan_alerts leaves it out), and each event of a listed type is POSTed to it as JSON,
the item `GET /api/events` lists plus the channel's name:

    {"channel": "ops-feed", "id": 812, "event": "breaker.opened", "provider": "openai-main",
     "from": "closed", "to": "open", "reason": "failure_rate 0.62 >= 0.5 over 13 calls",
     "at": "2026-12-03T10:00:00.123456Z", "actor": "", "detail": {}}

The leading monitor feeds them (its Alerter starts a run at each evaluation, so one process
sends each event once, within a tick of it being written), oldest first, from the channel's
cursor (`events_cursor`: the last event it has looked at, kept in the database, so a new
leader carries on where the last one stopped; a new feed starts at the newest event written
so far, without history). A transient failure (timeout, 5xx, 429) stops the feed at that
event, to be tried again after a backoff; a permanent one (another 4xx, a refused address)
skips it, and ALERT_DISABLE_AFTER of those in a row disable the channel, as for alerts. Either
is stored on the channel (`last_delivery_error`, `delivery_failures`). Deliveries are not
events themselves: a feed of `alert.*` would otherwise feed on its own deliveries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx
from django.conf import settings
from django.db.models import F
from django.utils import timezone

from project.database import db_call
from providers.engine import backoff_bound

from . import feed
from .models import AlertChannel
from .transports import DeliveryError
from .transports.http import post_json

log = logging.getLogger(__name__)

BATCH = 200  # events looked at per feed per run
RETRY_CAP_S = 300.0


@dataclass(frozen=True)
class Feed:
    id: int
    name: str
    events: frozenset[str]
    cursor: int
    target: str | None


def feeds() -> list[Feed]:
    """The enabled feeds; one just set up without a cursor starts at the newest event."""
    found = []
    for channel in AlertChannel.objects.filter(enabled=True, kind=AlertChannel.Kind.WEBHOOK):
        if not channel.events:
            continue
        if channel.events_cursor is None:
            channel.events_cursor = feed.last_id()
            AlertChannel.objects.filter(pk=channel.pk).update(events_cursor=channel.events_cursor)
        try:
            target = channel.target()
        except Exception as exc:  # reported as that feed's delivery error below
            log.warning("event feed %s: target unreadable: %s", channel.name, exc)
            target = None
        found.append(Feed(channel.pk, channel.name, frozenset(channel.events), channel.events_cursor, target))
    return found


def _advance(channel_id: int, cursor: int, error: str | None, permanent: int) -> None:
    """Store where the feed stands and how its last delivery went; `permanent` failures (in a
    row, this run) may disable it."""
    now = timezone.now()
    rows = AlertChannel.objects.filter(pk=channel_id)
    if error is None:
        rows.update(events_cursor=cursor, last_delivery_at=now, last_delivery_error="", delivery_failures=0)
        return
    rows.update(
        events_cursor=cursor,
        last_delivery_at=now,
        last_delivery_error=error[:1000],
        delivery_failures=F("delivery_failures") + max(permanent, 1),
    )
    limit = settings.ALERT_DISABLE_AFTER
    if permanent and limit > 0 and rows.filter(delivery_failures__gte=limit).exists():
        why = f"disabled after {limit} permanent delivery errors in a row; last: {error}"
        if rows.filter(enabled=True).update(enabled=False, disabled_reason=why[:200]):
            log.warning("event feed %s", why)


class Feeds:
    """The Alerter's part that feeds them. `transport` makes each run's HTTP transport."""

    def __init__(
        self, transport: Callable[[], httpx.AsyncBaseTransport], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.transport = transport
        self.clock = clock
        self.task: asyncio.Task[int] | None = None
        self.retry_at: dict[int, float] = {}  # channel id -> not before (after a transient failure)
        self.attempts: dict[int, int] = {}  # channel id -> transient failures in a row

    def start(self) -> None:
        """Forward what is new, in the background; a run still going is left to finish."""
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self.run())

    async def wait(self) -> None:
        if self.task is not None and not self.task.done():
            await asyncio.wait({self.task})

    async def run(self) -> int:
        """One pass over every feed; returns how many events were sent."""
        try:
            found = await db_call(feeds)
        except Exception:
            log.exception("could not read the event feeds")
            return 0
        sent = 0
        for one in found:
            if self.clock() < self.retry_at.get(one.id, 0.0):
                continue
            try:
                sent += await self.forward(one)
            except Exception:  # a bug must not stop the other feeds
                log.exception("event feed %s failed", one.name)
        return sent

    async def forward(self, one: Feed) -> int:
        rows = await db_call(feed.after, one.cursor, BATCH)
        if not rows:
            return 0
        cursor, sent, permanent, error = one.cursor, 0, 0, None
        timeout_s = settings.ALERT_TIMEOUT_S
        async with httpx.AsyncClient(timeout=timeout_s, transport=self.transport()) as client:
            for row in rows:
                item = feed.as_item(row)
                if item["event"] in one.events:
                    try:
                        if not one.target:
                            raise DeliveryError(
                                "no target (an empty value or an unset environment variable)", permanent=True
                            )
                        async with asyncio.timeout(timeout_s):
                            await post_json(client, one.target, {"channel": one.name, **item})
                    except TimeoutError:
                        error = f"event {row.pk} not sent: no answer within {timeout_s:g} s"
                        break
                    except DeliveryError as exc:
                        error = f"event {row.pk} ({item['event']}) not sent: {exc.message}"
                        if not exc.permanent:
                            break
                        permanent += 1
                    else:
                        sent += 1
                        permanent, error = 0, None
                cursor = row.pk
        if error is not None and not permanent:  # transient: this event again, after a backoff
            attempt = self.attempts[one.id] = self.attempts.get(one.id, 0) + 1
            self.retry_at[one.id] = self.clock() + backoff_bound(attempt, settings.ALERT_RETRY_BASE_S, RETRY_CAP_S)
        else:
            self.attempts.pop(one.id, None)
            self.retry_at.pop(one.id, None)
        await db_call(_advance, one.id, cursor, error, permanent)
        return sent

"""The events stream (`GET /api/events/stream`): server-sent events read from the history.

Every writer of the history (the engine's events, the monitor's status changes, alerts,
operators' actions, failed requests) publishes to the channel layer group `health` after
writing; with REDIS_URL the layer is Redis, so a monitor or worker in another process reaches
every stream. A message only wakes the stream: it then reads the rows after the last one it
sent from the database, by id, so the stream and `GET /api/events` show the same events, and
an event is sent once whatever number of messages announce it. While nothing happens the
stream sends a comment every EVENTS_KEEPALIVE_S (and looks at the database then too, for a
writer that could not publish), and holds no database connection: each read closes its own.

Resuming: `Last-Event-ID` (or `?last_event_id=`) is the id of the last event received. The
stream subscribes first, then reads the stored events after that id, then waits: an event
written between the two is read once, never lost. Without it (or with an id past the newest)
the stream starts at the newest event written when it opens, before it sends its first line.

A row whose id was taken but not yet committed when a later one was read (PostgreSQL commits
concurrent transactions in any order) is a hole: the stream looks for it again on each read for
LATE_S seconds and sends it when it appears, out of id order but once.

The stream ends when the client goes away: the server (daphne, uvicorn) tells Django, which
cancels the response; the group membership and the wake task end with it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from channels.layers import BaseChannelLayer, get_channel_layer
from django.conf import settings
from django.db import connections
from django.http import HttpRequest

from providers.engine import wait_event
from providers.gateway.errors import RequestError

from . import feed
from .events import GROUP
from .models import HealthEvent

log = logging.getLogger(__name__)

T = TypeVar("T")

BATCH = 500  # rows per read; a resume from far back is sent in batches
LATE_S = 10.0
MAX_GAP = 100  # a wider gap is rows deleted, not rows in flight: only its last ids are holes
MAX_HOLES = 500
WAKES = frozenset({"health.update", "health.event"})  # not pull progress, not session notices
RETRY_MS = 3000  # how long a browser's EventSource waits before it reconnects
LISTEN_RETRY_S = 1.0  # after the channel layer failed


LEAVE_TIMEOUT_S = 2.0


def keepalive_s() -> float:
    return float(getattr(settings, "EVENTS_KEEPALIVE_S", 15.0))


def start_id(request: HttpRequest) -> int | None:
    """The id to resume after: the `Last-Event-ID` header (what an EventSource sends when it
    reconnects), else `?last_event_id=`; None to start with what comes next."""
    header = request.headers.get("Last-Event-ID")
    param, value = (
        ("Last-Event-ID", header) if header is not None else ("last_event_id", request.GET.get("last_event_id"))
    )
    if value is None or not value.strip():
        return None
    value = value.strip()
    if not value.isdigit() or len(value) > 18:
        raise RequestError(
            400, f"`{param}` must be the id of an event (a whole number >= 0).", code="invalid_parameter", param=param
        )
    return int(value)


async def _read(fn: Callable[..., T], *args: Any) -> T:
    """A database read that leaves no connection open behind it (the stream idles for hours)."""

    def run() -> T:
        try:
            return fn(*args)
        finally:
            connections.close_all()

    return await sync_to_async(run, thread_sensitive=False)()


def _fetch(cursor: int, holes: list[int]) -> tuple[list[HealthEvent], list[HealthEvent]]:
    return feed.after(cursor, BATCH), feed.by_ids(holes)


def sse(item: dict[str, Any]) -> bytes:
    data = json.dumps(item, separators=(",", ":"), ensure_ascii=False)  # one line: JSON escapes newlines
    return f"id: {item['id']}\nevent: {item['event']}\ndata: {data}\n\n".encode()


class Holes:
    """Ids skipped by a read, looked for again until LATE_S has passed."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.until: dict[int, float] = {}

    def note(self, after: int, ids: list[int]) -> None:
        """`ids` (ascending) were read after `after`: every id between is a hole."""
        deadline = self.clock() + LATE_S
        previous = after
        for pk in ids:
            for missing in range(max(previous + 1, pk - MAX_GAP), pk):
                self.until[missing] = deadline
            previous = pk
        if len(self.until) > MAX_HOLES:
            for pk in sorted(self.until)[: len(self.until) - MAX_HOLES]:
                del self.until[pk]

    def pending(self) -> list[int]:
        now = self.clock()
        for pk in [pk for pk, until in self.until.items() if until <= now]:
            del self.until[pk]
        return sorted(self.until)

    def found(self, pk: int) -> None:
        self.until.pop(pk, None)


async def _listen(layer: BaseChannelLayer, channel: str, wake: asyncio.Event, stop: asyncio.Event) -> None:
    """Wake the stream on each message of the group, until `stop`."""
    while not stop.is_set():
        try:
            message = await layer.receive(channel)
        except asyncio.CancelledError:
            raise
        except Exception:
            if stop.is_set():  # a cancel that a library's timeout turned into its own error
                return
            # Redis away, or its client timing out: the stream reads the database now (a
            # message may be lost) and at each keep-alive meanwhile, and listens again soon.
            log.warning("the events stream could not read the channel layer", exc_info=True)
            wake.set()
            await wait_event(stop, LISTEN_RETRY_S)
            continue
        if message.get("type") in WAKES:
            wake.set()


async def _stay_subscribed(layer: BaseChannelLayer, channel: str) -> None:
    """Join the group again: a membership older than the layer's group_expiry (a day) is
    dropped, and a stream may stay open longer than that."""
    try:
        await layer.group_add(GROUP, channel)
    except Exception:  # Redis away: the keep-alive reads carry on meanwhile
        log.warning("could not stay in the %s group", GROUP, exc_info=True)


async def events(start: int | None, provider: str = "", kinds: list[str] | None = None) -> AsyncIterator[bytes]:
    """The stream's body: the events after `start` (None: after the newest so far), then every
    new one, with keep-alive comments between."""
    kinds = kinds or []
    layer = get_channel_layer()
    wake, stop = asyncio.Event(), asyncio.Event()
    channel = ""
    listener: asyncio.Task[None] | None = None
    try:
        if layer is not None:
            # subscribe before the first read: what is written in between is read, not lost
            channel = await layer.new_channel()
            await layer.group_add(GROUP, channel)
            listener = asyncio.get_running_loop().create_task(_listen(layer, channel, wake, stop))
        # where to start is settled before the client hears anything: what is written once it
        # has the first line is after the start
        newest = await _read(feed.last_id)
        # an id from the future (another database, one restored from a backup) means "from now"
        cursor = newest if start is None else min(start, newest)
        yield f"retry: {RETRY_MS}\n: events\n\n".encode()
        holes = Holes()
        while True:
            wake.clear()
            rows, late = await _read(_fetch, cursor, holes.pending())
            chunks = []
            for row in late:
                holes.found(row.pk)
            holes.note(cursor, [row.pk for row in rows])
            for row in [*late, *rows]:
                item = feed.as_item(row)
                if feed.matches(item, provider, kinds):
                    chunks.append(sse(item))
            if rows:
                cursor = rows[-1].pk
            if chunks:
                yield b"".join(chunks)
            if len(rows) == BATCH:
                continue  # more stored events to catch up on
            if not await wait_event(wake, keepalive_s()):
                yield b": keep-alive\n\n"
                if layer is not None:
                    await _stay_subscribed(layer, channel)
    finally:
        stop.set()
        if listener is not None:
            listener.cancel()
            # bounded: a listener that missed its cancel stops at its next turn on its own
            await asyncio.wait({listener}, timeout=2.0)
        if layer is not None and channel:
            try:
                # bounded: a client that left must not keep the response open on a slow layer
                async with asyncio.timeout(LEAVE_TIMEOUT_S):
                    await layer.group_discard(GROUP, channel)
            except Exception:  # the membership expires on its own (group_expiry)
                log.warning("could not leave the %s group", GROUP, exc_info=True)

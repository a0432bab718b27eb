"""The console's websocket (`/ws/health/`): server-rendered fragments pushed on every change.

A socket joins the group `health` (every change of every provider); a provider page's
socket (`/ws/health/?provider=<name>`) also joins `provider.<name>` (pull progress).
Messages it handles:

- `health.update` {provider}: the provider's state changed. The dashboard gets the card
  (`#card-<name>`, or a delete when the provider is gone), the status counts and the recent
  changes; the provider's own page gets its summary, traffic settings and events.
- `health.event` {provider, event_id}: a new event (an operator's action). The dashboard
  gets the recent changes; the provider's page its events.
- `pull.progress` {provider, model, status, percent, ...}: the pull's progress bar.

- `session.end` / `session.check` (groups `session.<key>`, `user.<id>`, see sessions.py):
  the session ended (signed out, demoted, deleted): close; or read the session again.

Updates that arrive together are coalesced into one message. The dashboard's data for a push
is loaded once for every socket of this process that pushes the same changes
(`cards.boards`); each socket renders it for its own user and view. Every fragment carries the
id of the element it replaces; htmx's ws extension swaps them out of band. The socket
sends nothing on connect: the page re-fetches its live parts when the socket (re)opens, so
nothing missed while it was down stays missing.

The dashboard's socket knows the view the page shows (its filters and sort: from the
socket's query string, then from `{"view": "?status=…"}` messages the page sends when its
URL changes) and the cards that view listed at the last push. When the list changes (a
card no longer matches the filter, a new one does, the order moves, a provider comes or
goes) the whole board is pushed; otherwise only the changed cards.

Only an active staff user's session is accepted, from a page of this site (scheme, host and
port of the Origin, `access.same_origin`); before each push the session and the user are
read again, so a socket whose session ended, or whose user lost staff, closes (4401) instead
of pushing. Pushed fragments carry no CSRF token: the pages send theirs in a header set on
<body> (templates/console/layout.html), so forms swapped in over the socket keep working.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from importlib import import_module
from types import SimpleNamespace
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib.auth import aget_user
from django.http import QueryDict

from . import pages, pulls, sessions
from .access import Role, same_origin
from .cards import Filters, boards
from .events import GROUP

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
SIGNED_OUT = 4401  # the close code for a session that ended (the page stops reconnecting)
MAX_VIEW = 500  # characters of a view's query string


class HealthConsumer(AsyncWebsocketConsumer):
    coalesce_s = 0.05

    async def connect(self) -> None:
        self.joined: list[str] = []
        if not same_origin(self.scope):
            await self.close()  # before accept: the handshake is refused (HTTP 403)
            return
        user = self.scope.get("user")
        self.role = await Role.aof(user) if user is not None else Role()
        if user is None or not self.role.can_view:
            await self.close()
            return
        query = QueryDict(self.scope.get("query_string", b"").decode("latin1"))
        provider = query.get("provider", "")
        self.provider = provider if NAME_RE.match(provider) else ""
        self.filters = Filters.from_query(query)
        self.shown: list[str] | None = None
        session = self.scope.get("session")
        self.session_key: str | None = getattr(session, "session_key", None)
        self.joined = [GROUP] + ([pulls.group(self.provider)] if self.provider else [])
        self.joined += [sessions.user_group(user.pk)]
        if self.session_key:
            self.joined.append(sessions.session_group(self.session_key))
        self.dirty: set[str] = set()
        self.events_of: set[str] = set()
        self.seen = 0  # the last change this socket heard of (cards.SharedBoards)
        self.flushing: asyncio.Task[None] | None = None
        self.ended = False
        self.checked_at = time.monotonic()
        for name in self.joined:
            await self.channel_layer.group_add(name, self.channel_name)
        if not self.provider:
            self.shown = await pages.dashboard_listing(self.filters)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        flushing = getattr(self, "flushing", None)
        if flushing is not None and flushing is not asyncio.current_task():
            flushing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flushing
        for name in getattr(self, "joined", []):
            await self.channel_layer.group_discard(name, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """The page says which view it shows now (`{"view": "?status=unhealthy"}`) when its
        URL changes; anything else a client sends is ignored."""
        if self.provider or not text_data or len(text_data) > MAX_VIEW + 20:
            return
        try:
            message = json.loads(text_data)
        except ValueError:
            return
        view = message.get("view") if isinstance(message, dict) else None
        if isinstance(view, str) and len(view) <= MAX_VIEW:
            self.filters = Filters.from_query(QueryDict(view.removeprefix("?")))
            self.shown = None  # the page swapped its board itself; the next push sends it whole

    # -- the session -----------------------------------------------------------------------------

    async def session_end(self, event: dict[str, Any]) -> None:
        await self._end()

    async def session_check(self, event: dict[str, Any]) -> None:
        if not await self._still_allowed():
            await self._end()

    async def _still_allowed(self) -> bool:
        """Read the session and its user again (not the copies taken at connect): the same
        checks as a page load, then the role, which may have changed."""
        if not self.session_key:
            return False
        store = import_module(settings.SESSION_ENGINE).SessionStore(self.session_key)
        user = await aget_user(SimpleNamespace(session=store))  # type: ignore[arg-type]
        role = await Role.aof(user)
        if not role.can_view:
            return False
        self.role = role
        return True

    async def _end(self) -> None:
        if self.ended:
            return
        self.ended = True
        self.dirty.clear()
        self.events_of.clear()
        for name in self.joined:
            await self.channel_layer.group_discard(name, self.channel_name)
        self.joined = []
        await self.close(code=SIGNED_OUT)

    # -- group messages ------------------------------------------------------------------------

    async def health_update(self, event: dict[str, Any]) -> None:
        name = str(event.get("provider") or "")
        if name and (not self.provider or name == self.provider):
            self.dirty.add(name)
            self.seen = boards.note_change()
            self._flush_soon()

    async def health_event(self, event: dict[str, Any]) -> None:
        name = str(event.get("provider") or "")
        if not self.provider or name == self.provider:
            self.events_of.add(name)
            self.seen = boards.note_change()
            self._flush_soon()

    async def pull_progress(self, event: dict[str, Any]) -> None:
        name = str(event.get("provider") or "")
        if name != self.provider or self.ended:
            return
        # Progress comes ten times a second: the session is read again once a second.
        now = time.monotonic()
        if now - self.checked_at >= 1.0 or event.get("done"):
            if not await self._still_allowed():
                await self._end()
                return
            self.checked_at = now
        state = {k: v for k, v in event.items() if k not in ("type", "provider")}
        await self.send(text_data=pages.render_pull(name, state))

    # -- rendering -----------------------------------------------------------------------------

    def _flush_soon(self) -> None:
        if self.flushing is None or self.flushing.done():
            self.flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        await asyncio.sleep(self.coalesce_s)
        dirty, self.dirty = self.dirty, set()
        events_of, self.events_of = self.events_of, set()
        if self.ended:
            return
        if not await self._still_allowed():
            await self._end()
            return
        try:
            if self.provider:
                html = await pages.render_provider_push(self.provider, self.role)
            else:
                html, self.shown = await pages.render_dashboard_push(
                    sorted(dirty), self.role, self.filters, self.shown, seen=self.seen
                )
        except Exception:  # one bad render must not close the socket; the next change retries
            log.exception("could not render the console update for %s", sorted(dirty | events_of))
            return
        if html.strip():
            await self.send(text_data=html)
        if (self.dirty or self.events_of) and not self.ended:
            # what arrived while this push was rendered: its own push, not the next change's
            self.flushing = asyncio.get_running_loop().create_task(self._flush())

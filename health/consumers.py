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

Updates that arrive together are coalesced into one message. Every fragment carries the
id of the element it replaces; htmx's ws extension swaps them out of band. The socket
sends nothing on connect: the page re-fetches its live parts when the socket (re)opens, so
nothing missed while it was down stays missing.

Only an active staff user's session is accepted (the Origin check runs before, in asgi.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Any
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncWebsocketConsumer

from . import pages, pulls
from .access import Role
from .events import GROUP

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class HealthConsumer(AsyncWebsocketConsumer):
    coalesce_s = 0.05

    async def connect(self) -> None:
        user = self.scope.get("user")
        self.role = await Role.aof(user) if user is not None else Role()
        if not self.role.can_view:
            await self.close()  # before accept: the handshake is refused (HTTP 403)
            return
        query = parse_qs(self.scope.get("query_string", b"").decode("latin1"))
        provider = (query.get("provider") or [""])[0]
        self.provider = provider if NAME_RE.match(provider) else ""
        self.joined = [GROUP] + ([pulls.group(self.provider)] if self.provider else [])
        self.dirty: set[str] = set()
        self.events_of: set[str] = set()
        self.flushing: asyncio.Task[None] | None = None
        for name in self.joined:
            await self.channel_layer.group_add(name, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        flushing = getattr(self, "flushing", None)
        if flushing is not None:
            flushing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flushing
        for name in getattr(self, "joined", []):
            await self.channel_layer.group_discard(name, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """The console only listens; what a client sends is ignored."""

    # -- group messages ------------------------------------------------------------------------

    async def health_update(self, event: dict[str, Any]) -> None:
        name = str(event.get("provider") or "")
        if name and (not self.provider or name == self.provider):
            self.dirty.add(name)
            self._flush_soon()

    async def health_event(self, event: dict[str, Any]) -> None:
        name = str(event.get("provider") or "")
        if not self.provider or name == self.provider:
            self.events_of.add(name)
            self._flush_soon()

    async def pull_progress(self, event: dict[str, Any]) -> None:
        name = str(event.get("provider") or "")
        if name != self.provider:
            return
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
        try:
            if self.provider:
                html = await pages.render_provider_push(self.provider, self.role)
            else:
                html = await pages.render_dashboard_push(sorted(dirty), self.role)
        except Exception:  # one bad render must not close the socket; the next change retries
            log.exception("could not render the console update for %s", sorted(dirty | events_of))
            return
        if html.strip():
            await self.send(text_data=html)

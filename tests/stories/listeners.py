"""Listening to the running server as its clients do: the events stream (`GET /api/events/stream`,
server-sent events) and the console's websocket (`/ws/health/`). Both wait on what arrives,
with a generous bound against a hang; neither sleeps."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

HANG_S = 60.0  # a guard against a hang, not a timing expectation


@dataclass(frozen=True)
class Event:
    id: str
    name: str  # the SSE `event:` line
    data: dict[str, Any]

    @property
    def provider(self) -> str:
        return str(self.data.get("provider", ""))


class EventStream:
    """`GET /api/events/stream` read in a thread of its own; `wait` for an event that matches.
    `open()` returns once the stream has sent its first line: the server has subscribed and
    settled where it starts, so anything that happens after is heard."""

    def __init__(self, url: str, key: str, *, last_event_id: str | None = None) -> None:
        self.url, self.key, self.last_event_id = url, key, last_event_id
        self.received: list[Event] = []
        self.status: int | None = None
        self.content_type = ""
        self._changed = threading.Condition()
        self._opened = threading.Event()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="events-stream", daemon=True)

    def open(self) -> EventStream:
        self._thread.start()
        if not self._opened.wait(HANG_S):
            raise AssertionError("the events stream did not open")
        if self._error is not None:
            raise AssertionError(f"the events stream failed: {self._error!r}")
        assert self.status == 200 and self.content_type.startswith("text/event-stream"), (
            self.status,
            self.content_type,
        )
        return self

    def close(self) -> None:
        self._stop.set()  # the reader sees it at the next line: the server's keep-alive at most
        self._thread.join(HANG_S)

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}", "Accept": "text/event-stream"}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(HANG_S)) as client,
                client.stream("GET", self.url + "/api/events/stream", headers=headers) as response,
            ):
                self.status, self.content_type = response.status_code, response.headers.get("content-type", "")
                fields: dict[str, str] = {}
                for line in response.iter_lines():
                    self._opened.set()
                    if self._stop.is_set():
                        return
                    if line == "":
                        if "data" in fields:
                            self._add(
                                Event(fields.get("id", ""), fields.get("event", "message"), json.loads(fields["data"]))
                            )
                        fields = {}
                    elif not line.startswith(":"):
                        name, _, value = line.partition(":")
                        fields[name] = value.removeprefix(" ")
        except BaseException as exc:  # handed to the test that waits
            if not self._stop.is_set():
                self._error = exc
        finally:
            self._opened.set()
            with self._changed:
                self._changed.notify_all()

    def _add(self, event: Event) -> None:
        with self._changed:
            self.received.append(event)
            self._changed.notify_all()

    def wait(self, name: str, provider: str | None = None, where: Callable[[Event], bool] | None = None) -> Event:
        """The first event received (before or after this call) named `name`, for `provider`,
        for which `where` holds."""

        def found() -> Event | None:
            for event in self.received:
                if event.name == name and provider in (None, event.provider) and (where is None or where(event)):
                    return event
            return None

        deadline = time.monotonic() + HANG_S
        with self._changed:
            while (event := found()) is None:
                if self._error is not None:
                    raise AssertionError(f"the events stream failed: {self._error!r}")
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    seen = [(e.name, e.provider, e.data.get("to")) for e in self.received]
                    raise AssertionError(f"no {name} event for {provider}; received {seen}")
                self._changed.wait(left)
            return event

    def names(self, provider: str | None = None) -> list[str]:
        with self._changed:
            return [e.name for e in self.received if provider in (None, e.provider)]


def status_label(message: str, provider: str) -> str | None:
    """The status on `provider`'s card in a pushed message (None: no such card in it)."""
    found = re.search(
        rf'id="card-{re.escape(provider)}".*?data-field="status">(?:<span[^>]*></span>)?([^<]*)<', message, re.S
    )
    return found.group(1).strip() if found else None


def breaker_label(message: str, provider: str) -> str | None:
    """The breaker's label on `provider`'s card in a pushed message (None: no such card in it)."""
    found = re.search(rf'id="card-{re.escape(provider)}".*?data-field="breaker">([^<]*)<', message, re.S)
    return found.group(1).strip() if found else None


class ConsoleSocket:
    """The dashboard's websocket with a staff session, as the page opens it."""

    def __init__(self, url: str, session: str, *, query: str = "", origin: str | None = None) -> None:
        self._exit = ExitStack()
        self.connection: ClientConnection = self._exit.enter_context(
            connect(
                url.replace("http://", "ws://") + "/ws/health/" + query,
                additional_headers={"Cookie": f"sessionid={session}", "Origin": origin or url},
                open_timeout=HANG_S,
            )
        )

    def wait(self, where: Callable[[str], bool]) -> str:
        """The next pushed message for which `where` holds (earlier ones are read and dropped)."""
        deadline = time.monotonic() + HANG_S
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no such push from the console's websocket")
            message = self.connection.recv(timeout=left)
            text = message if isinstance(message, str) else message.decode()
            if where(text):
                return text

    def close(self) -> None:
        self._exit.close()

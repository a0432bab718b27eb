"""What the gateway says about each request it finished, served or not, and who hears it.

The gateway builds one `RequestRecord` per request and announces it; the apps that keep
something of it (analytics writes the request log) connect a listener in their
`AppConfig.ready`, so the gateway depends on none of them.

The listeners are a plain list called in order, not a Django `Signal`: this runs once per
request on the event loop, and a direct call costs about 0.3 µs where `Signal.send` costs
2 µs with its receiver cache and 4.5 µs without. A listener must not block (no I/O: queue
and return) and must not fail the request: an error it raises is logged and the next
listener still hears the record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

log = logging.getLogger(__name__)


@dataclass(slots=True)
class RequestRecord:
    at: datetime
    request_id: str
    route: str
    capability: str
    outcome: str  # success | failure | unavailable | caller_error | cancelled | deadline | stream_aborted
    status: int  # what the client got
    latency_ms: float
    provider: str = ""  # who served it ("" when nobody did)
    model: str = ""
    api_key_id: int | None = None
    ttft_ms: float | None = None
    stream: bool = False
    attempts: list[dict[str, Any]] = field(default_factory=list)
    calls: int = 0  # attempts that reached a provider
    failovers: int = 0
    retries: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    characters: int = 0
    images: int = 0
    # What the answer cost at the model's prices; None: unknown (no unit it used has a known
    # price: adapters.Usage.cost). A request nobody served costs 0.
    cost: Decimal | None = Decimal(0)
    error: str = ""  # the error class (the last reason) when it failed
    cache: str = ""  # hit | miss | bypass: what the response cache did ("" when the route has none)
    saved: Decimal = Decimal(0)  # a cache hit: what the kept answer cost when a provider made it
    # Not a column: the route name the rollups count this request under (analytics/dimensions.py);
    # None: `route` itself. The raw row always keeps `route`.
    rollup_route: str | None = None
    # Not columns: the caller's body and the answer it got, scrubbed and bounded (kept_bodies.py);
    # None unless REQUEST_BODY_RETENTION_DAYS keeps bodies (analytics keeps them apart: RequestBody).
    request_body: str | None = None
    response_body: str | None = None


RequestListener = Callable[[RequestRecord], None]
_listeners: list[RequestListener] = []


def on_request_finished(listener: RequestListener) -> RequestListener:
    """Hear every finished request (connect once, in an `AppConfig.ready`)."""
    if listener not in _listeners:
        _listeners.append(listener)
    return listener


def announce(record: RequestRecord) -> None:
    """Hand `record` to every listener, in the order they connected."""
    for listener in _listeners:
        try:
            listener(record)
        except Exception:  # bookkeeping must not fail a request that was answered
            log.exception(
                "request listener %r failed on request %s",
                getattr(listener, "__qualname__", listener),
                record.request_id,
            )

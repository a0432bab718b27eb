"""What the gateway records about each request it served (or failed to serve)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any


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
    cost: Decimal = Decimal(0)
    error: str = ""  # the error class (the last reason) when it failed

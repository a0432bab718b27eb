"""Models of the health API's answers, for the OpenAPI document."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from .models import EVENT_TYPES


class HealthLatency(BaseModel):
    p50: float | None
    p95: float | None


class HealthEntry(BaseModel):
    name: str
    kind: str
    status: Literal["healthy", "degraded", "unhealthy", "unknown", "disabled", "maintenance"]
    reason: str
    score: float | None
    score_parts: dict[str, float]
    breaker: Literal["closed", "open", "half_open", "forced_open", "disabled"]
    success_rate: float | None
    calls: int
    latency_ms: HealthLatency
    last_check_at: str | None
    last_check_ok: bool | None
    last_error: str
    cooldowns: list[dict[str, Any]]
    enabled: bool
    maintenance: bool


class LastProbe(BaseModel):
    """The provider's latest probe. `detail` is what its server reported: `version` (Ollama),
    `models` (how many it has), `ram_free_gb` and `vram_free_gb` (SD WebUI), `tokens` or
    `images` for a deep probe; absent where the server does not say."""

    at: str
    ok: bool
    slow: bool
    latency_ms: float
    error: str
    detail: dict[str, Any]


class HealthDetail(HealthEntry):
    probe: LastProbe | None


class FleetSummary(BaseModel):
    """How many providers are in each status, and the traffic-weighted mean score of the
    enabled ones (weighted by the calls in their rolling windows; a plain mean while none has
    calls; null when none has a score)."""

    total: int
    healthy: int
    degraded: int
    unhealthy: int
    unknown: int
    disabled: int
    maintenance: int
    score: float | None


class HealthList(BaseModel):
    summary: FleetSummary
    providers: list[HealthEntry]


class StatisticsReset(BaseModel):
    provider: str
    calls: int
    success_rate: float | None
    consecutive_failures: int
    event_id: int


Event = Literal[
    "breaker.opened",
    "breaker.half_open",
    "breaker.closed",
    "provider.status",
    "provider.maintenance",
    "credential.rejected",
    "credential.exhausted",
    "alert.sent",
    "breaker.mode",
    "credential.rate_limited",
    "model.missing",
    "alert.failed",
    "provider.enabled",
    "provider.disabled",
    "health.reset",
    "provider.action",
    "request.failed",
    "incident.opened",
    "incident.acknowledged",
    "incident.resolved",
]
assert set(get_args(Event)) == set(EVENT_TYPES), "the documented names are the feed's"


class HealthEventItem(BaseModel):
    """One event (health/feed.py names them). `detail` is {} except for request.failed:
    {route, request_id, providers, skipped, error, status, count}."""

    model_config = ConfigDict(populate_by_name=True)

    id: int
    event: Event
    provider: str
    from_: str = Field(alias="from")
    to: str
    reason: str
    at: str
    actor: str
    detail: dict[str, Any]


class EventPage(BaseModel):
    events: list[HealthEventItem]
    next_cursor: str | None


class CheckResult(BaseModel):
    provider: str
    ok: bool
    slow: bool
    latency_ms: float
    error: str
    detail: dict[str, Any]
    at: str


class CheckResults(BaseModel):
    results: list[CheckResult]


class IncidentItem(BaseModel):
    """One incident (health/incidents.py) and its timeline: the provider's events while it was
    open, oldest first (the newest 200)."""

    id: int
    provider: str
    state: Literal["open", "resolved"]
    opened_at: str
    resolved_at: str | None
    reason: str
    resolution: str
    acknowledged_by: str
    acknowledged_at: str | None
    muted_until: str | None
    events: list[HealthEventItem]


class IncidentList(BaseModel):
    incidents: list[IncidentItem]


class MuteRequest(BaseModel):
    """How long to mute the incident's alerts, in minutes (0 ends a mute)."""

    model_config = ConfigDict(strict=True)
    minutes: float = Field(ge=0, le=7 * 24 * 60)

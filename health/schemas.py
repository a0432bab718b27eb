"""Models of the health API's answers, for the OpenAPI document."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel


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


class HealthList(BaseModel):
    providers: list[HealthEntry]


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

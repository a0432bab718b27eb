"""Answers of the analytics API, for the OpenAPI document (providers/openapi.py)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Latency(BaseModel):
    """Latency of what reached a provider: requests with at least one attempt sent (route
    figures) or attempts (provider figures). Requests refused before any provider was called
    (every target skipped, no target, refused at the edge) count in `requests`, not here."""

    avg: float | None = Field(description="mean, ms")
    p50: float | None = Field(description="median from the rollups' histogram (within one ~20% bucket), ms")
    p95: float | None
    p99: float | None


class Ttft(BaseModel):
    avg: float | None = Field(description="mean time to first token of streams, ms")


class Usage(BaseModel):
    tokens_in: int
    tokens_out: int
    characters: int
    images: int
    cost: float = Field(description="in the price unit of the model catalog: the answers of known cost")
    cost_unknown: int = Field(description="answers whose cost is unknown (no known price): not in `cost`")


class RouteFigures(Usage):
    """Client requests (of the whole gateway, or of one route)."""

    requests: int
    successes: int
    failures: int = Field(description="every target failed or was skipped, the deadline ran out, or a stream broke")
    success_rate: float | None = Field(description="successes / (successes + failures); null when both are 0")
    caller_errors: int = Field(
        description="the provider refused the request as malformed (4xx): not counted as failures"
    )
    cancelled: int = Field(description="the client went away")
    unavailable: int = Field(description="failures where every target was skipped (503)")
    deadlines: int
    failovers: int = Field(description="targets a request left for another one")
    failover_rate: float | None = Field(description="failovers / requests")
    retries: int
    calls: int = Field(description="attempts sent to providers")
    cache_hits: int = Field(description="answered from the response cache: no provider called, no cost")
    cache_saved: float = Field(description="what the cached answers cost when a provider made them")
    latency_ms: Latency = Field(
        description="end to end, of the requests that reached a provider "
        "(at least one attempt sent); null when none did"
    )
    ttft_ms: Ttft


class ProviderFigures(Usage):
    """Attempts sent to one provider (from every request's attempt list)."""

    requests: int = Field(description="attempts sent to the provider")
    successes: int
    failures: int = Field(
        description="failed attempts: errors, rate limits, exhausted credit, timeouts, broken streams"
    )
    success_rate: float | None = Field(description="successes / (successes + failures); null when both are 0")
    rate_limited: int
    exhausted: int
    deadlines: int
    caller_errors: int
    cancelled: int
    skipped: int = Field(description="times the provider was passed over (open breaker, cooldown, ...)")
    failovers: int = Field(description="times a request left this provider for another")
    failover_rate: float | None = Field(description="failovers / requests")
    retries: int
    hedges: int
    served: int = Field(description="requests whose answer came from this provider (tokens and cost are theirs)")
    latency_ms: Latency = Field(description="per attempt")


class Analytics(BaseModel):
    window: str = Field(description="5m, 1h, 24h, 7d or 30d")
    from_: str = Field(alias="from", description="start of the window (UTC, ISO 8601)")
    to: str
    total: RouteFigures
    providers: dict[str, ProviderFigures]
    routes: dict[str, RouteFigures] = Field(
        description="per route name; names the configuration did not "
        "know when the request came (a provider/model the "
        'provider does not list) are counted under "(other)"'
    )


class Point(ProviderFigures):
    at: str = Field(description="start of the step")


class Series(BaseModel):
    step_s: int
    points: list[Point]


class TopError(BaseModel):
    kind: str = Field(description="request (what clients got), attempt (what the provider answered), skip")
    provider: str
    error: str
    count: int
    share: float | None


class ProviderAnalytics(ProviderFigures):
    window: str
    from_: str = Field(alias="from")
    to: str
    provider: str
    routes: dict[str, ProviderFigures]
    series: Series
    top_errors: list[TopError]


class RequestTokens(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    in_: int = Field(alias="in")
    out: int


class RequestTimings(BaseModel):
    total_ms: float
    first_token_ms: float | None


class LoggedRequest(BaseModel):
    request_id: str
    at: str
    route: str
    capability: str
    key: str | None = Field(description="the API key's name")
    provider: str | None = Field(description="who answered (null: nobody did)")
    model: str | None
    outcome: str = Field(description="success, failure, caller_error, unavailable, deadline, cancelled, stream_aborted")
    status: int
    ok: bool
    error: str | None
    stream: bool
    calls: int
    failovers: int
    retries: int
    tokens: RequestTokens
    characters: int
    images: int
    cost: str | None = Field(
        description="in the configured price currency, as a decimal string; null: unknown (no known price)"
    )
    cache: str | None = Field(description="hit, miss or bypass; null when the route has no cache")
    saved: str = Field(description="a cache hit: what the answer cost when a provider made it")
    timings: RequestTimings


class RequestPage(BaseModel):
    requests: list[LoggedRequest]
    next_cursor: str | None = Field(description="pass as `cursor` for the next (older) page; null on the last")


class LoggedAttempt(BaseModel):
    provider: str | None
    model: str | None
    credential: str | None
    outcome: str | None
    status: int | None
    duration_ms: float | None
    skipped: str | None = Field(description="why the target was skipped (no call was sent)")
    reason: str | None
    error: str | None
    hedge: bool


class RequestDetail(LoggedRequest):
    attempts: list[LoggedAttempt]
    request_body: str | None = Field(
        default=None,
        description="admin keys only (left out for others): the caller's body as kept, scrubbed of credentials "
        "and cut at REQUEST_BODY_MAX_BYTES with a marker saying how many bytes went (an upload described, "
        "not kept); null when REQUEST_BODY_RETENTION_DAYS is 0 (the default) or none was kept for this request",
    )
    response_body: str | None = Field(
        default=None,
        description="admin keys only (left out for others): the answer as the caller got it, kept like "
        "`request_body` (a stream: its server-sent events as relayed; binary answers: their content type "
        "and size); null when not kept",
    )

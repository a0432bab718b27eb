"""Analytics storage: the raw request log (bounded by retention) and rollups built from it."""

from __future__ import annotations

from django.db import models

from .histogram import COLUMNS


class RequestLog(models.Model):
    """One gateway request, as the client saw it, with its full attempt list."""

    at = models.DateTimeField(db_index=True)
    request_id = models.CharField(max_length=64)  # ours, or the caller's own X-Request-Id
    route = models.CharField(max_length=200)
    capability = models.CharField(max_length=20)
    provider = models.CharField(max_length=64, blank=True)
    model = models.CharField(max_length=200, blank=True)
    api_key_id = models.BigIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=20)
    status = models.PositiveSmallIntegerField()
    latency_ms = models.FloatField()
    ttft_ms = models.FloatField(null=True, blank=True)
    stream = models.BooleanField(default=False)
    attempts = models.JSONField(default=list)
    calls = models.PositiveSmallIntegerField(default=0)
    failovers = models.PositiveSmallIntegerField(default=0)
    retries = models.PositiveSmallIntegerField(default=0)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    characters = models.PositiveIntegerField(default=0)
    images = models.PositiveIntegerField(default=0)
    # What the answer cost at the model's prices; NULL: unknown (a unit it used has no known price).
    cost = models.DecimalField(max_digits=14, decimal_places=8, default=0, null=True, blank=True)
    error = models.CharField(max_length=100, blank=True)
    cache = models.CharField(max_length=8, blank=True)  # hit | miss | bypass; "" when the route has no cache
    saved = models.DecimalField(max_digits=14, decimal_places=8, default=0)  # what a cache hit saved

    class Meta:
        # Each filter of the request log API (analytics/requests.py) is a range scan on one of these.
        indexes = [
            models.Index(fields=["provider", "at"]),
            models.Index(fields=["route", "at"]),
            models.Index(fields=["api_key_id", "at"], name="analytics_r_key_at"),
            models.Index(fields=["outcome", "at"], name="analytics_r_outcome_at"),
            models.Index(fields=["request_id"], name="analytics_r_request_id"),
            # status=failed: only the failed rows, so a page never walks the successes
            models.Index(fields=["at"], condition=~models.Q(outcome="success"), name="analytics_r_failed_at"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.route} {self.provider or '-'} {self.outcome} {self.status}"


class RequestBody(models.Model):
    """What one request sent and got back, kept apart from the narrow RequestLog (whose pages
    must stay one index scan at ten million rows) and only while REQUEST_BODY_RETENTION_DAYS
    keeps bodies: the caller's body and the answer as relayed, scrubbed of credentials and
    bounded by REQUEST_BODY_MAX_BYTES (providers/gateway/kept_bodies.py). Written in the same
    batch and transaction as its RequestLog row, and found by that row's (request_id, at)."""

    at = models.DateTimeField(db_index=True)
    request_id = models.CharField(max_length=64)
    request_body = models.TextField(blank=True)
    response_body = models.TextField(blank=True)  # "": nothing was sent back (the client left first)

    class Meta:
        indexes = [models.Index(fields=["request_id", "at"], name="analytics_body_request_at")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.request_id}"


class Granularity(models.TextChoices):
    MINUTE = "m", "minute"
    HOUR = "h", "hour"
    DAY = "d", "day"


def _histogram_fields() -> dict[str, models.Field]:
    return {name: models.PositiveBigIntegerField(default=0) for name in COLUMNS}


class Rollup(models.Model):
    """What every rollup row has: its time bucket, counters and a latency histogram.

    Rows are only ever added to with atomic increments (analytics/rollups.py), never read and
    written back, so several processes can write the same row at once.
    """

    granularity = models.CharField(max_length=1, choices=Granularity.choices)
    bucket = models.DateTimeField()  # the start of the minute, hour or day (UTC)
    route = models.CharField(max_length=200)
    provider = models.CharField(max_length=64, blank=True)
    latency_sum_ms = models.FloatField(default=0)
    tokens_in = models.PositiveBigIntegerField(default=0)
    tokens_out = models.PositiveBigIntegerField(default=0)
    characters = models.PositiveBigIntegerField(default=0)
    images = models.PositiveBigIntegerField(default=0)
    cost_nano = models.BigIntegerField(default=0)  # in 1e-9 of the price unit: exact sums
    # Answers whose cost is unknown (no known price for a unit they used): not in cost_nano,
    # where they would read as free, but counted here, so a sum says how much it leaves out.
    cost_unknown = models.PositiveBigIntegerField(default=0)
    # h00..h74: the latency histogram (analytics/histogram.py), one integer column per bucket
    # so that adding to it is an atomic `SET h07 = h07 + 1` and a window's sums are plain SUMs.
    locals().update(_histogram_fields())

    class Meta:
        abstract = True


class RouteRollup(Rollup):
    """Client requests per route and the provider that served them ("" when none did)."""

    requests = models.PositiveBigIntegerField(default=0)
    successes = models.PositiveBigIntegerField(default=0)
    failures = models.PositiveBigIntegerField(default=0)  # every target failed
    unavailable = models.PositiveBigIntegerField(default=0)  # every target was skipped
    deadlines = models.PositiveBigIntegerField(default=0)
    stream_aborted = models.PositiveBigIntegerField(default=0)
    caller_errors = models.PositiveBigIntegerField(default=0)
    cancelled = models.PositiveBigIntegerField(default=0)
    calls = models.PositiveBigIntegerField(default=0)  # attempts sent to providers
    failovers = models.PositiveBigIntegerField(default=0)
    retries = models.PositiveBigIntegerField(default=0)
    ttft_sum_ms = models.FloatField(default=0)
    ttft_count = models.PositiveBigIntegerField(default=0)
    cache_hits = models.PositiveBigIntegerField(default=0)  # answered from the response cache: no call, no cost
    cache_saved_nano = models.BigIntegerField(default=0)  # what those answers cost when a provider made them

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["granularity", "bucket", "route", "provider"], name="analytics_routerollup_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.granularity} {self.bucket:%Y-%m-%d %H:%M} {self.route} {self.provider or '-'}"


class ProviderRollup(Rollup):
    """Attempts sent to a provider on behalf of a route (from each request's attempt list)."""

    attempts = models.PositiveBigIntegerField(default=0)
    successes = models.PositiveBigIntegerField(default=0)
    failures = models.PositiveBigIntegerField(default=0)
    rate_limited = models.PositiveBigIntegerField(default=0)
    exhausted = models.PositiveBigIntegerField(default=0)
    deadlines = models.PositiveBigIntegerField(default=0)
    stream_aborted = models.PositiveBigIntegerField(default=0)
    caller_errors = models.PositiveBigIntegerField(default=0)
    cancelled = models.PositiveBigIntegerField(default=0)
    skipped = models.PositiveBigIntegerField(default=0)  # targets passed over (open breaker, cooldown...)
    hedges = models.PositiveBigIntegerField(default=0)
    failovers = models.PositiveBigIntegerField(default=0)  # the request moved on to another provider
    retries = models.PositiveBigIntegerField(default=0)
    served = models.PositiveBigIntegerField(default=0)  # requests whose answer came from it

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["granularity", "bucket", "provider", "route"], name="analytics_providerrollup_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.granularity} {self.bucket:%Y-%m-%d %H:%M} {self.provider} {self.route}"


class ErrorRollup(models.Model):
    """How often each error reason was seen: on requests (what clients got), on attempts (what
    a provider answered) and on skips (why a target was passed over)."""

    class Kind(models.TextChoices):
        REQUEST = "request"
        ATTEMPT = "attempt"
        SKIP = "skip"

    granularity = models.CharField(max_length=1, choices=Granularity.choices)
    bucket = models.DateTimeField()
    kind = models.CharField(max_length=7, choices=Kind.choices)
    provider = models.CharField(max_length=64, blank=True)
    route = models.CharField(max_length=200)
    error = models.CharField(max_length=100)
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["granularity", "bucket", "kind", "provider", "route", "error"], name="analytics_errorrollup_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.granularity} {self.bucket:%Y-%m-%d %H:%M} {self.kind} {self.provider} {self.error}: {self.count}"


class LogQuarantine(models.Model):
    """Request records a database refused as they were, counted per cause (the exception's
    class) for ever: `gateway_request_log_quarantined_total` on /metrics.

    `degraded` counts those written in their degraded form (ASCII text, analytics/records.py),
    so the request still counts; the rest are held in the writing process's memory. The last
    one's request id and the database's message say where to look.
    """

    cause = models.CharField(max_length=100, unique=True)
    count = models.PositiveBigIntegerField(default=0)
    degraded = models.PositiveBigIntegerField(default=0)
    last_at = models.DateTimeField()
    last_request_id = models.CharField(max_length=64, blank=True)
    last_message = models.CharField(max_length=500, blank=True)

    class Meta:
        verbose_name_plural = "log quarantine"

    def __str__(self) -> str:
        return f"{self.cause}: {self.count} ({self.degraded} degraded)"

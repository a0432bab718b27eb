"""Rollups of the request log per minute, hour and day, written with the raw rows.

Each batch of records is first summed in memory (one row per time bucket and dimension),
then added to the rollup tables with `INSERT ... ON CONFLICT DO UPDATE SET c = c + excluded.c`
in the caller's transaction: an atomic increment on SQLite and PostgreSQL alike, so several
processes can add to the same row at once and every request is counted exactly once (the raw
rows and their rollups commit or roll back together). Rows are written in key order so two
PostgreSQL transactions never wait on each other's rows in opposite orders.

Two perspectives, both with the route dimension:
- `RouteRollup` (route, serving provider): client requests by outcome, failovers, retries,
  end-to-end latency, time to first token, tokens and cost (known costs summed in
  `cost_nano`, answers of unknown cost counted in `cost_unknown`);
- `ProviderRollup` (provider, route): the attempts sent to a provider from each request's
  attempt list, by outcome, skips, failovers away from it, retries on it, attempt latency,
  and the tokens and cost of the answers it served.
`ErrorRollup` counts error reasons (of requests, attempts and skips) for "top errors".

The route dimension is bounded: a record counts under its `rollup_route` when the gateway set
one (analytics/dimensions.py: names the configuration does not know collapse into "(other)").
Latency (sum and histogram) counts only requests that reached a provider (at least one
attempt sent): a request refused before any call (every target skipped, no target, refused
at the edge) took the gateway a millisecond, and counting it would read as a fast provider.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.db import connections, router
from django.db.models import Model

from providers.engine import Hops, count_hops

from . import histogram
from .models import ErrorRollup, Granularity, ProviderRollup, RouteRollup
from .records import RequestRecord, clamp_ms

COMMON = ("latency_sum_ms", "tokens_in", "tokens_out", "characters", "images", "cost_nano", "cost_unknown")
ROUTE_VALUES: tuple[str, ...] = (
    "requests",
    "successes",
    "failures",
    "unavailable",
    "deadlines",
    "stream_aborted",
    "caller_errors",
    "cancelled",
    "calls",
    "failovers",
    "retries",
    "ttft_sum_ms",
    "ttft_count",
    "cache_hits",
    "cache_saved_nano",
    *COMMON,
    *histogram.COLUMNS,
)
PROVIDER_VALUES: tuple[str, ...] = (
    "attempts",
    "successes",
    "failures",
    "rate_limited",
    "exhausted",
    "deadlines",
    "stream_aborted",
    "caller_errors",
    "cancelled",
    "skipped",
    "hedges",
    "failovers",
    "retries",
    "served",
    *COMMON,
    *histogram.COLUMNS,
)
ROUTE_KEY = ("granularity", "bucket", "route", "provider")
PROVIDER_KEY = ("granularity", "bucket", "provider", "route")
ERROR_KEY = ("granularity", "bucket", "kind", "provider", "route", "error")

R = {name: i for i, name in enumerate(ROUTE_VALUES)}
P = {name: i for i, name in enumerate(PROVIDER_VALUES)}
R_HIST = R[histogram.COLUMNS[0]]
P_HIST = P[histogram.COLUMNS[0]]

REQUEST_OUTCOMES = {
    "success": "successes",
    "failure": "failures",
    "unavailable": "unavailable",
    "deadline": "deadlines",
    "stream_aborted": "stream_aborted",
    "caller_error": "caller_errors",
    "cancelled": "cancelled",
}
ATTEMPT_OUTCOMES = {
    "success": "successes",
    "failure": "failures",
    "rate_limited": "rate_limited",
    "exhausted": "exhausted",
    "deadline": "deadlines",
    "stream_aborted": "stream_aborted",
    "caller_error": "caller_errors",
    "cancelled": "cancelled",
    # The provider refused our key or lacks the model: no outage, but that attempt on that
    # provider failed, and its success rate says so (health shows why).
    "credential_rejected": "failures",
    "target_misconfigured": "failures",
}
NANO = Decimal(10**9)
# Attempt lists are JSON: their names are cut to the rollup columns here.
PROVIDER_LENGTH = ProviderRollup._meta.get_field("provider").max_length or 64
ERROR_LENGTH = ErrorRollup._meta.get_field("error").max_length or 100

Sparse = tuple[tuple[int, float], ...]  # (column index, amount) pairs


class Contribution:
    """What one request adds to the rollups, independent of its time bucket."""

    __slots__ = ("errors", "providers", "route", "route_values")

    def __init__(
        self,
        route: tuple[str, str],
        route_values: Sparse,
        providers: list[tuple[tuple[str, str], Sparse]],
        errors: list[tuple[str, str, str, str]],
    ) -> None:
        self.route = route  # (route, serving provider)
        self.route_values = route_values
        self.providers = providers  # ((provider, route), values)
        self.errors = errors  # (kind, provider, route, error)


def nano(cost: Decimal | float | int) -> int:
    return int(Decimal(cost) * NANO) if isinstance(cost, Decimal | int) else int(Decimal(str(cost)) * NANO)


def _text(value: Any, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else "" if value is None else str(value)[:limit]


def contribution(r: RequestRecord) -> Contribution:
    """The rollup amounts of one request record."""
    attempts = r.attempts or []
    route = r.rollup_route if r.rollup_route is not None else r.route
    sent = [a for a in attempts if not a.get("skipped")]
    served = (r.provider, r.model) if r.provider else None
    # The engine's one definition of failovers and retries (`providers.engine.Hops`), per target.
    hops = count_hops(((_text(a.get("provider"), PROVIDER_LENGTH), _text(a.get("model"), 200)) for a in sent), served)
    errors: list[tuple[str, str, str, str]] = []
    per_provider = _provider_values(r, attempts, hops, route, errors)
    if r.outcome != "success":
        errors.append(("request", "", route, _text(r.error or r.outcome, ERROR_LENGTH)))
    return Contribution(
        (route, r.provider),
        tuple(_route_values(r, len(sent), hops)),
        [((provider, route), tuple(values.items())) for provider, values in per_provider.items()],
        errors,
    )


def _route_values(r: RequestRecord, calls: int, hops: Hops) -> list[tuple[int, float]]:
    values: list[tuple[int, float]] = [(R["requests"], 1), (R[REQUEST_OUTCOMES.get(r.outcome, "failures")], 1)]
    if calls:  # latency is that of requests that reached a provider (module docstring)
        latency = clamp_ms(r.latency_ms)
        values += [(R["latency_sum_ms"], latency), (R_HIST + histogram.bucket_of(latency), 1), (R["calls"], calls)]
    if hops.failovers:
        values.append((R["failovers"], hops.failovers))
    if hops.retries:
        values.append((R["retries"], hops.retries))
    if r.ttft_ms is not None:
        values += [(R["ttft_sum_ms"], r.ttft_ms), (R["ttft_count"], 1)]
    if r.cache == "hit":
        values.append((R["cache_hits"], 1))
        if r.saved:
            values.append((R["cache_saved_nano"], nano(r.saved)))
    return values + _usage(r, R)


def _provider_values(
    r: RequestRecord, attempts: list[dict[str, Any]], hops: Hops, route: str, errors: list[tuple[str, str, str, str]]
) -> dict[str, dict[int, float]]:
    """Per provider: column index -> amount; skips and failed attempts also go to `errors`."""
    per_provider: dict[str, dict[int, float]] = {}

    def add(provider: str, index: int, amount: float) -> None:
        values = per_provider.setdefault(provider, {})
        values[index] = values.get(index, 0) + amount

    for a in attempts:
        provider = _text(a.get("provider"), PROVIDER_LENGTH)
        if a.get("skipped"):
            add(provider, P["skipped"], 1)
            errors.append(("skip", provider, route, _text(a["skipped"], ERROR_LENGTH)))
            continue
        outcome = _text(a.get("outcome"), 20) or "failure"
        duration = clamp_ms(a.get("duration_ms"))
        add(provider, P["attempts"], 1)
        add(provider, P[ATTEMPT_OUTCOMES.get(outcome, "failures")], 1)
        add(provider, P["latency_sum_ms"], duration)
        add(provider, P_HIST + histogram.bucket_of(duration), 1)
        if a.get("hedge"):
            add(provider, P["hedges"], 1)
        if outcome not in ("success", "cancelled"):
            errors.append(("attempt", provider, route, _text(a.get("reason") or outcome, ERROR_LENGTH)))
    for target in hops.left:
        add(target[0], P["failovers"], 1)
    for target, calls in hops.calls.items():
        if calls > 1:
            add(target[0], P["retries"], calls - 1)
    if r.provider:
        add(r.provider, P["served"], 1)
        for index, amount in _usage(r, P):
            add(r.provider, index, amount)
    return per_provider


def _usage(r: RequestRecord, columns: dict[str, int]) -> list[tuple[int, float]]:
    out: list[tuple[int, float]] = []
    for name in ("tokens_in", "tokens_out", "characters", "images"):
        value = getattr(r, name)
        if value:
            out.append((columns[name], value))
    if r.cost is None:  # unknown: counted apart, never summed as 0
        out.append((columns["cost_unknown"], 1))
        return out
    cost = nano(r.cost) if r.cost else 0
    if cost:
        out.append((columns["cost_nano"], cost))
    return out


def truncate(at: datetime, granularity: str) -> datetime:
    """The start of the minute, hour or day (UTC) that holds `at`."""
    at = at.astimezone(UTC) if at.tzinfo is not None else at.replace(tzinfo=UTC)
    if granularity == Granularity.MINUTE:
        return at.replace(second=0, microsecond=0)
    if granularity == Granularity.HOUR:
        return at.replace(minute=0, second=0, microsecond=0)
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


class Accumulator:
    """Sums contributions per minute in memory, then writes minute, hour and day rows."""

    def __init__(self) -> None:
        self.routes: dict[tuple[datetime, str, str], list[float]] = {}
        self.providers: dict[tuple[datetime, str, str], list[float]] = {}
        self.errors: dict[tuple[datetime, str, str, str, str], int] = {}

    def add(self, minute: datetime, c: Contribution, times: int = 1) -> None:
        """Add `times` requests that contribute `c`, in the bucket starting at `minute`."""
        route_key = (minute, *c.route)
        row = self.routes.get(route_key)
        if row is None:
            row = self.routes[route_key] = [0] * len(ROUTE_VALUES)
        for index, amount in c.route_values:
            row[index] += amount * times
        for dims, values in c.providers:
            provider_key = (minute, *dims)
            row = self.providers.get(provider_key)
            if row is None:
                row = self.providers[provider_key] = [0] * len(PROVIDER_VALUES)
            for index, amount in values:
                row[index] += amount * times
        for error in c.errors:
            error_key = (minute, *error)
            self.errors[error_key] = self.errors.get(error_key, 0) + times

    def add_record(self, record: RequestRecord) -> None:
        self.add(truncate(record.at, Granularity.MINUTE), contribution(record))

    def rows(self, granularity: str, since: datetime | None = None) -> tuple[list[tuple], list[tuple], list[tuple]]:
        """Route, provider and error rows of one granularity (buckets from `since` on)."""
        return (
            _fold(self.routes, granularity, since),
            _fold(self.providers, granularity, since),
            _fold(self.errors, granularity, since),
        )

    def write(self, *, using: str | None = None, since: dict[str, datetime | None] | None = None) -> None:
        """Add everything summed so far to the rollup tables (in the caller's transaction)."""
        since = since or {}
        for granularity in Granularity.values:
            if granularity in since and since[granularity] is None:
                continue
            routes, providers, errors = self.rows(granularity, since.get(granularity))
            upsert(RouteRollup, ROUTE_KEY, ROUTE_VALUES, routes, using=using)
            upsert(ProviderRollup, PROVIDER_KEY, PROVIDER_VALUES, providers, using=using)
            upsert(ErrorRollup, ERROR_KEY, ("count",), errors, using=using)


def _fold(rows: dict[tuple, Any], granularity: str, since: datetime | None) -> list[tuple]:
    out: dict[tuple, Any] = {}
    for key, values in rows.items():
        bucket = truncate(key[0], granularity)
        if since is not None and bucket < since:
            continue
        folded = (granularity, bucket, *key[1:])
        current = out.get(folded)
        if current is None:
            out[folded] = values
        elif isinstance(values, int):
            out[folded] = current + values
        else:
            out[folded] = list(map(operator.add, current, values))
    return [(*key, *(values if isinstance(values, list) else (values,))) for key, values in sorted(out.items())]


def upsert(
    model: type[Model], key: Sequence[str], values: Sequence[str], rows: Iterable[tuple], *, using: str | None = None
) -> int:
    """Add `rows` (key fields then value fields) to `model`'s table with atomic increments."""
    rows = list(rows)
    if not rows:
        return 0
    connection = connections[using or router.db_for_write(model)]
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    columns = ", ".join(qn(c) for c in (*key, *values))
    marks = ", ".join(["%s"] * (len(key) + len(values)))
    sets = ", ".join(f"{qn(c)} = {table}.{qn(c)} + EXCLUDED.{qn(c)}" for c in values)
    sql = (
        f"INSERT INTO {table} ({columns}) VALUES ({marks}) "
        f"ON CONFLICT ({', '.join(qn(c) for c in key)}) DO UPDATE SET {sets}"
    )
    adapt = connection.ops.adapt_datetimefield_value
    params = [(row[0], adapt(row[1]), *row[2:]) for row in rows]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)
    return len(rows)


def add_to_rollups(records: list[RequestRecord], *, using: str | None = None) -> None:
    """Add a batch of request records to the minute, hour and day rollups.

    Call it inside the transaction that writes the records' raw rows (recorder.write_batch).
    """
    if not records:
        return
    accumulator = Accumulator()
    for record in records:
        accumulator.add_record(record)
    accumulator.write(using=using)

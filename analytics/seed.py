"""Realistic request history, made fast: for trying the console and for the benchmark.

Requests are drawn from a few thousand simulated *templates* per route (a fallback chain of
providers with their own latency, failure and rate-limit behaviour, retries, skips, caller
errors, streams, tokens and prices), a few outages in which the first provider of a route
mostly fails (so failovers come in bursts, as they do), and a daily rhythm of traffic. Each
template's raw row and rollup contribution are computed once; rows are then written with one
prepared INSERT per batch and the rollups summed in memory a day at a time, never through the
per-request path. Minute and hour rollups are written only where retention keeps them.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connections, router, transaction

from providers.engine import count_hops

from .models import Granularity, RequestLog
from .records import RequestRecord
from .retention import cutoffs
from .rollups import Accumulator, Contribution, contribution

DEFAULT_PROVIDERS = ("openai-main", "anthropic-main", "groq-fast", "together-backup", "local-ollama")


@dataclass(frozen=True)
class Profile:
    """How one simulated provider behaves."""

    name: str
    model: str
    median_ms: float
    sigma: float
    fail: float  # share of attempts that fail (5xx, timeouts, refused connections)
    limited: float  # share that are rate limited (429)
    price_in: Decimal  # per million tokens
    price_out: Decimal


@dataclass(frozen=True)
class RouteShape:
    name: str
    capability: str
    chain: tuple[int, ...]  # indexes into the providers
    share: float  # of all traffic
    tokens_in: float  # median
    tokens_out: float
    stream: float  # share of streamed requests


BEHAVIOURS = (  # (model, median ms, sigma, fail, limited, $ in, $ out) cycled over the names
    ("gpt-4o-mini", 650, 0.55, 0.010, 0.006, "0.15", "0.60"),
    ("claude-3-5-haiku", 900, 0.5, 0.015, 0.004, "0.80", "4.00"),
    ("llama-3.1-8b-instant", 220, 0.45, 0.020, 0.015, "0.05", "0.08"),
    ("meta-llama-3.1-70b", 1300, 0.6, 0.025, 0.005, "0.88", "0.88"),
    ("llama3.2", 1800, 0.7, 0.040, 0.0, "0", "0"),
)
FAILURES = (("http_500", 500), ("http_502", 502), ("http_503", 503), ("timeout", None), ("connect_error", None))


def profiles(names: Sequence[str]) -> list[Profile]:
    out = []
    for i, name in enumerate(names):
        model, median, sigma, fail, limited, p_in, p_out = BEHAVIOURS[i % len(BEHAVIOURS)]
        out.append(Profile(name, model, median, sigma, fail, limited, Decimal(p_in), Decimal(p_out)))
    return out


def routes_for(n: int) -> list[RouteShape]:
    """Four routes whose chains start at different providers, so every provider serves some."""

    def chain(*picks: int) -> tuple[int, ...]:
        seen: list[int] = []
        for p in picks:
            if p % n not in seen:
                seen.append(p % n)
        return tuple(seen)

    return [
        RouteShape("default", "chat", chain(0, 1, 4), 0.55, 400, 250, 0.4),
        RouteShape("fast", "chat", chain(2, 0), 0.25, 200, 80, 0.6),
        RouteShape("long-context", "chat", chain(1, 3, 0), 0.08, 6000, 700, 0.2),
        RouteShape("embeddings", "embeddings", chain(3, 4, 2), 0.12, 300, 0, 0.0),
    ]


class Template:
    __slots__ = ("contribution", "row")

    def __init__(self, row: tuple[Any, ...], c: Contribution) -> None:
        self.row = row
        self.contribution = c


@dataclass
class _Walk:
    """One simulated request on its way along the route's chain."""

    elapsed: float  # ms so far, the gateway's own time included
    attempts: list[dict[str, Any]] = field(default_factory=list)
    sent: int = 0
    served: Profile | None = None  # the provider that answered (success or caller error)
    outcome: str = "failure"
    error: str = ""


_STATUSES = {"success": 200, "caller_error": 400, "unavailable": 503, "cancelled": 499, "stream_aborted": 200}
_MAX_CALLS, _TRIES_PER_PROVIDER = 3, 2


def simulate(route: RouteShape, providers: list[Profile], rng: random.Random, outage: int | None) -> RequestRecord:
    """One request along the route's chain (at most 3 attempts, 2 per provider)."""
    walk = _Walk(elapsed=rng.uniform(0.5, 3.0))
    stream = rng.random() < route.stream
    tokens_in = max(1, int(rng.lognormvariate(math.log(route.tokens_in), 0.6)))
    for index in route.chain:
        p = providers[index]
        if rng.random() < (0.35 if outage == index else 0.004):
            walk.attempts.append(_attempt(p, None, 0.0, None, skipped=rng.choice(("open", "cooldown"))))
            continue
        _try_provider(walk, p, rng, outage == index, tokens_in)
        if walk.served is not None or walk.sent >= _MAX_CALLS:
            break
    _settle(walk, stream, rng)
    return _record(route, walk, stream, tokens_in, rng)


def _try_provider(walk: _Walk, p: Profile, rng: random.Random, down: bool, tokens_in: int) -> None:
    """Up to two calls to `p` while the request has calls left; a retry only after a failure."""
    for _try in range(_TRIES_PER_PROVIDER):
        if walk.sent >= _MAX_CALLS or not _call(walk, p, rng, down, tokens_in):
            return


def _call(walk: _Walk, p: Profile, rng: random.Random, down: bool, tokens_in: int) -> bool:
    """One call to `p` (in an outage of `p` when `down`): True if it failed and may be retried."""
    walk.sent += 1
    ms = rng.lognormvariate(math.log(p.median_ms * max(1.0, tokens_in / 2000) ** 0.3), p.sigma)
    u = rng.random()
    fail = 0.85 if down else p.fail
    if u < 0.004:
        walk.attempts.append(_attempt(p, "caller_error", ms * 0.2, 400, reason="http_400"))
        walk.elapsed += ms * 0.2
        walk.served, walk.outcome, walk.error = p, "caller_error", "http_400"
        return False
    if u < 0.004 + fail:
        reason, status = rng.choice(FAILURES)
        ms = p.median_ms * 8 if reason == "timeout" else ms * (0.05 if reason == "connect_error" else 0.4)
        walk.attempts.append(_attempt(p, "failure", ms, status, reason=reason))
        walk.elapsed += ms + rng.uniform(50, 400)  # the backoff before the next try
        return True
    if u < 0.004 + fail + p.limited:
        walk.attempts.append(_attempt(p, "rate_limited", ms * 0.05, 429, reason="rate_limited"))
        walk.elapsed += ms * 0.05
        return False  # a rate-limited provider is left at once
    walk.attempts.append(_attempt(p, "success", ms, 200))
    walk.elapsed += ms
    walk.served, walk.outcome = p, "success"
    return False


def _settle(walk: _Walk, stream: bool, rng: random.Random) -> None:
    """The request's outcome once the chain is done: nothing usable, or a success the caller
    (or the stream) lost on the way back."""
    if walk.served is None:
        if not any(a["skipped"] is None for a in walk.attempts):
            walk.outcome, walk.error = "unavailable", "no_target_available"
        else:
            walk.error = next(a["reason"] for a in reversed(walk.attempts) if a["skipped"] is None)
    elif walk.outcome == "success" and rng.random() < 0.003:
        walk.outcome, walk.error = "cancelled", "client_disconnected"
    elif walk.outcome == "success" and stream and rng.random() < 0.004:
        walk.outcome, walk.error = "stream_aborted", "ReadError"


def _record(route: RouteShape, walk: _Walk, stream: bool, tokens_in: int, rng: random.Random) -> RequestRecord:
    """The request as the gateway records it: tokens and cost only for an answer."""
    served = walk.served
    ok = walk.outcome in ("success", "stream_aborted")
    # as the gateway records them: the engine's counts (`count_hops`), served or not
    hops = count_hops(
        ((a["provider"], a["model"]) for a in walk.attempts if a["skipped"] is None),
        (served.name, served.model) if served is not None else None,
    )
    tokens_out = max(1, int(rng.lognormvariate(math.log(route.tokens_out), 0.7))) if ok and route.tokens_out else 0
    cost = Decimal(0)
    if ok and served is not None:
        cost = ((tokens_in * served.price_in + tokens_out * served.price_out) / 1_000_000).quantize(Decimal("1e-8"))
    return RequestRecord(
        at=datetime(2000, 1, 1, tzinfo=UTC),
        request_id="",
        route=route.name,
        capability=route.capability,
        outcome=walk.outcome,
        status=_STATUSES.get(walk.outcome, 502),
        latency_ms=round(walk.elapsed, 3),
        provider=served.name if served else "",
        model=served.model if served else "",
        api_key_id=None,
        ttft_ms=round(walk.elapsed * rng.uniform(0.15, 0.4), 3) if stream and ok else None,
        stream=stream and route.capability == "chat",
        attempts=walk.attempts,
        calls=walk.sent,
        failovers=hops.failovers,
        retries=hops.retries,
        tokens_in=tokens_in if ok else 0,
        tokens_out=tokens_out,
        cost=cost,
        error=walk.error,
    )


def _attempt(
    p: Profile, outcome: str | None, ms: float, status: int | None, *, skipped: str | None = None, reason: str = ""
) -> dict[str, Any]:
    return {
        "provider": p.name,
        "model": p.model,
        "credential": "1" if skipped is None else None,
        "outcome": outcome,
        "status": status,
        "duration_ms": round(ms, 3),
        "skipped": skipped,
        "reason": reason,
        "error": "",
        "hedge": False,
    }


ROW_FIELDS = (
    "route",
    "capability",
    "provider",
    "model",
    "api_key_id",
    "outcome",
    "status",
    "latency_ms",
    "ttft_ms",
    "stream",
    "attempts",
    "calls",
    "failovers",
    "retries",
    "tokens_in",
    "tokens_out",
    "characters",
    "images",
    "cost",
    "error",
    "cache",
    "saved",
)


def templates(
    routes: list[RouteShape], providers: list[Profile], rng: random.Random, outage: int | None, per_route: int
) -> list[Template]:
    """Templates of every route, repeated in proportion to the routes' traffic."""
    out: list[Template] = []
    for route in routes:
        made = []
        for _ in range(per_route):
            r = simulate(route, providers, rng, outage)
            c = contribution(r)
            row = tuple(
                json.dumps(r.attempts, separators=(", ", ": "))
                if f == "attempts"
                else str(getattr(r, f))
                if f in ("cost", "saved")
                else getattr(r, f)
                for f in ROW_FIELDS
            )
            made.append(Template(row, c))
        out += made * max(1, round(route.share * 20))
    return out


def seed(
    rows: int,
    *,
    days: float = 30,
    providers: Sequence[str] = DEFAULT_PROVIDERS,
    rng_seed: int = 1,
    now: datetime | None = None,
    using: str | None = None,
    batch: int = 20_000,
    progress: Callable[[int, int, float], None] | None = None,
) -> int:
    """Write `rows` requests spread over the last `days` (and their rollups); returns rows written."""
    rng = random.Random(rng_seed)
    profs = profiles(list(providers))
    routes = routes_for(len(profs))
    normal = templates(routes, profs, rng, None, 1500)
    outages = {i: templates(routes, profs, rng, i, 300) for i in range(len(profs))}
    alias = using or router.db_for_write(RequestLog)
    connection = connections[alias]
    now = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    start = now - timedelta(days=days)
    minutes = int((now - start).total_seconds() // 60)
    counts = _spread(rows, minutes, start, rng)
    incidents = _incidents(minutes, len(profs), rng)
    keep = cutoffs(now)
    minute_since = keep["minute"] or start
    since: dict[str, datetime | None] = {Granularity.MINUTE: minute_since, Granularity.HOUR: keep["hour"] or start}
    sqlite = connection.vendor == "sqlite"
    qn = connection.ops.quote_name
    fields = ("at", "request_id", *ROW_FIELDS)
    sql = (
        f"INSERT INTO {qn(RequestLog._meta.db_table)} ({', '.join(qn(f) for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))})"
    )
    if sqlite and not connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA cache_size=-262144")  # 256 MB: index pages stay in memory
            cursor.execute("PRAGMA synchronous=OFF")  # a crash mid-seed loses only seed data
    written, began = 0, time.monotonic()
    minute = 0
    while minute < minutes:
        day_start = start + timedelta(minutes=minute)
        day_end = min(minutes, minute + int((_next_day(day_start) - day_start).total_seconds() // 60))
        accumulator = Accumulator()
        pending: list[tuple[Any, ...]] = []
        with transaction.atomic(using=alias), connection.cursor() as cursor:
            bucket: datetime | None = None
            drawn: Counter[Template] = Counter()
            for m in range(minute, day_end):
                n = counts[m]
                if not n:
                    continue
                at = start + timedelta(minutes=m)
                # Older than the minute rollups' retention only hours are kept: sum per hour,
                # where the same template comes up often, and add each once, times its count.
                here = at if at >= minute_since else at.replace(minute=0)
                if here != bucket:
                    _add_drawn(accumulator, bucket, drawn)
                    bucket, drawn = here, Counter()
                incident = incidents[m]
                pool = outages[incident] if incident is not None else normal
                picks = rng.choices(pool, k=n)
                drawn.update(picks)
                ids = os.urandom(8 * n).hex()
                offsets = sorted(rng.random() * 60 for _ in range(n))
                prefix = at.strftime("%Y-%m-%d %H:%M:") if sqlite else None
                for i, t in enumerate(picks):
                    stamp = f"{prefix}{offsets[i]:09.6f}" if sqlite else at + timedelta(seconds=offsets[i])
                    pending.append((stamp, ids[16 * i : 16 * i + 16], *t.row))
                if len(pending) >= batch:
                    cursor.executemany(sql, pending)
                    written += len(pending)
                    pending = []
                    if progress:
                        progress(written, rows, time.monotonic() - began)
            _add_drawn(accumulator, bucket, drawn)
            if pending:
                cursor.executemany(sql, pending)
                written += len(pending)
            accumulator.write(using=alias, since=since)
        if progress:
            progress(written, rows, time.monotonic() - began)
        minute = day_end
    return written


def _add_drawn(accumulator: Accumulator, bucket: datetime | None, drawn: Counter[Template]) -> None:
    if bucket is not None:
        for t, times in drawn.items():
            accumulator.add(bucket, t.contribution, times)


def _next_day(at: datetime) -> datetime:
    return at.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)


def _spread(rows: int, minutes: int, start: datetime, rng: random.Random) -> list[int]:
    """Rows per minute: a daily rhythm (busy afternoons, quiet nights), weekdays, noise; exact total."""
    weights = []
    for m in range(minutes):
        at = start + timedelta(minutes=m)
        hour = at.hour + at.minute / 60
        daily = 1.0 + 0.6 * math.sin((hour - 9) / 24 * 2 * math.pi)
        weekly = 0.6 if at.weekday() >= 5 else 1.0
        weights.append(daily * weekly * rng.uniform(0.8, 1.2))
    total = sum(weights)
    counts = [int(rows * w / total) for w in weights]
    for m in rng.choices(range(minutes), weights=weights, k=rows - sum(counts)):
        counts[m] += 1
    return counts


def _incidents(minutes: int, providers: int, rng: random.Random) -> list[int | None]:
    """About one outage of 20 minutes to 3 hours every four days, each of one provider."""
    out: list[int | None] = [None] * minutes
    for _ in range(round(minutes / (4 * 1440))):
        begin = rng.randrange(minutes)
        for m in range(begin, min(minutes, begin + rng.randrange(20, 180))):
            out[m] = rng.randrange(providers)
    return out

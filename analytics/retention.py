"""Retention: raw request rows and rollups older than their settings are deleted in chunks.

Defaults: raw rows 7 days (ANALYTICS_RAW_RETENTION_DAYS), minute rollups 48 hours
(ANALYTICS_MINUTE_RETENTION_HOURS), hour rollups 90 days (ANALYTICS_HOUR_RETENTION_DAYS), day
rollups for ever (ANALYTICS_DAY_RETENTION_DAYS = 0); kept request and response bodies
(RequestBody) REQUEST_BODY_RETENTION_DAYS, and none at all when that is 0 (the default): turning
it off forgets what was kept. A body goes with its row at the latest, whichever retention is
shorter. Each chunk of at most ANALYTICS_PRUNE_CHUNK rows is its own statement and transaction,
so a big delete never holds the write lock for long; writers slip in between chunks. The monitor calls `apply_retention`
in its housekeeping; `manage.py prune_analytics` runs it by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connections, router, transaction
from django.db.models import Model

from .models import ErrorRollup, Granularity, ProviderRollup, RequestBody, RequestLog, RouteRollup

ROLLUPS = (RouteRollup, ProviderRollup, ErrorRollup)


def cutoffs(now: datetime | None = None) -> dict[str, datetime | None]:
    """Per kind of row (raw, minute, hour, day, bodies), the time before which it is due; None:
    kept. Bodies are never kept for ever: with REQUEST_BODY_RETENTION_DAYS at 0 all are due."""
    now = now or datetime.now(UTC)

    def before(delta: timedelta) -> datetime | None:
        return now - delta if delta.total_seconds() > 0 else None

    raw = before(timedelta(days=settings.ANALYTICS_RAW_RETENTION_DAYS))
    bodies = before(timedelta(days=max(settings.REQUEST_BODY_RETENTION_DAYS, 0))) or now
    return {
        "raw": raw,
        "minute": before(timedelta(hours=settings.ANALYTICS_MINUTE_RETENTION_HOURS)),
        "hour": before(timedelta(days=settings.ANALYTICS_HOUR_RETENTION_DAYS)),
        "day": before(timedelta(days=settings.ANALYTICS_DAY_RETENTION_DAYS)),
        # a body never outlives its request's row: nothing could find it, nor show it
        "bodies": bodies if raw is None else max(bodies, raw),
    }


def apply_retention(now: datetime | None = None, *, max_rows: int | None = None) -> dict[str, int]:
    """Delete what retention says is due; returns how many rows went, per kind.

    A rollup row goes when its whole bucket is older than the cutoff (its start + its length
    <= cutoff), so a window's oldest bucket is never cut in half. `max_rows` bounds the rows
    deleted per kind in this call (None: everything due); call again while it returns
    `max_rows` for some kind.
    """
    due = cutoffs(now)
    deleted = {"raw": 0, "minute": 0, "hour": 0, "day": 0, "bodies": 0}
    if due["raw"] is not None:
        deleted["raw"] = _delete(RequestLog, "at", due["raw"], {}, max_rows)
    bodies = due["bodies"]
    assert bodies is not None  # never kept for ever
    deleted["bodies"] = _delete(RequestBody, "at", bodies, {}, max_rows)
    spans = {
        "minute": (Granularity.MINUTE, timedelta(minutes=1)),
        "hour": (Granularity.HOUR, timedelta(hours=1)),
        "day": (Granularity.DAY, timedelta(days=1)),
    }
    for kind, (granularity, span) in spans.items():
        cutoff = due[kind]
        if cutoff is None:
            continue
        for model in ROLLUPS:
            left = None if max_rows is None else max_rows - deleted[kind]
            if left is not None and left <= 0:
                break
            deleted[kind] += _delete(model, "bucket", cutoff - span, {"granularity": granularity}, left)
    return deleted


def _delete(model: type[Model], field: str, before: datetime, where: dict[str, str], limit: int | None) -> int:
    """DELETE rows with `field` < `before` (and `where`) in chunks, each a short transaction."""
    alias = router.db_for_write(model)
    connection = connections[alias]
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    conditions = " AND ".join([f"{qn(field)} < %s", *(f"{qn(k)} = %s" for k in where)])
    params = [connection.ops.adapt_datetimefield_value(before), *where.values()]
    total = 0
    while limit is None or total < limit:
        chunk = settings.ANALYTICS_PRUNE_CHUNK if limit is None else min(settings.ANALYTICS_PRUNE_CHUNK, limit - total)
        sql = f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE {conditions} LIMIT {int(chunk)})"
        with transaction.atomic(using=alias), connection.cursor() as cursor:
            cursor.execute(sql, params)
            count = cursor.rowcount
        total += count
        if count < chunk:
            break
    return total

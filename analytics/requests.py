"""The request log, searchable: `GET /api/requests` and `GET /api/requests/<request_id>`.

Every answer the gateway gives carries `X-Request-Id`; the request log (RequestLog, one row per
request, written in batches by the recorder) is where an operator finds it again. A page is
newest first and cursor-paged: the cursor is the (at, id) of the last row shown, so a page
costs one index range scan whatever the log's size (no OFFSET), and rows written while a
client pages never shift what it sees next. Each filter has an index whose second column is
`at` (models.RequestLog.Meta), so a filtered page is a range scan too.

`status`: `ok` is a request that was answered (outcome `success`); `failed` is every other
outcome (a failure, a caller error, no target, a deadline, a stream cut, a cancelled request).

Bodies: when REQUEST_BODY_RETENTION_DAYS keeps them, one request's page (`find(..., bodies=True)`)
adds `request_body` and `response_body` from RequestBody (null when none was kept for it, or
bodies are not kept now). They hold user data: the API gives them to `admin` keys only.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_datetime

from providers.models import ApiKey

from .models import RequestBody, RequestLog

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
OK = "success"


class QueryError(ValueError):
    """A parameter that cannot be used; `param` names it."""

    def __init__(self, param: str, message: str) -> None:
        self.param = param
        super().__init__(f"{param}: {message}")


@dataclass(frozen=True)
class Filters:
    route: str = ""
    provider: str = ""
    key: str = ""  # a key's name or prefix
    status: str = ""  # "", "ok" or "failed"
    since: datetime | None = None
    until: datetime | None = None
    limit: int = DEFAULT_LIMIT
    cursor: tuple[datetime, int] | None = None


def parse_filters(query: Any) -> Filters:
    """The filters of a query string (a QueryDict or a mapping); QueryError for a bad one."""

    def text(name: str, longest: int) -> str:
        value = query.get(name) or ""
        if len(value) > longest:
            raise QueryError(name, f"at most {longest} characters")
        return str(value)

    status = text("status", 10)
    if status not in ("", "ok", "failed"):
        raise QueryError("status", "must be ok or failed")
    limit_text = text("limit", 6)
    try:
        limit = int(limit_text) if limit_text else DEFAULT_LIMIT
    except ValueError:
        raise QueryError("limit", "must be a whole number") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError("limit", f"must be between 1 and {MAX_LIMIT}")
    since, until = _instant(query, "since"), _instant(query, "until")
    if since and until and since > until:
        raise QueryError("since", "is after until")
    return Filters(
        route=text("route", 200),
        provider=text("provider", 64),
        key=text("key", 100),
        status=status,
        since=since,
        until=until,
        limit=limit,
        cursor=_cursor(text("cursor", 100)),
    )


def _instant(query: Any, name: str) -> datetime | None:
    """ISO 8601 (a zone or UTC), or seconds since the epoch."""
    value = (query.get(name) or "").strip()
    if not value:
        return None
    if len(value) > 40:
        raise QueryError(name, "at most 40 characters")
    try:
        return datetime.fromtimestamp(float(value), tz=UTC)
    except (ValueError, OverflowError, OSError):
        pass
    try:
        parsed = parse_datetime(value)
    except ValueError:
        parsed = None
    if parsed is None:
        raise QueryError(name, "must be an ISO 8601 time (2026-12-03T10:00:00Z) or seconds since the epoch")
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def encode_cursor(at: datetime, pk: int) -> str:
    # the exact instant (ISO 8601, microseconds): a float would round and skip or repeat rows
    return base64.urlsafe_b64encode(f"{at.astimezone(UTC).isoformat()}|{pk}".encode()).decode().rstrip("=")


def _cursor(value: str) -> tuple[datetime, int] | None:
    if not value:
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        stamp, pk = raw.split("|")
        at = datetime.fromisoformat(stamp)
        if at.tzinfo is None:
            raise ValueError(stamp)
        return at, int(pk)
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError, OSError):
        raise QueryError("cursor", "is not a cursor this API gave") from None


def _key_ids(key: str) -> list[int]:
    return list(ApiKey.objects.filter(Q(name=key) | Q(prefix=key)).values_list("id", flat=True))


def _filtered(f: Filters) -> QuerySet[RequestLog]:
    rows = RequestLog.objects.all()
    if f.route:
        rows = rows.filter(route=f.route)
    if f.provider:
        rows = rows.filter(provider=f.provider)
    if f.key:
        rows = rows.filter(api_key_id__in=_key_ids(f.key))
    if f.status == "ok":
        rows = rows.filter(outcome=OK)
    elif f.status == "failed":
        rows = rows.exclude(outcome=OK)
    if f.since:
        rows = rows.filter(at__gte=f.since)
    if f.until:
        rows = rows.filter(at__lte=f.until)
    if f.cursor:
        at, pk = f.cursor
        # `at <= ?` bounds the index range (an OR alone would not); the rest drops the rows
        # of that instant already shown
        rows = rows.filter(at__lte=at).filter(Q(at__lt=at) | Q(id__lt=pk))
    return rows.order_by("-at", "-id")


def page(f: Filters) -> dict[str, Any]:
    """One page, newest first, and the cursor of the next (None on the last page)."""
    rows = list(_filtered(f)[: f.limit + 1])
    more = len(rows) > f.limit
    rows = rows[: f.limit]
    names = _key_names({r.api_key_id for r in rows})
    return {
        "requests": [summary(r, names) for r in rows],
        "next_cursor": encode_cursor(rows[-1].at, rows[-1].pk) if more else None,
    }


def find(request_id: str, *, bodies: bool = False) -> dict[str, Any] | None:
    """The newest request with this id (a client may reuse its own ids), with its attempts;
    with `bodies`, also its kept `request_body` and `response_body` (None: not kept)."""
    row = RequestLog.objects.filter(request_id=request_id).order_by("-at", "-id").first()
    if row is None:
        return None
    entry = summary(row, _key_names({row.api_key_id}))
    entry["attempts"] = [_attempt(a) for a in row.attempts if isinstance(a, dict)]
    if bodies:
        kept = kept_bodies(row) if bodies_kept() else None
        entry["request_body"], entry["response_body"] = kept if kept is not None else (None, None)
    return entry


def bodies_kept() -> bool:
    """Whether request and response bodies are kept now (REQUEST_BODY_RETENTION_DAYS > 0)."""
    return bool(settings.REQUEST_BODY_RETENTION_DAYS > 0)


def kept_bodies(row: RequestLog) -> tuple[str, str] | None:
    """The (request, response) bodies kept for the request of `row`; None when none were."""
    return (
        RequestBody.objects.filter(request_id=row.request_id, at=row.at)
        .order_by("-id")
        .values_list("request_body", "response_body")
        .first()
    )


def _key_names(ids: set[int | None]) -> dict[int, str]:
    wanted = [i for i in ids if i is not None]
    return dict(ApiKey.objects.filter(id__in=wanted).values_list("id", "name")) if wanted else {}


def summary(row: RequestLog, key_names: dict[int, str]) -> dict[str, Any]:
    return {
        "request_id": row.request_id,
        "at": row.at.isoformat(),
        "route": row.route,
        "capability": row.capability,
        "key": key_names.get(row.api_key_id) if row.api_key_id is not None else None,
        "provider": row.provider or None,
        "model": row.model or None,
        "outcome": row.outcome,
        "status": row.status,
        "ok": row.outcome == OK,
        "error": row.error or None,
        "stream": row.stream,
        "calls": row.calls,
        "failovers": row.failovers,
        "retries": row.retries,
        "tokens": {"in": row.tokens_in, "out": row.tokens_out},
        "characters": row.characters,
        "images": row.images,
        "cost": None if row.cost is None else format(row.cost.normalize(), "f"),  # null: price unknown
        "cache": row.cache or None,  # hit | miss | bypass; null when the route has no cache
        "saved": format(row.saved.normalize(), "f"),
        "timings": {
            "total_ms": round(row.latency_ms, 3),
            "first_token_ms": None if row.ttft_ms is None else round(row.ttft_ms, 3),
        },
    }


def _attempt(a: dict[str, Any]) -> dict[str, Any]:
    """One line of the attempt timeline: a call sent (outcome, status, ms) or a target skipped
    (and why)."""
    return {
        "provider": a.get("provider"),
        "model": a.get("model"),
        "credential": a.get("credential"),
        "outcome": a.get("outcome"),
        "status": a.get("status"),
        "duration_ms": a.get("duration_ms"),
        "skipped": a.get("skipped"),
        "reason": a.get("reason") or None,
        "error": a.get("error") or None,
        "hedge": bool(a.get("hedge")),
    }


def recent_failed(provider: str, limit: int = 5, scan: int = 1000) -> list[dict[str, Any]]:
    """The newest failed requests that `provider` served or was sent an attempt of (a target
    skipped is not one), for its console page. The attempt list is not indexed, so this reads
    the newest `scan` failed requests (the outcome index) and no more: a bounded read."""
    found: list[RequestLog] = []
    for row in _filtered(Filters(status="failed"))[:scan].iterator(chunk_size=100):
        tried = any(
            isinstance(a, dict) and a.get("provider") == provider and not a.get("skipped") for a in row.attempts or []
        )
        if row.provider == provider or tried:
            found.append(row)
            if len(found) >= limit:
                break
    names = _key_names({r.api_key_id for r in found})
    return [summary(r, names) for r in found]

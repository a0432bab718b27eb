"""The bounds every request record (providers/gateway/records.py: what the gateway announces
about each request it served, or failed to serve) is put in before it is queued.

A record carries text that callers and providers chose (model names, error reasons, whole
attempt lists), so any of it may be something a database refuses: a lone surrogate (not
UTF-8 at all), a NUL (PostgreSQL refuses it in text and in JSON), a name longer than its
column (PostgreSQL refuses it, SQLite stores it), a number out of its column's range, NaN.
One such record used to stop the request log for the whole process. `bound` makes every
value fit the RequestLog column it goes to, reading the lengths, digits and integer ranges
from the model's fields, so the bounds are the same on every database; `degrade` is the
last resort for a record a database still refused (analytics/recorder.py): ASCII only.

The kept bodies (`request_body`, `response_body`: not RequestLog columns, written to
RequestBody when REQUEST_BODY_RETENTION_DAYS keeps them) come scrubbed and bounded from the
gateway (providers/gateway/kept_bodies.py); here they lose NUL and lone surrogates and are
cut at REQUEST_BODY_MAX_BYTES characters (and the room of the gateway's cut marker), should a
record come from anywhere else.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import models

# Defined where the gateway builds it; the analytics modules read it from here.
from providers.gateway.records import RequestRecord as RequestRecord

# What a record carries that is no RequestLog column.
NOT_COLUMNS = frozenset({"rollup_route", "request_body", "response_body"})
# The RequestLog columns, in the record's order.
COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(RequestRecord) if f.name not in NOT_COLUMNS)
BODY_MARKER_ROOM = 200  # characters past REQUEST_BODY_MAX_BYTES: the gateway's "bytes cut" marker

# No request lasts 11 days: a longer "latency" is a broken clock, and an unbounded float would
# overflow the rollups' sums (PostgreSQL refuses an infinite float8 sum).
MAX_MS = 1e9
# The attempt list (JSON): enough for any real chain, bounded for a fabricated one.
JSON_DEPTH = 8
JSON_ITEMS = 100
JSON_STRING = 2000
JSON_KEY = 100
JSON_CHARS = 64_000  # all strings of one attempt list together
_BIG = (-(2**63), 2**63 - 1)

# Control characters (C0, DEL, C1): nothing a name or a reason needs, and NUL is refused by
# PostgreSQL. Inside the attempt list only NUL goes (provider messages keep their newlines).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False)  # one encoder: json.dumps builds one per call


def clean_text(value: Any, limit: int, *, ascii: bool = False, controls: bool = True) -> str:
    """`value` as text every database stores: valid UTF-8 (lone surrogates become U+FFFD, or
    backslash escapes when `ascii`), without control characters (only without NUL when
    `controls` is False), at most `limit` characters."""
    if type(value) is not str:
        value = "" if value is None else str(value)
    if len(value) <= limit and value.isascii() and not (_CONTROL.search(value) if controls else "\x00" in value):
        return value  # the common case, checked first: the hot path queues one record per request
    value = value[: limit * 4 + 16]  # cleaning may drop characters; never clean megabytes
    if ascii:
        value = value.encode("ascii", "backslashreplace").decode("ascii")
    elif not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: pair what pairs, replace the rest
            value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    value = _CONTROL.sub("", value) if controls else value.replace("\x00", "")
    return value[:limit]


def clamp_int(value: Any, low: int, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):  # None, NaN, infinity, text
        number = 0
    return min(max(number, low), high)


def clamp_ms(value: Any) -> float:
    """A duration in ms: finite, 0..MAX_MS (NaN and garbage are 0, infinity is MAX_MS)."""
    try:
        ms = float(value)
    except (TypeError, ValueError, OverflowError):
        return 0.0
    if ms != ms:  # NaN: SQLite stores it as NULL, and it poisons every sum it joins
        return 0.0
    return min(max(ms, 0.0), MAX_MS)


def clamp_decimal(value: Any, digits: int, places: int) -> Decimal:
    """`value` rounded to `places` and within what a DECIMAL(digits, places) holds."""
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        number = Decimal(0)
    quantum = Decimal(1).scaleb(-places)
    top = Decimal(10) ** (digits - places) - quantum
    if number.is_nan():
        number = Decimal(0)
    number = min(max(number, -top), top)
    return number.quantize(quantum, rounding=ROUND_HALF_EVEN)


def clean_json(value: Any, *, ascii: bool = False) -> Any:
    """A JSON value every database stores, recursively: strings cleaned (NUL dropped, lone
    surrogates replaced), numbers finite and within 64 bits, other objects as their text,
    at most JSON_DEPTH deep, JSON_ITEMS per list or object and JSON_CHARS of text in all."""
    return _json(value, 0, [JSON_CHARS], ascii)


def _json(value: Any, depth: int, budget: list[int], ascii: bool) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return min(max(value, _BIG[0]), _BIG[1])
    if isinstance(value, float):
        return value if math.isfinite(value) else None  # JSON has no NaN; PostgreSQL refuses it
    if isinstance(value, str):
        text = clean_text(value, max(0, min(JSON_STRING, budget[0])), ascii=ascii, controls=False)
        budget[0] -= len(text)
        return text
    if depth >= JSON_DEPTH:
        return None
    if isinstance(value, dict):
        out = {}
        for key, item in itertools.islice(value.items(), JSON_ITEMS):
            name = clean_text(key, JSON_KEY, ascii=ascii)
            budget[0] -= len(name)
            out[name] = _json(item, depth + 1, budget, ascii)
        return out
    if isinstance(value, list | tuple):
        return [_json(item, depth + 1, budget, ascii) for item in itertools.islice(value, JSON_ITEMS)]
    return _json(str(value), depth, budget, ascii)  # Decimal, datetime...: their text


def clean_attempts(value: Any, *, ascii: bool = False) -> list[dict[str, Any]]:
    """The attempt list as the rollups read it: a list of objects (anything else is dropped).

    A list every database stores as it is (its JSON text at most JSON_CHARS long, valid
    UTF-8, without NUL, NaN or objects JSON cannot hold) is kept as it is; any other is
    rebuilt by `clean_json`, within all its bounds."""
    if not ascii and type(value) is list and len(value) <= JSON_ITEMS and all(type(a) is dict for a in value):
        # The common case, checked at C speed: JSON text that every database takes as it is.
        try:
            text = _ENCODER.encode(value)
        except (TypeError, ValueError, RecursionError):
            pass
        else:
            if len(text) <= JSON_CHARS and "\\u0000" not in text and _utf8(text):
                return value
    if not isinstance(value, list | tuple):
        return []
    attempts = clean_json([a for a in itertools.islice(value, JSON_ITEMS) if isinstance(a, dict)], ascii=ascii)
    return attempts


def _utf8(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def clean_datetime(value: Any) -> datetime:
    if not isinstance(value, datetime):
        return datetime.now(UTC)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Bounds:
    """What each RequestLog column holds, read from the model's fields, grouped by kind."""

    text: tuple[tuple[str, int], ...]  # (column, max_length)
    integers: tuple[tuple[str, int, int, bool], ...]  # (column, low, high, nullable)
    floats: tuple[tuple[str, bool], ...]  # (column, nullable): durations in ms
    decimals: tuple[tuple[str, int, int, bool], ...]  # (column, max_digits, decimal_places, nullable)
    datetimes: tuple[str, ...]
    booleans: tuple[str, ...]
    json: tuple[str, ...]


@functools.cache
def column_bounds() -> Bounds:
    from django.db.backends.base.operations import BaseDatabaseOperations
    from django.db.models import (
        BooleanField,
        CharField,
        DateTimeField,
        DecimalField,
        FloatField,
        JSONField,
    )

    from .models import RequestLog

    # Django's portable ranges (PostgreSQL's): a row that fits them fits every database.
    ranges = BaseDatabaseOperations.integer_field_ranges
    groups: dict[str, list[Any]] = {k: [] for k in Bounds.__slots__}
    for name in COLUMNS:
        f = RequestLog._meta.get_field(name)
        if isinstance(f, CharField):
            groups["text"].append((name, f.max_length))
        elif isinstance(f, DateTimeField):
            groups["datetimes"].append(name)
        elif isinstance(f, DecimalField):
            groups["decimals"].append((name, f.max_digits, f.decimal_places, f.null))
        elif isinstance(f, FloatField):
            groups["floats"].append((name, f.null))
        elif isinstance(f, BooleanField):
            groups["booleans"].append(name)
        elif isinstance(f, JSONField):
            groups["json"].append(name)
        elif f.get_internal_type() in ranges:
            groups["integers"].append((name, *ranges[f.get_internal_type()], f.null))
        else:  # a new column nobody taught this module: fail loudly in tests, not in a batch
            raise TypeError(f"no bounds for RequestLog.{name} ({type(f).__name__})")
    return Bounds(**{k: tuple(v) for k, v in groups.items()})


def bound(record: RequestRecord) -> RequestRecord:
    """Put every value of `record` within its column's bounds (in place; returns `record`).

    Runs once per request on the event loop: each value is checked first and only fixed
    when it does not fit.
    """
    b = column_bounds()
    for name, limit in b.text:
        v = getattr(record, name)
        if type(v) is not str or len(v) > limit or not v.isascii() or _CONTROL.search(v) is not None:
            setattr(record, name, clean_text(v, limit))
    for name, low, high, null in b.integers:
        v = getattr(record, name)
        if (type(v) is not int or v < low or v > high) and not (null and v is None):
            setattr(record, name, clamp_int(v, low, high))
    for name, null in b.floats:
        v = getattr(record, name)
        if (type(v) is not float or not 0.0 <= v <= MAX_MS) and not (null and v is None):  # NaN fails too
            setattr(record, name, clamp_ms(v))
    for name, digits, places, null in b.decimals:
        v = getattr(record, name)
        if not (null and v is None):  # a nullable amount (cost) may be unknown
            setattr(record, name, clamp_decimal(v, digits, places))
    for name in b.datetimes:
        v = getattr(record, name)
        if type(v) is not datetime or v.tzinfo is None:
            setattr(record, name, clean_datetime(v))
    for name in b.booleans:
        setattr(record, name, bool(getattr(record, name)))
    for name in b.json:
        setattr(record, name, clean_attempts(getattr(record, name)))
    if record.rollup_route is not None:
        record.rollup_route = clean_text(record.rollup_route, _route_length())
    if record.request_body is not None or record.response_body is not None:
        _bound_bodies(record)
    return record


def body_chars() -> int:
    """The most characters of one kept body."""
    return max(0, int(settings.REQUEST_BODY_MAX_BYTES)) + BODY_MARKER_ROOM


def _bound_bodies(record: RequestRecord, *, ascii: bool = False) -> None:
    limit = body_chars()
    if record.request_body is not None:
        record.request_body = clean_text(record.request_body, limit, ascii=ascii, controls=False)
    if record.response_body is not None:
        record.response_body = clean_text(record.response_body, limit, ascii=ascii, controls=False)


def degrade(record: RequestRecord) -> RequestRecord:
    """A bounded copy of `record` whose every text is plain ASCII (other characters, lone
    surrogates too, as backslash escapes): what the log keeps of a record a database refused
    as it was."""
    copy = dataclasses.replace(record)
    for name in COLUMNS:
        value = getattr(copy, name)
        if isinstance(value, str):
            setattr(copy, name, clean_text(value, _length(name), ascii=True))
    copy.attempts = clean_attempts(copy.attempts, ascii=True)
    if copy.rollup_route is not None:
        copy.rollup_route = clean_text(copy.rollup_route, _route_length(), ascii=True)
    _bound_bodies(copy, ascii=True)
    return bound(copy)


def _length(name: str) -> int:
    from .models import RequestLog

    field = RequestLog._meta.get_field(name)
    return (field.max_length or 0) if isinstance(field, models.Field) else 0


def _route_length() -> int:
    return _length("route")

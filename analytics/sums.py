"""Sums of rollup columns over a window, grouped, in one SQL statement each.

Written as SQL rather than through the ORM: a rollup row has ~95 columns, and building,
compiling and converting ~95 `Sum()` annotations cost more than the database's own work.
A time series is grouped by its step in the database (`step_start`), so a 24-hour series of
minute rows comes back as 96 rows, not 1,440: moving rows into Python is what costs.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from django.db import connections, router
from django.db.models import Model

from .windows import Window

Sums = dict[str, Any]


def step_start(vendor: str, column: str, step_s: int) -> str:
    """SQL for the start (epoch seconds) of the `step_s`-long step that holds `column`."""
    if vendor == "postgresql":
        return f"(FLOOR(EXTRACT(EPOCH FROM {column}) / {step_s})::bigint * {step_s})"
    return f"(CAST(strftime('%%s', {column}) AS INTEGER) / {step_s} * {step_s})"  # %% for the placeholder pass


def _run(
    model: type[Model],
    columns: Sequence[str],
    group: Sequence[str],
    where: list[str],
    params: list[Any],
    step_s: int | None = None,
) -> dict[tuple, Sums]:
    connection = connections[router.db_for_read(model)]
    qn = connection.ops.quote_name
    keys = [qn(g) for g in group]
    if step_s is not None:
        keys.insert(0, step_start(connection.vendor, qn("bucket"), step_s))
    sums = ", ".join(f"SUM({qn(c)})" for c in columns)
    sql = f"SELECT {', '.join([*keys, sums])} FROM {qn(model._meta.db_table)} WHERE {' AND '.join(where) or '1=1'}" + (
        f" GROUP BY {', '.join(keys)}" if keys else ""
    )
    out: dict[tuple, Sums] = {}
    width = len(keys)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for row in cursor.fetchall():
            key = tuple(row[:width])
            if step_s is not None:
                key = (datetime.fromtimestamp(int(key[0]), UTC), *key[1:])
            # PostgreSQL sums bigints as numeric (Decimal): make every figure a plain number
            out[key] = {
                c: (v if type(v) in (int, float) else float(v or 0)) for c, v in zip(columns, row[width:], strict=True)
            }
    return out


def _filters(connection_alias: Any, equal: dict[str, str] | None) -> tuple[list[str], list[Any]]:
    qn = connection_alias.ops.quote_name
    where, params = [], []
    for field, value in (equal or {}).items():
        where.append(f"{qn(field)} = %s")
        params.append(value)
    return where, params


def window_sums(
    model: type[Model], win: Window, group: Sequence[str], columns: Sequence[str], equal: dict[str, str] | None = None
) -> dict[tuple, Sums]:
    """Summed `columns` of the rows covering the window, per value of the `group` fields."""
    connection = connections[router.db_for_read(model)]
    adapt, qn = connection.ops.adapt_datetimefield_value, connection.ops.quote_name
    spans, params = [], []
    for s in win.segments:
        spans.append(f"({qn('granularity')} = %s AND {qn('bucket')} >= %s AND {qn('bucket')} < %s)")
        params += [s.granularity, adapt(s.start), adapt(s.end)]
    where, more = _filters(connection, equal)
    return _run(model, columns, group, [f"({' OR '.join(spans)})", *where], params + more)


def series_sums(
    model: type[Model], win: Window, group: Sequence[str], columns: Sequence[str], equal: dict[str, str] | None = None
) -> dict[tuple, Sums]:
    """Summed `columns` per (step start, *group) over the window, at its series granularity."""
    connection = connections[router.db_for_read(model)]
    adapt, qn = connection.ops.adapt_datetimefield_value, connection.ops.quote_name
    where = [f"{qn('granularity')} = %s", f"{qn('bucket')} >= %s", f"{qn('bucket')} < %s"]
    params: list[Any] = [win.series_granularity, adapt(win.start), adapt(win.end)]
    more_where, more = _filters(connection, equal)
    return _run(model, columns, group, where + more_where, params + more, int(win.step.total_seconds()))


def all_time_sums(model: type[Model], group: Sequence[str], columns: Sequence[str]) -> dict[tuple, Sums]:
    """Summed `columns` of every day rollup (kept for ever: all-time totals), per `group`."""
    qn = connections[router.db_for_read(model)].ops.quote_name
    return _run(model, columns, group, [f"{qn('granularity')} = %s"], ["d"])


def add(into: Sums | None, more: Sums) -> Sums:
    """`into` + `more`, column by column (`into` may be None)."""
    if into is None:
        return dict(more)
    return dict(zip(into, map(operator.add, into.values(), more.values()), strict=True))

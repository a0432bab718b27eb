"""Request records leave the hot path at once: queued in memory, written in batches.

One `Recorder` per event loop. `record_request` bounds a record (analytics/records.py) and
appends it to the queue (no I/O); a background task writes a batch every
`ANALYTICS_FLUSH_INTERVAL_S` or as soon as `ANALYTICS_BATCH_SIZE` records wait. Each batch
is written in one transaction, so no record is counted twice. AnalyticsConfig.ready connects
`record_request` to the gateway's finished requests and `flush_all` to the shutdown hooks.

The log must never stop. When a batch fails to write:
- the database is away (an `OperationalError`/`InterfaceError` and `SELECT 1` fails too): the
  batch stays queued and is tried again at the next flush, for as long as it takes (the queue
  is bounded by ANALYTICS_MAX_QUEUE); nothing is lost while the database is briefly away;
- the database answered but refused something in the batch (any other error, or the same
  connection-class error ANALYTICS_WRITE_ATTEMPTS times in a row while the database
  answers `SELECT 1`): the batch is bisected until the records it refuses are alone, every
  other record is written, and each refused record is quarantined: written in a degraded
  form (every text ASCII, so the request still counts in analytics and cost), counted per
  cause in `LogQuarantine` (`gateway_request_log_quarantined_total` on /metrics), and logged
  once per cause per process. A record even the degraded write fails for is kept in memory
  (at most ANALYTICS_QUARANTINE_MAX) and named at shutdown.
So a poison record never blocks the records queued behind it, and a clean shutdown writes
everything it can and reports what it could not.

When REQUEST_BODY_RETENTION_DAYS keeps bodies, the records that carry them add RequestBody
rows in the same transaction as their RequestLog rows (bisected and degraded with them).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import weakref
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings

from project.database import db_call
from providers.engine import wait_event

from .dimensions import current_snapshot, rollup_route
from .records import COLUMNS, RequestRecord, bound, degrade

log = logging.getLogger(__name__)

WRITE_ATTEMPTS = 5  # ANALYTICS_WRITE_ATTEMPTS: connection-class failures while the database answers
QUARANTINE_MAX = 1000  # ANALYTICS_QUARANTINE_MAX: records held in memory that nothing could write
ISOLATION_FAILURES = 64  # failed statements per batch while isolating refused records
_reported: set[str] = set()  # causes logged already (once per process)


def _setting(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


def is_connection_error(exc: BaseException) -> bool:
    """Whether `exc` may be the database being away (worth retrying as it is), rather than
    the database refusing what was sent (which retrying cannot change)."""
    from django.db import InterfaceError, OperationalError

    return isinstance(exc, OperationalError | InterfaceError | ConnectionError | TimeoutError)


def database_answers() -> bool:
    """`SELECT 1` on the request log's database (sync)."""
    from django.db import connections, router

    from .models import RequestLog

    try:
        with connections[router.db_for_write(RequestLog)].cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        return False


def cause_of(exc: BaseException) -> str:
    """A bounded label for why a record was refused: the exception's class name."""
    return type(exc).__name__[:100]


class Recorder:
    def __init__(self) -> None:
        self.queue: list[RequestRecord] = []
        self.written = 0
        self.dropped = 0
        self.quarantined = 0  # records the database refused as they were (this process): degraded or held
        self.held: collections.deque[RequestRecord] = collections.deque(
            maxlen=_setting("ANALYTICS_QUARANTINE_MAX", QUARANTINE_MAX)
        )
        self._uncounted: collections.Counter[str] = collections.Counter()  # quarantines not yet in LogQuarantine
        self._strikes = 0  # connection-class failures in a row while the database answered
        self._away = False  # the database was away at the last attempt (logged once per outage)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def record(self, record: RequestRecord) -> None:
        if len(self.queue) >= settings.ANALYTICS_MAX_QUEUE:
            self.dropped += 1  # the database has been away too long; say so, never block callers
            if self.dropped % 1000 == 1:
                log.error("analytics queue full (%d): dropped %d records", len(self.queue), self.dropped)
            return
        try:
            self.queue.append(bound(record))
        except Exception:  # a bug in the bounds must not fail the request that is being answered
            self.dropped += 1
            log.exception("analytics: could not bound request record %r", getattr(record, "request_id", None))
            return
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        if len(self.queue) >= settings.ANALYTICS_BATCH_SIZE:
            self._wake.set()

    def stop(self) -> None:
        """Stop the background writer. What is queued stays queued: `flush` still writes it,
        and the next `record` starts the writer again."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        while True:
            # woken by a full batch, or the interval passed: flush anyway
            await wait_event(self._wake, settings.ANALYTICS_FLUSH_INTERVAL_S)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # never let the writer die: the next interval tries again
                log.exception("analytics writer: unexpected error")

    async def flush(self, *, everything: bool = False) -> int:
        """Write what is queued now; returns how many records were written as they were.

        Records that arrive while a batch is being written wait for the next wake-up (the
        interval, or a full batch), unless `everything` (at shutdown): chasing them would
        write a stream of tiny batches, each paying a batch's fixed cost. Stops early, with
        the rest still queued, when the database is away.
        """
        async with self._lock:
            total = done = 0
            due = len(self.queue)
            while self.queue and (everything or done < due):
                size = min(settings.ANALYTICS_BATCH_SIZE, len(self.queue) if everything else due - done)
                batch = self.queue[:size]
                # The batch stays at the head of the queue (record() only appends) until it is
                # written: a flush cancelled meanwhile loses nothing.
                written, unwritten = await self._write(batch)
                self.queue[:size] = unwritten  # the database is away: they stay at the head, in order
                total += written
                done += size
                self.written += written
                if unwritten:
                    return total
            if self._uncounted:
                with contextlib.suppress(Exception):  # tried again after the next batch
                    await self._count_uncounted()
            return total

    async def _write(self, batch: list[RequestRecord]) -> tuple[int, list[RequestRecord]]:
        """Write `batch`, isolating what the database refuses; returns (records written as
        they were, records left unwritten: the database is away, or refuses everything).

        At most ISOLATION_FAILURES failed statements per call: the rest waits for the next
        flush, so a database that fails everything slowly (a lock) is not hammered.
        """
        written = degraded = failures = 0
        refused: list[tuple[RequestRecord, BaseException]] = []  # not even in their degraded form
        parts = [batch]
        while parts:
            part = parts.pop(0)
            try:
                await db_call(write_and_release, part)
            except Exception as exc:
                failures += 1
                if (is_connection_error(exc) and await self._keep_waiting(exc)) or failures > ISOLATION_FAILURES:
                    parts.insert(0, part)
                    break
                if len(part) > 1:  # bisect: the halves that write go in, the refused rows end up alone
                    middle = len(part) // 2
                    parts[:0] = [part[:middle], part[middle:]]
                elif await self._write_degraded(part[0], exc):
                    degraded += 1
                else:
                    refused.append((part[0], exc))
                continue
            written += len(part)
            self._strikes = 0
            if self._away:
                self._away = False
                log.warning(
                    "analytics: the database answers again; writing the queue (%d waiting)",
                    len(self.queue) + sum(len(p) for p in parts),
                )
        unwritten = [r for p in parts for r in p]
        if refused and not written and not degraded:
            # Nothing of the batch went in, in any form: the database refuses everything (a
            # missing table, a full disk), not these records. They wait, as in an outage.
            return written, [*(r for r, _ in refused), *unwritten]
        for record, error in refused:
            await self._hold(record, error)
        return written, unwritten

    async def _keep_waiting(self, exc: BaseException) -> bool:
        """After a connection-class error: True to keep the records queued (the database is
        away, or answers but perhaps only a lock or a deadlock failed the write), False once
        that happened ANALYTICS_WRITE_ATTEMPTS times in a row: then the records are isolated
        like refused ones."""
        if not await db_call(database_answers):
            if not self._away:
                self._away = True
                log.error(
                    "analytics: the database is away (%s: %s); %d records wait and are retried",
                    type(exc).__name__,
                    exc,
                    len(self.queue),
                )
            return True
        self._strikes += 1
        return self._strikes < _setting("ANALYTICS_WRITE_ATTEMPTS", WRITE_ATTEMPTS)

    async def _write_degraded(self, record: RequestRecord, exc: BaseException) -> bool:
        """Write a record the database refused in its degraded form (analytics/records.py),
        counted in LogQuarantine: with its rollups, else the raw row alone (a rollup row it
        adds to may be what is refused). False when neither went in."""
        cause = cause_of(exc)
        if cause not in _reported and len(_reported) < 100:
            _reported.add(cause)
            log.error(
                "request log: the database refused a record (%s: %s), request id %s. Each refused "
                "record is written in a degraded form (ASCII) where possible and counted in "
                "gateway_request_log_quarantined_total{cause=%r}; this is logged once per cause",
                cause,
                str(exc)[:300],
                record.request_id,
                cause,
            )
        quarantine = (cause, record.request_id, str(exc), True)
        for rollups in (True, False):
            try:
                await db_call(write_batch, [degrade(record)], quarantine=quarantine, rollups=rollups)
            except Exception as again:
                log.debug("degraded write (rollups=%s) failed too: %s", rollups, again)
                continue
            self.quarantined += 1
            return True
        return False

    async def _hold(self, record: RequestRecord, exc: BaseException) -> None:
        """Keep a record nothing could write in memory (bounded), counted."""
        self.quarantined += 1
        self.held.append(record)
        self._uncounted[cause_of(exc)] += 1
        with contextlib.suppress(Exception):  # else counted after the next batch that goes in
            await self._count_uncounted(record.request_id, str(exc))

    async def _count_uncounted(self, request_id: str = "", message: str = "") -> None:
        counts = dict(self._uncounted)
        await db_call(count_quarantined, counts, request_id, message, degraded=False)
        self._uncounted.subtract(counts)
        self._uncounted = +self._uncounted  # drop the zeros

    def report(self) -> str | None:
        """What this process could not write (for the shutdown log), or None."""
        if not self.queue and not self.held:
            return None
        ids = [r.request_id for r in (*self.queue, *self.held)][:20]
        return (
            f"{len(self.queue)} queued records (the database is away) and {len(self.held)} refused "
            f"records could not be written; request ids {', '.join(ids)}"
            + (" ..." if len(self.queue) + len(self.held) > len(ids) else "")
        )


def write_batch(
    records: list[RequestRecord],
    *,
    using: str | None = None,
    quarantine: tuple[str, str, str, bool] | None = None,
    rollups: bool = True,
) -> None:
    """Write raw rows and their rollups in one transaction: both or neither.

    `quarantine` (cause, request id, message, degraded): the batch is a record written in its
    degraded form; it is counted in LogQuarantine in the same transaction. `rollups=False`
    writes the raw rows alone (the last resort for such a record).
    """
    from django.db import connections, router, transaction

    from .models import RequestLog
    from .rollups import add_to_rollups

    alias = using or router.db_for_write(RequestLog)
    with transaction.atomic(using=alias):
        insert_rows(connections[alias], records)
        if settings.REQUEST_BODY_RETENTION_DAYS > 0:
            insert_bodies(alias, records)
        if rollups:
            add_to_rollups(records, using=alias)
        if quarantine is not None:
            cause, request_id, message, degraded = quarantine
            count_quarantined({cause: len(records)}, request_id, message, degraded=degraded, using=alias)


def write_and_release(records: list[RequestRecord]) -> None:
    """`write_batch`, then close this thread's SQLite connection. A SQLite connection kept open
    across batches held on to about as much memory as the rows it wrote (+5.5 MiB per 10,000
    requests, without end: bench/memory), none of it in Python's heap or SQLite's page cache
    (tracemalloc, PRAGMA shrink_memory and malloc_trim found or freed none of it); a connection
    opened per batch costs well under a millisecond. PostgreSQL's stay open (CONN_MAX_AGE)."""
    from django.db import connections, router

    from .models import RequestLog

    try:
        write_batch(records)
    finally:
        connection = connections[router.db_for_write(RequestLog)]
        if connection.vendor == "sqlite" and not connection.in_atomic_block:
            connection.close()


def count_quarantined(
    counts: dict[str, int], request_id: str, message: str, *, degraded: bool, using: str | None = None
) -> None:
    """Add quarantined records to LogQuarantine, per cause (sync; atomic increments)."""
    from django.db import IntegrityError, router, transaction
    from django.db.models import F

    from .models import LogQuarantine
    from .records import clean_text

    alias = using or router.db_for_write(LogQuarantine)
    now = datetime.now(UTC)
    last = {
        "last_at": now,
        "last_request_id": clean_text(request_id, 64, ascii=True),
        "last_message": clean_text(message, 500, ascii=True),
    }
    rows = LogQuarantine.objects.using(alias)
    for cause, n in counts.items():
        if n <= 0:
            continue
        change = {"count": F("count") + n, **({"degraded": F("degraded") + n} if degraded else {}), **last}
        if rows.filter(cause=cause).update(**change):
            continue
        try:
            with transaction.atomic(using=alias):
                rows.create(cause=cause, count=n, degraded=n if degraded else 0, **last)
        except IntegrityError:  # another process created it meanwhile
            rows.filter(cause=cause).update(**change)


def insert_rows(connection: Any, records: list[RequestRecord]) -> None:
    """INSERT the records' RequestLog rows, as many rows per statement as the database takes.

    Django's bulk_create builds and adapts every value through the field machinery, which
    cost more than everything else in a batch; the values here are adapted by hand. One
    statement per row (`executemany`) costs SQLite's driver a release and a retake of the GIL
    per row: under load the event loop holds the GIL, every retake waits for it, and the
    writer fell behind the requests (the log lagged further behind every second at about
    2,000 requests a second: docs/performance.md). A statement of many rows is one retake.
    """
    from .models import RequestLog

    ops = connection.ops
    at = COLUMNS.index("at")
    attempts = COLUMNS.index("attempts")
    cost = COLUMNS.index("cost")
    values: list[Any] = []
    for r in records:
        row = [getattr(r, name) for name in COLUMNS]
        row[at] = ops.adapt_datetimefield_value(row[at])
        row[attempts] = ops.adapt_json_value(row[attempts], None)
        if row[cost] is not None:  # None: unknown, NULL
            row[cost] = ops.adapt_decimalfield_value(Decimal(row[cost]), 14, 8)
        values.extend(row)
    width = len(COLUMNS)
    per = max(1, _parameters_per_statement(connection) // width)
    table = RequestLog._meta.db_table
    with connection.cursor() as cursor:
        for first in range(0, len(records), per):
            count = min(per, len(records) - first)
            cursor.execute(
                _insert_sql(connection.vendor, ops.quote_name, table, count),
                values[first * width : (first + count) * width],
            )


_SQL: dict[tuple[str, str, int], str] = {}


def _insert_sql(vendor: str, quote: Any, table: str, rows: int) -> str:
    key = (vendor, table, rows)
    sql = _SQL.get(key)
    if sql is None:
        row = "(" + ", ".join(["%s"] * len(COLUMNS)) + ")"
        sql = f"INSERT INTO {quote(table)} ({', '.join(quote(f) for f in COLUMNS)}) VALUES {', '.join([row] * rows)}"
        if len(_SQL) < 8:  # the full statement and a few short ones; a tail is cheap to build
            _SQL[key] = sql
    return sql


def _parameters_per_statement(connection: Any) -> int:
    """How many parameters one statement may carry: SQLite's own limit (32,766 since 3.32; Django
    assumes 999), PostgreSQL's protocol limit (65,535)."""
    if connection.vendor == "sqlite":
        import sqlite3

        connection.ensure_connection()
        try:
            return int(connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
        except AttributeError:  # Python before 3.11
            return int(connection.features.max_query_params)
    return 65535


def insert_bodies(alias: str, records: list[RequestRecord]) -> None:
    """INSERT the RequestBody rows of the records that carry bodies (none when bodies are not kept)."""
    from .models import RequestBody

    rows = [
        RequestBody(
            at=r.at,
            request_id=r.request_id,
            request_body=r.request_body or "",
            response_body=r.response_body or "",
        )
        for r in records
        if r.request_body is not None or r.response_body is not None
    ]
    if rows:
        RequestBody.objects.using(alias).bulk_create(rows)


_recorders: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Recorder] = weakref.WeakKeyDictionary()


def recorder() -> Recorder:
    loop = asyncio.get_running_loop()
    rec = _recorders.get(loop)
    if rec is None:
        rec = _recorders[loop] = Recorder()
    return rec


def record_request(record: RequestRecord) -> None:
    """Queue a record for the next batch (never blocks); a no-op when ANALYTICS_ENABLED is off.

    The rollups count it under a bounded route name (analytics/dimensions.py), judged by the
    configuration that resolved it.
    """
    if settings.ANALYTICS_ENABLED:
        if record.rollup_route is None:
            snapshot = current_snapshot()
            if snapshot is not None and isinstance(record.route, str):
                record.rollup_route = rollup_route(record.route, snapshot)
        recorder().record(record)


async def flush_all() -> None:
    """Flush the recorder of the running loop (shutdown hook), and say what could not be written."""
    rec = _recorders.get(asyncio.get_running_loop())
    if rec is not None:
        await rec.flush(everything=True)
        report = rec.report()
        if report:
            log.error("request log at shutdown: %s", report)


def recorders() -> list[Recorder]:
    """This process's recorders (one per event loop)."""
    return list(_recorders.values())

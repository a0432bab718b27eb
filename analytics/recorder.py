"""Request records leave the hot path at once: queued in memory, written in batches.

One `Recorder` per event loop. `record_request` appends to its queue (no I/O); a background
task writes a batch every `ANALYTICS_FLUSH_INTERVAL_S` or as soon as `ANALYTICS_BATCH_SIZE`
records wait. A batch that fails to write stays queued and is tried again, so nothing is
lost while the database is briefly away; a clean shutdown flushes what is left. Each batch
is written in one transaction, so no record is counted twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from decimal import Decimal
from typing import Any

from django.conf import settings

from project import lifecycle
from project.database import db_call

from .records import RequestRecord

log = logging.getLogger(__name__)


class Recorder:
    def __init__(self) -> None:
        self.queue: list[RequestRecord] = []
        self.written = 0
        self.dropped = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def record(self, record: RequestRecord) -> None:
        if len(self.queue) >= settings.ANALYTICS_MAX_QUEUE:
            self.dropped += 1  # the database has been away too long; say so, never block callers
            if self.dropped % 1000 == 1:
                log.error("analytics queue full (%d): dropped %d records", len(self.queue), self.dropped)
            return
        self.queue.append(record)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        if len(self.queue) >= settings.ANALYTICS_BATCH_SIZE:
            self._wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):  # the interval passed: flush anyway
                await asyncio.wait_for(self._wake.wait(), settings.ANALYTICS_FLUSH_INTERVAL_S)
            self._wake.clear()
            await self.flush()

    async def flush(self, *, everything: bool = False) -> int:
        """Write what is queued now; returns how many records were written.

        Records that arrive while a batch is being written wait for the next wake-up (the
        interval, or a full batch), unless `everything` (at shutdown): chasing them would
        write a stream of tiny batches, each paying a batch's fixed cost.
        """
        async with self._lock:
            total = 0
            due = len(self.queue)
            while self.queue and (everything or total < due):
                batch = self.queue[: min(settings.ANALYTICS_BATCH_SIZE, len(self.queue) if everything else due - total)]
                try:
                    await db_call(write_batch, batch)
                except Exception:
                    log.exception("could not write %d request records; will retry", len(batch))
                    return total
                del self.queue[: len(batch)]
                self.written += len(batch)
                total += len(batch)
            return total


def write_batch(records: list[RequestRecord], *, using: str | None = None) -> None:
    """Write raw rows and their rollups in one transaction: both or neither."""
    from django.db import connections, router, transaction

    from .models import RequestLog
    from .rollups import add_to_rollups

    alias = using or router.db_for_write(RequestLog)
    with transaction.atomic(using=alias):
        insert_rows(connections[alias], records)
        add_to_rollups(records, using=alias)


_FIELDS = tuple(RequestRecord.__slots__)


def insert_rows(connection: Any, records: list[RequestRecord]) -> None:
    """INSERT the records' RequestLog rows with one prepared statement.

    Django's bulk_create builds and adapts every value through the field machinery, which
    cost more than everything else in a batch; the values here are adapted by hand.
    """
    from .models import RequestLog

    ops = connection.ops
    qn = ops.quote_name
    sql = (f"INSERT INTO {qn(RequestLog._meta.db_table)} ({', '.join(qn(f) for f in _FIELDS)}) "
           f"VALUES ({', '.join(['%s'] * len(_FIELDS))})")
    at = _FIELDS.index("at")
    attempts = _FIELDS.index("attempts")
    cost = _FIELDS.index("cost")
    rows = []
    for r in records:
        row = [getattr(r, name) for name in _FIELDS]
        row[at] = ops.adapt_datetimefield_value(row[at])
        row[attempts] = ops.adapt_json_value(row[attempts], None)
        row[cost] = ops.adapt_decimalfield_value(Decimal(row[cost]), 14, 8)
        rows.append(row)
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


_recorders: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Recorder] = weakref.WeakKeyDictionary()


def recorder() -> Recorder:
    loop = asyncio.get_running_loop()
    rec = _recorders.get(loop)
    if rec is None:
        rec = _recorders[loop] = Recorder()
    return rec


def record_request(record: RequestRecord) -> None:
    """Queue a record for the next batch (never blocks); a no-op when ANALYTICS_ENABLED is off."""
    if settings.ANALYTICS_ENABLED:
        recorder().record(record)


async def flush_all() -> None:
    """Flush the recorder of the running loop (shutdown hook)."""
    rec = _recorders.get(asyncio.get_running_loop())
    if rec is not None:
        await rec.flush(everything=True)


lifecycle.on_shutdown(flush_all)

from __future__ import annotations

from analytics import recorder
from analytics.recorder import Recorder

from .conftest import attempt, record


async def test_a_flush_writes_what_was_queued_and_leaves_later_arrivals_for_the_next_batch(settings, monkeypatch):
    settings.ANALYTICS_BATCH_SIZE = 10
    settings.ANALYTICS_FLUSH_INTERVAL_S = 60
    rec = Recorder()
    batches: list[int] = []

    def write(records, *, using=None):
        batches.append(len(records))
        if len(batches) == 1:  # requests keep coming while the first batch is written
            for _ in range(3):
                rec.queue.append(record([attempt("a")]))

    monkeypatch.setattr(recorder, "write_batch", write)
    rec.queue += [record([attempt("a")]) for _ in range(25)]  # queued, no background writer
    assert await rec.flush() == 25
    assert batches == [10, 10, 5] and len(rec.queue) == 3
    assert await rec.flush(everything=True) == 3
    assert batches == [10, 10, 5, 3] and rec.queue == [] and rec.written == 28


async def test_a_batch_that_cannot_be_written_stays_queued_and_is_written_later(settings, monkeypatch):
    settings.ANALYTICS_FLUSH_INTERVAL_S = 60
    rec = Recorder()
    outcomes = iter([RuntimeError("database is locked"), None])

    def write(records, *, using=None):
        error = next(outcomes)
        if error:
            raise error

    monkeypatch.setattr(recorder, "write_batch", write)
    rec.queue.append(record([attempt("a")]))
    assert await rec.flush() == 0 and len(rec.queue) == 1
    assert await rec.flush() == 1 and rec.queue == []


async def test_a_full_queue_drops_and_counts_new_records_instead_of_blocking(settings):
    settings.ANALYTICS_MAX_QUEUE = 5
    settings.ANALYTICS_FLUSH_INTERVAL_S = 60
    rec = Recorder()
    for _ in range(7):
        rec.record(record([attempt("a")]))
    assert (len(rec.queue), rec.dropped) == (5, 2)
    rec._task.cancel()  # the background writer it started: nothing to write here

from __future__ import annotations

import pytest
from django.db import IntegrityError, OperationalError, ProgrammingError

from analytics import recorder
from analytics.recorder import Recorder

from .conftest import attempt, record


async def test_a_flush_writes_what_was_queued_and_leaves_later_arrivals_for_the_next_batch(settings, monkeypatch):
    settings.ANALYTICS_BATCH_SIZE = 10
    settings.ANALYTICS_FLUSH_INTERVAL_S = 60
    rec = Recorder()
    batches: list[int] = []

    def write(records, *, using=None, quarantine=None):
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
    outcomes = iter([OperationalError("could not connect to server"), None])

    def write(records, *, using=None, quarantine=None):
        error = next(outcomes)
        if error:
            raise error

    monkeypatch.setattr(recorder, "write_batch", write)
    monkeypatch.setattr(recorder, "database_answers", lambda: False)  # the database is away
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
    rec.stop()  # the background writer it started: nothing to write here


class Database:
    """A fake write_batch: refuses the records named `poison` (as a database refuses a row),
    or everything while `away`; remembers what it wrote."""

    def __init__(self, poison: set[str] = frozenset(), *, degraded_fails: bool = False) -> None:
        self.poison = set(poison)
        self.away = False
        self.refuse_all = False
        self.degraded_fails = degraded_fails
        self.rows: list[str] = []
        self.quarantined: list[tuple[str, str]] = []
        self.calls = 0

    def write(self, records, *, using=None, quarantine=None, rollups=True):
        self.calls += 1
        if self.away:
            raise OperationalError("server closed the connection unexpectedly")
        if self.refuse_all:
            raise ProgrammingError('relation "analytics_requestlog" does not exist')
        if quarantine is not None:
            if self.degraded_fails:
                raise IntegrityError("still refused")
            self.quarantined.append((records[0].request_id, quarantine[0]))
            return
        if any(r.request_id in self.poison for r in records):
            raise IntegrityError("refused")
        self.rows += [r.request_id for r in records]

    def answers(self) -> bool:
        return not self.away


def named(*ids: str):
    return [record([attempt("a")], request_id=i) for i in ids]


@pytest.fixture
def database(monkeypatch):
    db = Database()
    monkeypatch.setattr(recorder, "write_batch", db.write)
    monkeypatch.setattr(recorder, "database_answers", db.answers)
    monkeypatch.setattr(recorder, "count_quarantined", lambda *a, **k: None)
    return db


async def test_a_refused_record_is_isolated_and_every_other_record_of_its_batch_is_written(settings, database):
    settings.ANALYTICS_BATCH_SIZE = 500
    database.poison = {"r3", "r7"}
    rec = Recorder()
    rec.queue += named(*(f"r{i}" for i in range(10)))
    assert await rec.flush() == 8
    assert sorted(database.rows) == sorted(f"r{i}" for i in range(10) if i not in (3, 7))
    assert database.quarantined == [("r3", "IntegrityError"), ("r7", "IntegrityError")]
    assert rec.queue == [] and rec.quarantined == 2


async def test_a_refused_record_never_blocks_the_records_queued_behind_it(settings, database):
    settings.ANALYTICS_BATCH_SIZE = 2
    database.poison = {"bad"}
    rec = Recorder()
    rec.queue += named("bad", "a", "b", "c")
    await rec.flush()
    rec.queue += named("d")
    await rec.flush()
    assert database.rows == ["a", "b", "c", "d"] and rec.queue == []


async def test_records_are_kept_in_order_while_the_database_is_away_and_written_when_it_is_back(settings, database):
    settings.ANALYTICS_BATCH_SIZE = 3
    rec = Recorder()
    rec.queue += named("a", "b", "c", "d")
    database.away = True
    for _ in range(20):  # a long outage: never quarantined, never dropped
        assert await rec.flush(everything=True) == 0
    assert [r.request_id for r in rec.queue] == ["a", "b", "c", "d"] and database.quarantined == []
    database.away = False
    assert await rec.flush(everything=True) == 4
    assert database.rows == ["a", "b", "c", "d"] and rec.quarantined == 0


async def test_a_connection_error_on_a_database_that_answers_is_retried_then_isolated(settings, database, monkeypatch):
    settings.ANALYTICS_WRITE_ATTEMPTS = 3
    rec = Recorder()

    def write(records, *, using=None, quarantine=None, rollups=True):  # "index row too big": an OperationalError
        if quarantine is None and any(r.request_id == "big" for r in records):
            raise OperationalError("program limit exceeded")
        database.write(records, using=using, quarantine=quarantine)

    monkeypatch.setattr(recorder, "write_batch", write)
    rec.queue += named("big", "ok")
    assert await rec.flush() == 0 and await rec.flush() == 0  # perhaps a lock: kept, in order
    assert len(rec.queue) == 2
    assert await rec.flush() == 1  # the third time, with the database answering: isolated
    assert database.rows == ["ok"] and database.quarantined == [("big", "OperationalError")]


async def test_a_database_that_refuses_every_record_keeps_them_queued_instead_of_quarantining_them(settings, database):
    database.refuse_all = True  # a table missing after a deploy: no record is to blame
    rec = Recorder()
    ids = [f"r{i}" for i in range(500)]
    rec.queue += named(*ids)
    assert await rec.flush() == 0
    assert [r.request_id for r in rec.queue] == ids and rec.quarantined == 0 and not rec.held
    assert database.calls <= 3 * (recorder.ISOLATION_FAILURES + 1)  # not 500 records tried one by one
    database.refuse_all = False
    assert await rec.flush() == 500 and database.rows == ids


async def test_a_record_even_its_degraded_form_cannot_be_written_for_is_held_and_reported(settings, database, caplog):
    database.poison = {"bad"}
    database.degraded_fails = True
    rec = Recorder()
    rec.queue += named("bad", "good")
    assert await rec.flush() == 1
    assert [r.request_id for r in rec.held] == ["bad"] and database.rows == ["good"]
    assert "bad" in rec.report()


async def test_each_cause_is_logged_once_however_many_records_it_refuses(settings, database, caplog, monkeypatch):
    monkeypatch.setattr(recorder, "_reported", set())
    database.poison = {f"bad{i}" for i in range(30)}
    rec = Recorder()
    rec.queue += named(*(f"bad{i}" for i in range(30)), "good")
    for _ in range(3):
        await rec.flush()
    refused = [r for r in caplog.records if "refused a record" in r.getMessage()]
    assert len(refused) == 1 and "IntegrityError" in refused[0].getMessage()
    assert rec.quarantined == 30 and database.rows == ["good"]


async def test_a_shutdown_flush_writes_every_good_record_and_reports_what_it_could_not(database, caplog):
    database.poison = {"bad"}
    database.degraded_fails = True
    rec = recorder.recorder()
    rec.queue += named("a", "bad", "b")
    await recorder.flush_all()
    assert database.rows == ["a", "b"] and rec.queue == []
    shutdown = [r.getMessage() for r in caplog.records if "at shutdown" in r.getMessage()]
    assert len(shutdown) == 1 and "1 refused records" in shutdown[0] and "bad" in shutdown[0]

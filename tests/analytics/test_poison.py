"""The request log never stops: poison records on the real database (SQLite, or PostgreSQL with
DATABASE_URL), through the recorder's own queue."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from prometheus_client.parser import text_string_to_metric_families

from analytics import recorder
from analytics.models import LogQuarantine, RequestLog, RouteRollup
from analytics.recorder import Recorder
from tests.conftest import auth

from .conftest import attempt, record

pytestmark = pytest.mark.django_db(transaction=True)


def poison_records():
    """One of each class a database refuses or that breaks a sum: a lone surrogate (not
    UTF-8), names longer than their columns, NUL (refused by PostgreSQL, in JSON too),
    numbers beyond their columns, NaN and infinity."""
    return [
        replace(record([attempt("a", model="gpt\ud800")], request_id="surrogate"), route="chat\udfff"),
        replace(record([attempt("p" * 300, model="m" * 5000)], request_id="long"), route="r" * 1000),
        record([attempt("a", model="a\x00b"), attempt("a", "failure", reason="nul\x00inside")], request_id="nul\x00"),
        replace(
            record(
                [attempt("a", ms=float("inf"))],
                request_id="huge",
                tokens=(10**30, -5),
                cost="1e30",
                latency_ms=float("nan"),
                api_key_id=10**40,
            ),
            status=10**9,
            calls=10**12,
        ),
    ]


async def flushed(rec: Recorder) -> None:
    await rec.flush(everything=True)
    rec.stop()  # the background writer record() started: the flush above did its work


@sync_to_async
def logged() -> dict[str, RequestLog]:
    return {row.request_id: row for row in RequestLog.objects.all()}


async def test_the_request_log_keeps_recording_after_poison_records(settings):
    settings.ANALYTICS_FLUSH_INTERVAL_S = 60
    rec = Recorder()
    rec.record(record([attempt("a")], request_id="before"))
    for r in poison_records():
        rec.record(r)
    rec.record(record([attempt("a")], request_id="after"))
    await flushed(rec)
    rec.record(record([attempt("a")], request_id="later"))
    await flushed(rec)

    rows = await logged()
    assert {"before", "after", "later"} <= set(rows) and rec.queue == []
    # every poison record is in the log too, bounded to its columns
    assert rows["surrogate"].model == "gpt\ufffd" and rows["surrogate"].route == "chat\ufffd"
    assert len(rows["long"].model) == 200 and len(rows["long"].route) == 200 and len(rows["long"].provider) == 64
    nul = rows["nul"]
    assert nul.error == "nulinside" and nul.attempts[0]["model"] == "ab" and nul.attempts[1]["reason"] == "nulinside"
    huge = rows["huge"]
    assert (huge.tokens_in, huge.tokens_out, huge.status, huge.calls) == (2**31 - 1, 0, 32767, 32767)
    assert huge.cost == Decimal("999999.99999999") and huge.latency_ms == 0 and huge.api_key_id == 2**63 - 1
    assert await sync_to_async(RouteRollup.objects.filter(granularity="d").count)() > 0


async def test_a_record_the_database_refuses_is_quarantined_degraded_and_counted_on_metrics(
    settings, monkeypatch, gateway, key
):
    """A poison the bounds do not know (the bounds switched off here): the database refuses
    it, the rest of its batch is written, it is written in its degraded (ASCII) form and
    counted, on SQLite (the surrogate) and PostgreSQL (both)."""
    settings.ANALYTICS_FLUSH_INTERVAL_S = 60
    monkeypatch.setattr(recorder, "bound", lambda r: r)
    rec = Recorder()
    rec.record(record([attempt("a")], request_id="first"))
    rec.record(record([attempt("a", model="gpt\ud800")], request_id="surrogate"))
    rec.record(record([attempt("a")], request_id="second"))
    await flushed(rec)

    rows = await logged()
    assert {"first", "second", "surrogate"} <= set(rows) and rec.queue == []
    assert rows["surrogate"].model == "gpt\\ud800"  # degraded: the surrogate as its escape
    quarantine = await sync_to_async(list)(LogQuarantine.objects.all())
    assert [(q.cause, q.count, q.degraded, q.last_request_id) for q in quarantine] == [
        ("UnicodeEncodeError", 1, 1, "surrogate")
    ]

    text = (await gateway.get("/metrics", headers=auth(key))).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("gateway_request_log_quarantined_total", (("cause", "UnicodeEncodeError"),))] == 1
    assert samples[("gateway_request_log_degraded_total", (("cause", "UnicodeEncodeError"),))] == 1


async def test_a_record_whose_rollups_are_refused_still_gets_its_raw_row(settings, monkeypatch):
    """A rollup row that cannot take more (PostgreSQL: bigint out of range) refuses every
    record adding to it, in any form: the raw row still goes in, counted as quarantined."""
    from analytics import rollups

    settings.ANALYTICS_FLUSH_INTERVAL_S = 60
    add = rollups.add_to_rollups

    def add_to_rollups(records, *, using=None):
        if any(r.route == "full" for r in records):
            raise OverflowError("bigint out of range")
        add(records, using=using)

    monkeypatch.setattr(rollups, "add_to_rollups", add_to_rollups)
    rec = Recorder()
    rec.record(record([attempt("a")], request_id="one"))
    rec.record(record([attempt("a")], request_id="overflow", route="full"))
    rec.record(record([attempt("a")], request_id="two"))
    await flushed(rec)

    assert {"one", "two", "overflow"} <= set(await logged()) and not rec.held
    q = await sync_to_async(LogQuarantine.objects.get)()
    assert (q.cause, q.count, q.degraded) == ("OverflowError", 1, 1)
    routes = await sync_to_async(set)(RouteRollup.objects.values_list("route", flat=True))
    assert routes == {"chat"}

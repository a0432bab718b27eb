from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db.models import Sum

from analytics.models import ErrorRollup, ProviderRollup, RequestLog, RouteRollup
from analytics.recorder import flush_all, record_request, write_batch

from .conftest import BURST_A, BURST_B, BURST_ROUTE, NOW, attempt, record


def sums(rows, granularity, **where):
    """Summed counters of a rollup model (or queryset) in one granularity."""
    qs = rows.objects.all() if hasattr(rows, "objects") else rows
    fields = [
        f.name
        for f in qs.model._meta.concrete_fields
        if f.name not in ("id", "granularity", "bucket", "route", "provider", "kind", "error")
    ]
    return qs.filter(granularity=granularity, **where).aggregate(**{f: Sum(f) for f in fields})


def assert_counts(got: dict, expected: dict) -> None:
    assert {k: got[k] for k in expected} == expected


@pytest.mark.django_db(transaction=True)
async def test_a_burst_of_mixed_outcomes_is_counted_exactly_in_every_granularity(burst, settings):
    settings.ANALYTICS_FLUSH_INTERVAL_S = 60  # only the explicit flush writes
    for r in burst:
        record_request(r)
    await flush_all()

    from asgiref.sync import sync_to_async

    @sync_to_async
    def check() -> None:
        assert RequestLog.objects.count() == 12
        for granularity in "mhd":
            assert_counts(sums(RouteRollup, granularity), BURST_ROUTE)
            assert_counts(sums(ProviderRollup, granularity, provider="a"), BURST_A)
            assert_counts(sums(ProviderRollup, granularity, provider="b"), BURST_B)
        served = dict(RouteRollup.objects.filter(granularity="m").values_list("provider").annotate(Sum("requests")))
        assert served == {"a": 6, "b": 4, "": 2}
        errors = dict(ErrorRollup.objects.filter(granularity="h").values_list("error").annotate(Sum("count")))
        assert errors == {"http_500": 6, "http_400": 2, "http_503": 4, "http_502": 6, "open": 1}

    await check()


@pytest.mark.django_db(transaction=True)
async def test_records_are_not_written_when_analytics_is_disabled(burst, settings):
    settings.ANALYTICS_ENABLED = False
    for r in burst:
        record_request(r)
    await flush_all()
    from asgiref.sync import sync_to_async

    assert await sync_to_async(RequestLog.objects.count)() == 0
    assert await sync_to_async(RouteRollup.objects.count)() == 0


@pytest.mark.django_db(transaction=True)
def test_two_threads_writing_batches_at_once_still_give_exact_counts(burst, shared_db):
    alias = shared_db.alias
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def writer() -> None:
        shared_db.open()
        try:
            start.wait()
            for _ in range(10):
                write_batch(burst, using=alias)
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)
        finally:
            shared_db.close()

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    shared_db.open()
    assert RequestLog.objects.using(alias).count() == 2 * 10 * 12
    for granularity in "mhd":
        assert_counts(sums(RouteRollup.objects.using(alias), granularity), {k: v * 20 for k, v in BURST_ROUTE.items()})
        assert_counts(
            sums(ProviderRollup.objects.using(alias), granularity, provider="a"),
            {k: v * 20 for k, v in BURST_A.items()},
        )
    # served by a, by b, by nobody: one row each, however the writers interleaved
    assert RouteRollup.objects.using(alias).filter(granularity="d").count() == 3


@pytest.mark.django_db
def test_requests_land_in_the_minute_hour_and_day_of_their_start():
    write_batch(
        [
            record([attempt("a")], at=NOW),
            record([attempt("a")], at=NOW + timedelta(minutes=1)),
            record([attempt("a")], at=NOW + timedelta(hours=12)),
        ]
    )

    def buckets(g: str) -> list[tuple[str, int]]:
        rows = RouteRollup.objects.filter(granularity=g).values_list("bucket", "requests")
        return sorted((b.strftime("%d %H:%M"), n) for b, n in rows)

    assert buckets("m") == [("20 12:30", 1), ("20 12:31", 1), ("21 00:30", 1)]
    assert buckets("h") == [("20 12:00", 2), ("21 00:00", 1)]
    assert buckets("d") == [("20 00:00", 2), ("21 00:00", 1)]


@pytest.mark.django_db
def test_cost_and_tokens_add_up_exactly():
    write_batch([record([attempt("a")], cost="0.00000001", tokens=(3, 4)) for _ in range(1000)])
    row = RouteRollup.objects.get(granularity="d")
    assert (row.cost_nano, row.tokens_in, row.tokens_out) == (10_000, 3000, 4000)
    assert ProviderRollup.objects.get(granularity="d", provider="a").cost_nano == 10_000


@pytest.mark.django_db
def test_a_failed_batch_leaves_neither_raw_rows_nor_rollups(burst, monkeypatch):
    from analytics import recorder

    def broken(records, *, using=None):
        raise RuntimeError("disk full")

    monkeypatch.setattr("analytics.rollups.add_to_rollups", broken)
    with pytest.raises(RuntimeError):
        recorder.write_batch(burst)
    assert RequestLog.objects.count() == 0 and RouteRollup.objects.count() == 0

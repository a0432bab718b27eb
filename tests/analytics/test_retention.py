from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command

from analytics.models import ErrorRollup, ProviderRollup, RequestLog, RouteRollup
from analytics.recorder import write_batch
from analytics.retention import apply_retention

from .conftest import NOW, attempt, record

pytestmark = pytest.mark.django_db


def write_at(*ages: timedelta) -> None:
    write_batch(
        [record([attempt("a", "failure", status=500, reason="http_500"), attempt("b")], at=NOW - age) for age in ages]
    )


def test_retention_deletes_only_what_is_due():
    write_at(
        timedelta(days=400),
        timedelta(days=91),
        timedelta(days=89),
        timedelta(days=8),
        timedelta(days=6, hours=23),
        timedelta(hours=49),
        timedelta(hours=47),
        timedelta(0),
    )
    deleted = apply_retention(now=NOW)

    ages = sorted(NOW - at for at in RequestLog.objects.values_list("at", flat=True))
    assert ages == [timedelta(0), timedelta(hours=47), timedelta(hours=49), timedelta(days=6, hours=23)]
    # minute rows: those of the last 48 hours (one route and two provider rows and one error each)
    assert {NOW - b for b in RouteRollup.objects.filter(granularity="m").values_list("bucket", flat=True)} == {
        timedelta(seconds=15),
        timedelta(hours=47, seconds=15),
    }
    assert RouteRollup.objects.filter(granularity="h").count() == 6  # 91 and 400 days gone
    assert RouteRollup.objects.filter(granularity="d").count() == 7  # kept for ever (47 h and 49 h: one day)
    assert deleted == {"raw": 4, "minute": 6 * 4, "hour": 2 * 4, "day": 0, "bodies": 0}
    assert ProviderRollup.objects.filter(granularity="m").count() == 2 * 2
    assert ErrorRollup.objects.filter(granularity="m").count() == 2
    assert apply_retention(now=NOW) == {"raw": 0, "minute": 0, "hour": 0, "day": 0, "bodies": 0}


def test_a_big_delete_goes_in_chunks_and_max_rows_bounds_one_call(settings):
    settings.ANALYTICS_PRUNE_CHUNK = 3
    write_batch([record([attempt("a")], at=NOW - timedelta(days=10, seconds=i)) for i in range(20)])
    assert apply_retention(now=NOW, max_rows=7)["raw"] == 7
    assert RequestLog.objects.count() == 13
    assert apply_retention(now=NOW)["raw"] == 13
    assert RequestLog.objects.count() == 0


def test_a_rollup_bucket_is_kept_until_all_of_it_is_older_than_the_cutoff(settings):
    settings.ANALYTICS_HOUR_RETENTION_DAYS = 1
    write_at(timedelta(days=1, minutes=10))  # its hour started 1 day 40 min ago... and ended 1 day -20 min ago
    apply_retention(now=NOW)
    assert RouteRollup.objects.filter(granularity="h").count() == 1
    apply_retention(now=NOW + timedelta(minutes=30))
    assert RouteRollup.objects.filter(granularity="h").count() == 0


def test_day_rollups_go_only_when_a_day_retention_is_set(settings):
    write_at(timedelta(days=1000))
    apply_retention(now=NOW)
    assert RouteRollup.objects.filter(granularity="d").count() == 1
    settings.ANALYTICS_DAY_RETENTION_DAYS = 365
    assert apply_retention(now=NOW)["day"] == 4  # route, two providers, one error


def test_the_prune_command_applies_retention_and_says_what_it_deleted(capsys):
    write_batch([record([attempt("a")], at=NOW - timedelta(days=30))])
    call_command("prune_analytics")
    out = capsys.readouterr().out
    assert "raw: deleted 1 rows" in out and "day: kept" in out
    assert RequestLog.objects.count() == 0

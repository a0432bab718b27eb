from __future__ import annotations

from datetime import timedelta

import pytest

from analytics import queries
from analytics.export import export_csv
from analytics.models import RequestLog
from analytics.recorder import write_batch
from analytics.retention import apply_retention

from .conftest import NOW, attempt, record

pytestmark = pytest.mark.django_db

AGES = (timedelta(days=29), timedelta(days=3), timedelta(hours=20), timedelta(minutes=30), timedelta(0))


@pytest.fixture
def spread():
    """One failover request (a fails, b serves) at each age."""
    write_batch(
        [
            record([attempt("a", "failure", 30, status=503, reason="http_503"), attempt("b", ms=40)], at=NOW - age)
            for age in AGES
        ]
    )


@pytest.mark.parametrize(("window", "expected"), [("5m", 1), ("1h", 2), ("24h", 3), ("7d", 4), ("30d", 5)])
def test_each_window_counts_the_requests_inside_it(spread, window, expected):
    answer = queries.summary(window, now=NOW)
    assert answer["total"]["requests"] == expected
    assert answer["providers"]["a"]["failures"] == expected and answer["providers"]["b"]["successes"] == expected
    assert answer["total"]["failovers"] == expected and answer["total"]["failover_rate"] == 1.0


def test_windows_are_answered_from_rollups_after_raw_rows_and_minute_rollups_are_gone(spread):
    before = {w: queries.summary(w, now=NOW)["total"] for w in ("5m", "1h", "24h", "7d", "30d")}
    RequestLog.objects.all().delete()
    apply_retention(now=NOW)
    after = {w: queries.summary(w, now=NOW)["total"] for w in ("5m", "1h", "24h", "7d", "30d")}
    assert after == before


@pytest.mark.parametrize(
    ("window", "points", "step", "last"),
    [
        ("5m", 5, 60, 1),
        ("1h", 60, 60, 1),
        ("24h", 24, 3600, 2),
        ("7d", 169, 3600, 2),  # its old edge is widened to a whole hour: minute rollups are gone there
        ("30d", 30, 86400, 2),
    ],
)
def test_series_have_one_point_per_step_up_to_now(spread, window, points, step, last):
    answer = queries.series(window, now=NOW)
    assert (len(answer["points"]), answer["step_s"]) == (points, step)
    assert answer["points"][-1]["requests"] == last  # now's step (an hour or a day: also 30 min ago)
    assert answer["points"][-1]["latency_ms"]["p50"] is not None


def test_a_provider_series_counts_its_attempts_and_can_leave_latency_out(spread):
    full = queries.series("1h", provider="a", now=NOW)["points"]
    assert [p["at"][11:16] for p in full if p["failures"]] == ["12:00", "12:30"]
    slim = queries.provider_series("1h", latency=False, now=NOW)["providers"]
    assert sum(p["requests"] for p in slim["b"]) == 2 and slim["b"][-1]["latency_ms"]["p95"] is None


def test_the_page_has_comparison_trends_costs_and_top_errors(spread):
    page = queries.page("7d", now=NOW)
    assert [p["name"] for p in page["providers"]] == ["a", "b"]  # busiest first: a has 4 attempts too
    assert page["total"]["failover_rate"] == 1.0
    assert page["breakdown"][0]["route"] == "chat"
    assert page["costs"]["providers"]["b"]["cost"] == pytest.approx(0.0004)
    assert page["costs"]["providers"]["a"]["cost"] == 0 and page["costs"]["total"] == pytest.approx(0.0004)
    assert page["top_errors"][0]["error"] == "http_503" and page["top_errors"][0]["count"] == 4


def test_the_csv_export_sums_to_the_window_totals(spread):
    lines = export_csv("24h", now=NOW).splitlines()
    header = lines[0].split(",")
    rows = [dict(zip(header, line.split(","), strict=True)) for line in lines[1:]]
    assert sum(int(r["requests"]) for r in rows if r["provider"] == "a") == 3
    assert {r["bucket_seconds"] for r in rows} == {"3600"}
    with pytest.raises(ValueError):
        export_csv("24h", by="key")


def test_latency_percentiles_count_only_requests_that_reached_a_provider():
    refused = [
        record(
            [attempt("a", skipped="open", ms=0), attempt("b", skipped="cooldown", ms=0)],
            outcome="unavailable",
            latency_ms=0.8,
        )
        for _ in range(30)
    ]
    refused += [record([], outcome="caller_error", latency_ms=0.5) for _ in range(10)]  # refused at the edge
    served = [record([attempt("a", ms=290)], latency_ms=300) for _ in range(10)]
    write_batch(refused + served)
    total = queries.summary("5m", now=NOW)["total"]
    assert total["requests"] == 50 and total["unavailable"] == 30
    latency = total["latency_ms"]
    assert 250 <= latency["p50"] <= 360 and latency["avg"] == 300.0
    write_batch([record([attempt("a", skipped="open", ms=0)], outcome="unavailable", route="down", latency_ms=1)])
    assert queries.summary("5m", now=NOW)["routes"]["down"]["latency_ms"] == {
        "avg": None,
        "p50": None,
        "p95": None,
        "p99": None,
    }  # nothing reached a provider: no latency

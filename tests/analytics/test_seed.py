from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Sum

from analytics import queries
from analytics.models import RequestLog, RouteRollup
from analytics.records import COLUMNS, RequestRecord
from analytics.retention import cutoffs
from analytics.rollups import ROUTE_VALUES, Accumulator

from .conftest import NOW

pytestmark = pytest.mark.django_db


def test_seeded_rollups_are_exactly_the_rollups_of_the_seeded_rows():
    from analytics.seed import seed

    assert seed(3000, days=3, now=NOW) == 3000
    assert RequestLog.objects.count() == 3000
    assert RouteRollup.objects.filter(granularity="d").aggregate(n=Sum("requests"))["n"] == 3000

    fields = [f for f in COLUMNS if f != "request_id"]
    recomputed = Accumulator()
    for values in RequestLog.objects.values_list(*fields):
        recomputed.add_record(RequestRecord(request_id="", **dict(zip(fields, values, strict=True))))
    due = cutoffs(NOW.replace(second=0))  # the seed's history ends with NOW's minute
    integers = [i for i, c in enumerate(ROUTE_VALUES) if not c.endswith("_ms")]
    for granularity, since in (("m", due["minute"]), ("h", None), ("d", None)):
        expected = {row[:4]: [row[4 + i] for i in integers] for row in recomputed.rows(granularity, since)[0]}
        stored = {
            (granularity, r["bucket"], r["route"], r["provider"]): [r[ROUTE_VALUES[i]] for i in integers]
            for r in RouteRollup.objects.filter(granularity=granularity).values()
        }
        assert stored == expected, granularity


def test_seeded_history_has_several_providers_routes_failovers_and_errors():
    from analytics.seed import seed

    seed(8000, days=2, now=NOW, providers=["p1", "p2", "p3"])
    page = queries.page("24h", now=NOW)
    assert {p["name"] for p in page["providers"]} == {"p1", "p2", "p3"}
    assert set(page["routes"]) == {"default", "fast", "long-context", "embeddings"}
    total = page["total"]
    assert 0.9 < total["success_rate"] < 1 and total["failovers"] > 0 and total["cost"] > 0
    assert total["latency_ms"]["p50"] < total["latency_ms"]["p95"] < total["latency_ms"]["p99"]
    assert {e["kind"] for e in page["top_errors"]} >= {"attempt", "request"}
    # hourly points: the window's first, partial hour is in the totals but starts no point
    points = page["series"]["points"]
    assert len(points) == 24 and points[0]["at"] == "2026-11-19T13:00:00Z"
    assert 0.9 * total["requests"] < sum(p["requests"] for p in points) < total["requests"]


def test_the_seed_command_reports_progress_and_is_repeatable(capsys):
    # The history ends at --until (default: now, to the minute): two runs a minute apart would
    # spread their rows differently, so the same history is the same seed and the same end.
    args = ["seed_analytics", "--rows", "500", "--days", "1", "--providers", "x", "y", "--until", "2026-11-20T12:00"]
    call_command(*args)
    out = capsys.readouterr().out
    assert "500 / 500 rows (100%)" in out and "seeded 500 requests" in out
    first = list(RequestLog.objects.order_by("id").values_list("at", "route", "provider", "latency_ms"))
    until = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert (
        until - timedelta(days=1) <= min(r[0] for r in first)
        and until - timedelta(hours=1) < max(r[0] for r in first) < until
    )
    call_command(*args, "--clear")
    assert list(RequestLog.objects.order_by("id").values_list("at", "route", "provider", "latency_ms")) == first
    with pytest.raises(CommandError, match="not an ISO 8601 time"):
        call_command("seed_analytics", "--rows", "5", "--until", "yesterday")

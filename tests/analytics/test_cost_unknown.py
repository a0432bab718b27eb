"""An unknown cost in the request log and the rollups: stored as NULL, never summed as 0,
counted apart in `cost_unknown`, and reported beside the known sum by the queries."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from analytics import queries
from analytics.export import export_csv
from analytics.models import ProviderRollup, RequestLog, RouteRollup
from analytics.recorder import write_batch
from analytics.requests import summary

from .conftest import NOW, attempt, record


def unknown(request_id: str, provider: str = "a"):  # type: ignore[no-untyped-def]
    return replace(record([attempt(provider)], request_id=request_id), cost=None)


@pytest.mark.django_db
def test_an_unknown_cost_is_a_null_in_the_log_and_a_count_apart_in_every_rollup():
    write_batch([record([attempt("a")], cost="0.25", request_id="known"), unknown("u1"), unknown("u2")])

    rows = {r.request_id: r.cost for r in RequestLog.objects.all()}
    assert rows == {"known": Decimal("0.25"), "u1": None, "u2": None}
    for granularity in "mhd":
        route = RouteRollup.objects.get(granularity=granularity)
        assert (route.cost_nano, route.cost_unknown, route.requests) == (250_000_000, 2, 3)
        served = ProviderRollup.objects.get(granularity=granularity, provider="a")
        assert (served.cost_nano, served.cost_unknown) == (250_000_000, 2)


@pytest.mark.django_db
def test_the_summary_and_the_costs_report_the_known_sum_and_the_unknown_count():
    write_batch([record([attempt("a")], cost="0.5", request_id="k"), unknown("u", provider="b")])

    answer = queries.summary("1h", now=NOW)
    assert (answer["total"]["cost"], answer["total"]["cost_unknown"]) == (0.5, 1)
    assert answer["providers"]["a"]["cost_unknown"] == 0
    assert (answer["providers"]["b"]["cost"], answer["providers"]["b"]["cost_unknown"]) == (0.0, 1)
    costs = queries.costs("1h", now=NOW)
    assert (costs["total"], costs["cost_unknown"]) == (0.5, 1)
    assert costs["providers"]["b"]["cost_unknown"] == 1


@pytest.mark.django_db
def test_the_request_log_api_says_null_for_an_unknown_cost_and_a_string_for_a_known_one():
    write_batch([record([attempt("a")], cost="0", request_id="free"), unknown("u")])
    shown = {r.request_id: summary(r, {})["cost"] for r in RequestLog.objects.all()}
    assert shown == {"free": "0", "u": None}


@pytest.mark.django_db
def test_the_csv_export_has_the_unknown_count_beside_the_known_cost():
    write_batch([record([attempt("a")], cost="0.5", request_id="k"), unknown("u1"), unknown("u2")])
    header, *rows = export_csv("1h", now=NOW).splitlines()
    columns = header.split(",")
    cells = [dict(zip(columns, row.split(","), strict=True)) for row in rows]
    assert sum(float(c["cost"]) for c in cells) == 0.5
    assert sum(int(c["cost_unknown"]) for c in cells) == 2

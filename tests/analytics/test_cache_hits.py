"""A request the response cache answered is counted as a cache hit: a success with no call,
no latency sample and no cost."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async

from analytics.recorder import write_batch
from analytics.rollups import R, contribution
from tests.conftest import auth

from .conftest import attempt, record

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_hit_counts_a_success_and_a_hit_and_no_call():
    hit = replace(record([], outcome="success", cost="0", tokens=(0, 0)), cache="hit", provider="", model="")
    values = dict(contribution(hit).route_values)
    assert values[R["cache_hits"]] == 1 and values[R["successes"]] == 1
    assert R["calls"] not in values and R["latency_sum_ms"] not in values
    miss = replace(record([attempt("a")]), cache="miss")
    assert R["cache_hits"] not in dict(contribution(miss).route_values)


async def test_hits_show_in_the_analytics_and_the_request_log(gateway, key):
    hit = replace(
        record([], outcome="success", cost="0", tokens=(0, 0), request_id="from-cache"),
        cache="hit",
        provider="",
        model="",
        saved=Decimal("0.0025"),
    )
    await sync_to_async(write_batch)([hit, replace(record([attempt("a")], request_id="called"), cache="miss")])
    body = (await gateway.get("/api/analytics?window=30d", headers=auth(key))).json()
    assert body["total"]["cache_hits"] == 1 and body["total"]["requests"] == 2
    assert body["total"]["cache_saved"] == 0.0025 and body["total"]["cost"] == 0.0001  # the miss's cost only
    logged = (await gateway.get("/api/requests/from-cache", headers=auth(key))).json()
    assert (logged["cache"], logged["provider"], logged["cost"], logged["saved"]) == ("hit", None, "0", "0.0025")

"""The request log API: find a request by the X-Request-Id its answer carried, list and filter
the log, page through it with a cursor."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.db import connection

from analytics.models import RequestLog
from analytics.recorder import flush_all
from analytics.requests import Filters, _filtered
from tests.conftest import auth
from tests.gateway.conftest import CHAT, provider

from .conftest import NOW, attempt, record

pytestmark = pytest.mark.django_db(transaction=True)

QUIET_BREAKER = {"consecutive_failures": 100, "min_calls": 1000}


@sync_to_async
def named_key(name: str, scopes: list[str]) -> str:
    from providers.models import ApiKey

    return ApiKey.issue(name, scopes)[1]


@pytest.fixture
async def chain(configure, upstream_a, upstream_b, settings):
    settings.ANALYTICS_FLUSH_INTERVAL_S = 60  # the explicit flush writes everything
    await configure(
        {
            "providers": [
                provider("up-a", upstream_a.url + "/v1", breaker=QUIET_BREAKER, retry={"max_attempts": 1}),
                provider("up-b", upstream_b.url + "/v1", breaker=QUIET_BREAKER, retry={"max_attempts": 1}),
            ],
            "routes": [
                {
                    "name": "chain",
                    "capability": "chat",
                    "targets": [{"provider": "up-a", "model": "gpt-4o-mini"}, {"provider": "up-b", "model": "gpt-4o"}],
                }
            ],
        }
    )


async def test_a_request_is_found_by_the_id_its_answer_carried_with_its_attempt_timeline(gateway, chain, upstream_a):
    key = await named_key("team-a", ["gateway", "read"])
    upstream_a.fault(status=503, times=1)
    answer = await gateway.post("/v1/chat/completions", json={**CHAT, "model": "chain"}, headers=auth(key))
    assert answer.status_code == 200
    await flush_all()

    found = await gateway.get(f"/api/requests/{answer.headers['X-Request-Id']}", headers=auth(key))
    assert found.status_code == 200
    body = found.json()
    assert (body["route"], body["provider"], body["model"], body["key"], body["ok"], body["failovers"]) == (
        "chain",
        "up-b",
        "gpt-4o",
        "team-a",
        True,
        1,
    )
    assert body["tokens"]["in"] > 0 and body["timings"]["total_ms"] > 0
    timeline = [(a["provider"], a["outcome"], a["status"]) for a in body["attempts"]]
    assert timeline == [("up-a", "failure", 503), ("up-b", "success", 200)]

    missing = await gateway.get("/api/requests/not-a-request", headers=auth(key))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "request_not_found"


async def test_the_log_is_filtered_by_route_provider_key_and_status(gateway, chain, upstream_a, upstream_b):
    mine = await named_key("mine", ["gateway", "read"])
    other = await named_key("other", ["gateway"])
    await gateway.post("/v1/chat/completions", json={**CHAT, "model": "chain"}, headers=auth(mine))
    await gateway.post("/v1/chat/completions", json={**CHAT, "model": "up-b/gpt-4o"}, headers=auth(other))
    upstream_a.fault(status=500, times=1)
    upstream_b.fault(status=500, times=1)
    failed = await gateway.post("/v1/chat/completions", json={**CHAT, "model": "chain"}, headers=auth(mine))
    assert failed.status_code == 502
    await flush_all()

    async def ids(query: str) -> list[tuple[str, str | None, bool]]:
        response = await gateway.get(f"/api/requests?{query}", headers=auth(mine))
        assert response.status_code == 200, response.text
        return [(r["route"], r["provider"], r["ok"]) for r in response.json()["requests"]]

    assert await ids("") == [("chain", None, False), ("up-b/gpt-4o", "up-b", True), ("chain", "up-a", True)]
    assert await ids("route=chain") == [("chain", None, False), ("chain", "up-a", True)]
    assert await ids("provider=up-b") == [("up-b/gpt-4o", "up-b", True)]
    assert await ids("key=other") == [("up-b/gpt-4o", "up-b", True)]
    assert await ids("status=failed") == [("chain", None, False)]
    assert await ids("status=ok&route=chain") == [("chain", "up-a", True)]
    assert await ids("until=2000-01-01T00:00:00Z") == []
    detail = (await gateway.get(f"/api/requests/{failed.headers['X-Request-Id']}", headers=auth(mine))).json()
    assert [(a["provider"], a["status"]) for a in detail["attempts"]] == [("up-a", 500), ("up-b", 500)]
    assert detail["outcome"] == "failure" and detail["failovers"] == 1


async def test_paging_with_the_cursor_shows_every_row_once_even_when_rows_share_an_instant(gateway, key):
    @sync_to_async
    def fill() -> None:
        from analytics.recorder import write_batch

        same = [record([attempt("a")], request_id=f"same-{i}", at=NOW) for i in range(5)]
        older = [record([attempt("a")], request_id=f"old-{i}", at=NOW - timedelta(seconds=i + 1)) for i in range(3)]
        write_batch(same + older)

    await fill()
    seen: list[str] = []
    cursor = ""
    pages = 0
    while True:
        response = await gateway.get(f"/api/requests?limit=3{cursor}", headers=auth(key))
        assert response.status_code == 200
        body = response.json()
        seen += [r["request_id"] for r in body["requests"]]
        pages += 1
        if body["next_cursor"] is None:
            break
        cursor = f"&cursor={body['next_cursor']}"
    assert pages == 3 and len(seen) == 8 and len(set(seen)) == 8
    assert seen[-3:] == ["old-0", "old-1", "old-2"]  # newest first


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("status=bogus", "status"),
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("limit=100000", "limit"),
        ("since=yesterday", "since"),
        ("cursor=%25%25%25", "cursor"),
        ("cursor=Zm9vfGJhcg", "cursor"),
        ("since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", "since"),
        ("route=" + "r" * 300, "route"),
    ],
)
async def test_a_bad_parameter_is_a_400_naming_it(gateway, key, query, param):
    response = await gateway.get(f"/api/requests?{query}", headers=auth(key))
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


async def test_the_log_needs_a_read_key(gateway, make_key):
    assert (await gateway.get("/api/requests")).status_code == 401
    gateway_only = await make_key(["gateway"])
    assert (await gateway.get("/api/requests", headers=auth(gateway_only))).status_code == 403
    assert (await gateway.get("/api/requests/abc", headers=auth(gateway_only))).status_code == 403


@pytest.mark.parametrize(
    "filters",
    [
        Filters(),
        Filters(route="chain"),
        Filters(provider="up-a"),
        Filters(status="ok"),
        Filters(status="failed"),
        Filters(route="chain", cursor=(NOW, 10)),
    ],
)
def test_each_filter_is_read_through_an_index_without_sorting_the_whole_log(filters):
    """A page stays one index range scan at any size: the plan uses an index and sorts nothing."""
    if connection.vendor != "sqlite":
        pytest.skip("the plan's wording is SQLite's")
    sql, params = _filtered(filters)[:50].query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        plan = " / ".join(str(row[-1]) for row in cursor.fetchall())
    assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, plan
    assert "TEMP B-TREE" not in plan, plan
    if filters.status == "failed":  # the failed rows' own index: no walk over the successes
        assert "analytics_r_failed_at" in plan, plan
    if filters.cursor:  # a later page starts inside the index, it does not skip the newer rows
        assert "at<?" in plan, plan
    assert RequestLog.objects.count() == 0  # nothing needed: the plan is the point


async def test_a_caller_s_own_long_request_id_is_kept_whole_and_found(gateway, chain, key):
    mine = "client-" + "x" * 50 + ":1.2"  # 61 characters of the allowed kind
    answer = await gateway.post(
        "/v1/chat/completions", json={**CHAT, "model": "chain"}, headers={**auth(key), "X-Request-Id": mine}
    )
    assert answer.status_code == 200 and answer.headers["X-Request-Id"] == mine
    await flush_all()
    found = await gateway.get(f"/api/requests/{mine}", headers=auth(key))
    assert found.status_code == 200 and found.json()["request_id"] == mine

from __future__ import annotations

import csv
import io

import pytest
from asgiref.sync import sync_to_async

from analytics.recorder import write_batch
from providers.config import apply_config
from tests.conftest import auth

pytestmark = pytest.mark.django_db(transaction=True)

PROVIDER_FIELDS = {
    "requests",
    "successes",
    "failures",
    "success_rate",
    "failovers",
    "latency_ms",
    "tokens_in",
    "tokens_out",
    "cost",
}


@pytest.fixture
async def history(burst):
    """Two configured providers, one idle, and the burst written a moment ago."""
    from datetime import UTC, datetime

    @sync_to_async
    def setup() -> None:
        apply_config(
            {
                "providers": [
                    {"name": "a", "kind": "simulated"},
                    {"name": "b", "kind": "simulated"},
                    {"name": "idle", "kind": "simulated"},
                ]
            },
            actor="test",
            prune=True,
        )
        now = datetime.now(UTC)
        for r in burst:
            r.at = now
        write_batch(burst)

    await setup()


async def test_the_summary_has_the_contract_fields_in_total_per_provider_and_per_route(gateway, key, history):
    response = await gateway.get("/api/analytics?window=1h", headers=auth(key))
    assert response.status_code == 200
    body = response.json()
    assert body["window"] == "1h" and body["from"] < body["to"]
    assert set(body) == {"window", "from", "to", "total", "providers", "routes"}
    assert set(body["total"]) >= PROVIDER_FIELDS and set(body["total"]["latency_ms"]) == {"avg", "p50", "p95", "p99"}
    total = body["total"]
    assert (total["requests"], total["successes"], total["failures"], total["failovers"]) == (12, 9, 2, 5)
    assert total["success_rate"] == round(9 / 11, 4)
    assert total["tokens_in"] == 90 and total["cost"] == pytest.approx(0.0009)
    assert set(body["providers"]) == {"a", "b", "idle"}
    a = body["providers"]["a"]
    assert set(a) >= PROVIDER_FIELDS
    assert (a["requests"], a["successes"], a["failures"], a["failovers"]) == (16, 5, 10, 5)
    assert body["providers"]["idle"]["requests"] == 0 and body["providers"]["idle"]["success_rate"] is None
    assert body["routes"]["chat"]["requests"] == 12


async def test_the_default_window_is_24h_and_a_bad_window_is_a_400_json_error(gateway, key, history):
    assert (await gateway.get("/api/analytics", headers=auth(key))).json()["window"] == "24h"
    bad = await gateway.get("/api/analytics?window=2w", headers=auth(key))
    assert bad.status_code == 400 and "unknown window" in bad.json()["error"]["message"]
    bad = await gateway.get("/api/analytics/a?window=1y", headers=auth(key))
    assert bad.status_code == 400


async def test_a_provider_detail_has_its_block_routes_series_and_top_errors(gateway, key, history):
    body = (await gateway.get("/api/analytics/a?window=5m", headers=auth(key))).json()
    assert body["provider"] == "a" and set(body) >= PROVIDER_FIELDS
    assert body["requests"] == 16 and body["routes"]["chat"]["requests"] == 16
    assert body["series"]["step_s"] == 60 and len(body["series"]["points"]) == 5
    assert sum(p["requests"] for p in body["series"]["points"]) == 16
    assert body["top_errors"][0] == {
        "kind": "attempt",
        "provider": "a",
        "error": "http_500",
        "count": 6,
        "share": 0.5,
    }  # of 12: 6 http_500, 4 http_503, 1 http_400, 1 skip


async def test_an_unknown_provider_is_a_404(gateway, key, history):
    response = await gateway.get("/api/analytics/nobody", headers=auth(key))
    assert response.status_code == 404 and response.json()["error"]["code"] == "provider_not_found"


async def test_analytics_needs_a_key_with_the_read_scope(gateway, make_key, history):
    assert (await gateway.get("/api/analytics")).status_code == 401
    gateway_only = await make_key(["gateway"])
    for url in ("/api/analytics", "/api/analytics/a", "/api/analytics/export.csv", "/metrics"):
        assert (await gateway.get(url, headers=auth(gateway_only))).status_code == 403, url
        assert (await gateway.get(url)).status_code == 401, url


async def test_the_csv_export_has_a_line_per_minute_provider_and_route(gateway, key, history):
    response = await gateway.get("/api/analytics/export.csv?window=1h", headers=auth(key))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert {(r["provider"], r["route"]) for r in rows} == {("a", "chat"), ("b", "chat")}
    assert sum(int(r["requests"]) for r in rows if r["provider"] == "a") == 16
    by_route = await gateway.get("/api/analytics/export.csv?window=1h&by=route", headers=auth(key))
    assert sum(int(r["requests"]) for r in csv.DictReader(io.StringIO(by_route.text))) == 12
    assert (await gateway.get("/api/analytics/export.csv?by=model", headers=auth(key))).status_code == 400


def test_the_csv_export_takes_a_staff_session_and_refuses_other_users(client, django_user_model, history):
    staff = django_user_model.objects.create_user("ops", password="pw-ops-123", is_staff=True)
    plain = django_user_model.objects.create_user("someone", password="pw-someone-123")
    client.force_login(plain)
    assert client.get("/api/analytics/export.csv").status_code == 401
    client.force_login(staff)
    response = client.get("/api/analytics/export.csv?window=5m")
    assert response.status_code == 200
    assert response.content.decode().startswith("bucket_start,bucket_seconds,provider,route,requests")


async def test_every_analytics_url_is_in_the_openapi_document(gateway):
    paths = (await gateway.get("/api/schema")).json()["paths"]
    assert {"/api/analytics", "/api/analytics/{name}", "/api/analytics/export.csv", "/metrics"} <= set(paths)
    assert paths["/api/analytics"]["get"]["parameters"][0]["schema"]["enum"] == ["5m", "1h", "24h", "7d", "30d"]

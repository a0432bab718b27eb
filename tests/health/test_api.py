from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from health.models import HealthEvent
from tests.conftest import auth
from tests.fakes.openai import API_KEY, FakeOpenAI

from .conftest import full_tick

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fake():
    with FakeOpenAI() as server:
        yield server


async def test_health_lists_the_contract_fields_per_provider(gateway, key, configure, fake, make_monitor):
    await configure(
        {
            "providers": [
                {
                    "name": "p1",
                    "kind": "openai",
                    "base_url": fake.url + "/v1",
                    "api_key": API_KEY,
                    "models": ["gpt-4o-mini"],
                }
            ]
        }
    )
    await full_tick(make_monitor())
    body = (await gateway.get("/api/health", headers=auth(key))).json()
    entry = body["providers"][0]
    for field in ("name", "status", "score", "breaker", "success_rate", "latency_ms", "last_check_at", "last_error"):
        assert field in entry
    assert entry["name"] == "p1" and entry["status"] == "healthy" and entry["breaker"] == "closed"
    assert entry["score"] == 100.0 and set(entry["latency_ms"]) == {"p50", "p95"}
    assert entry["last_check_at"] is not None
    one = (await gateway.get("/api/health/p1", headers=auth(key))).json()
    assert one["name"] == "p1"
    assert (await gateway.get("/api/health/nope", headers=auth(key))).status_code == 404


async def test_check_now_probes_at_once_and_is_logged(gateway, key, configure, fake):
    await configure(
        {
            "providers": [
                {
                    "name": "p1",
                    "kind": "openai",
                    "base_url": fake.url + "/v1",
                    "api_key": API_KEY,
                    "models": ["gpt-4o-mini"],
                }
            ]
        }
    )
    fake.fault(status=500, times=1)
    response = await gateway.post("/api/health/p1/check", headers=auth(key))
    assert response.status_code == 200
    result = response.json()["results"][0]
    assert result["provider"] == "p1" and result["ok"] is False and "http_500" in result["error"]
    again = (await gateway.post("/api/health/check", headers=auth(key))).json()["results"]
    assert [r["ok"] for r in again] == [True]
    detail = (await gateway.get("/api/health/p1", headers=auth(key))).json()
    assert detail["last_check_ok"] is True
    actions = await sync_to_async(
        lambda: list(HealthEvent.objects.filter(kind="action").values_list("new", flat=True))
    )()
    assert actions == ["check_now", "check_now"]


async def test_check_needs_the_admin_scope(gateway, make_key, configure, fake):
    await configure({"providers": [{"name": "p1", "kind": "openai", "base_url": fake.url + "/v1", "api_key": API_KEY}]})
    reader = await make_key(["read"])
    assert (await gateway.post("/api/health/p1/check", headers=auth(reader))).status_code == 403
    assert (await gateway.get("/api/health", headers=auth(reader))).status_code == 200

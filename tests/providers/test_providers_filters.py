"""GET /api/providers?capability=&enabled=&sort=: filtered and sorted, the health score coming
from the monitor's own evaluation (no score is injected)."""

from __future__ import annotations

import random

import pytest

from health.monitor import Monitor
from tests.conftest import auth
from tests.fakes.openai import API_KEY, FakeOpenAI

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def fleet(configure, rt, clock):
    """alpha answers, beta fails its probes, gamma is disabled; the monitor has evaluated them."""
    with FakeOpenAI() as good, FakeOpenAI() as bad:
        await configure(
            {
                "providers": [
                    {
                        "name": "alpha",
                        "kind": "openai",
                        "base_url": good.url + "/v1",
                        "api_key": API_KEY,
                        "models": ["gpt-4o-mini"],
                        "capabilities": ["chat"],
                        "priority": 2,
                    },
                    {
                        "name": "beta",
                        "kind": "openai",
                        "base_url": bad.url + "/v1",
                        "api_key": API_KEY,
                        "models": ["gpt-4o-mini"],
                        "capabilities": ["chat", "embeddings"],
                        "priority": 1,
                    },
                    {
                        "name": "gamma",
                        "kind": "simulated",
                        "models": ["sim-embed"],
                        "capabilities": ["embeddings"],
                        "priority": 3,
                        "enabled": False,
                    },
                ]
            }
        )
        await rt.refresh(force=True)
        bad.fault(status=500)
        monitor = Monitor(rt, now=clock, rng=random.Random(7), holder="m1")
        await monitor.tick()
        await monitor.wait_for_probes()
        await monitor.tick()
        yield


async def names(gateway, key, query: str = "") -> list[str]:
    response = await gateway.get(f"/api/providers{query}", headers=auth(key))
    assert response.status_code == 200, response.text
    return [p["name"] for p in response.json()["providers"]]


async def test_the_default_order_is_priority_then_name(fleet, gateway, key):
    assert await names(gateway, key) == ["beta", "alpha", "gamma"]
    assert await names(gateway, key, "?sort=priority") == ["beta", "alpha", "gamma"]
    assert await names(gateway, key, "?sort=name") == ["alpha", "beta", "gamma"]


async def test_sorting_by_health_score_puts_the_healthiest_first(fleet, gateway, key):
    rows = (await gateway.get("/api/providers?sort=health_score", headers=auth(key))).json()["providers"]
    assert [r["name"] for r in rows][:2] == ["alpha", "beta"]
    scored = [r["score"] for r in rows if r["score"] is not None]
    assert scored == sorted(scored, reverse=True) and rows[0]["score"] > rows[1]["score"]
    assert all(r["score"] is None for r in rows[len(scored) :])  # unscored ones last


async def test_filters_by_capability_and_enabled(fleet, gateway, key):
    assert await names(gateway, key, "?capability=embeddings") == ["beta", "gamma"]
    assert await names(gateway, key, "?enabled=false") == ["gamma"]
    assert await names(gateway, key, "?enabled=true&capability=embeddings") == ["beta"]
    assert await names(gateway, key, "?capability=tts") == []


@pytest.mark.parametrize(
    ("query", "param"),
    [("?sort=fastest", "sort"), ("?enabled=maybe", "enabled"), ("?capability=" + "c" * 41, "capability")],
)
async def test_bad_parameters_are_a_400_naming_them(fleet, gateway, key, query, param):
    response = await gateway.get(f"/api/providers{query}", headers=auth(key))
    assert response.status_code == 400 and f"`{param}`" in response.json()["error"]["message"]

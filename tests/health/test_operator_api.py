"""Operator actions in the API: enable/disable a provider, reset its statistics; the fleet's
summary in GET /api/health and the latest probe in GET /api/health/<name>."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async

from health.api import summarize
from health.failures import failure_log
from providers.models import AuditLog
from tests.conftest import auth
from tests.console.conftest import SIMULATED
from tests.fakes.ollama import FakeOllama
from tests.fakes.openai import API_KEY, FakeOpenAI

from .conftest import full_tick

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
ROUTED = {
    **SIMULATED,
    "routes": [{"name": "chat", "capability": "chat", "targets": [{"provider": "sim-a", "model": "sim-small"}]}],
}


@pytest.fixture
async def sim(configure, rt):
    await configure(ROUTED)
    await rt.refresh(force=True)
    return rt


@pytest.fixture(autouse=True)
async def _failed_requests_written():
    yield
    await failure_log.drain()  # a request.failed event is written after its answer


async def event_names(gateway, key) -> list[tuple[str, str]]:
    kinds = "provider.enabled,provider.disabled"
    listed = (await gateway.get(f"/api/events?kind={kinds}", headers=auth(key))).json()["events"]
    return [(e["event"], e["actor"]) for e in listed]


async def test_disabling_takes_the_provider_out_of_routes_at_once_and_enabling_brings_it_back(sim, gateway, key):
    off = await gateway.post("/api/providers/sim-a/disable", headers=auth(key))
    assert off.status_code == 200
    assert (off.json()["name"], off.json()["enabled"], off.json()["status"]) == ("sim-a", False, "disabled")
    assert (await gateway.post("/v1/chat/completions", headers=auth(key), json=CHAT)).status_code == 503
    assert (await gateway.get("/api/providers/sim-a", headers=auth(key))).json()["enabled"] is False
    on = await gateway.post("/api/providers/sim-a/enable", headers=auth(key))
    assert on.status_code == 200 and on.json()["enabled"] is True and on.json()["status"] != "disabled"
    assert (await gateway.post("/v1/chat/completions", headers=auth(key), json=CHAT)).status_code == 200
    audited = await sync_to_async(
        lambda: list(
            AuditLog.objects.filter(object_name="sim-a", action__in=("enable", "disable"))
            .order_by("id")
            .values_list("action", "actor", "changes")
        )
    )()
    key_name = audited[0][1]
    assert key_name.startswith("api:key-")
    assert audited == [
        ("disable", key_name, {"enabled": [True, False]}),
        ("enable", key_name, {"enabled": [False, True]}),
    ]
    assert await event_names(gateway, key) == [("provider.enabled", key_name), ("provider.disabled", key_name)]


async def test_a_switch_that_changes_nothing_is_audited_but_no_event(sim, gateway, key):
    assert (await gateway.post("/api/providers/sim-a/enable", headers=auth(key))).status_code == 200
    assert await event_names(gateway, key) == []
    actions = await sync_to_async(lambda: list(AuditLog.objects.filter(action="enable").values_list("changes")))()
    assert actions == [({"enabled": [True, True]},)]


@pytest.mark.parametrize(
    "path", ["/api/providers/nope/enable", "/api/providers/nope/disable", "/api/health/nope/reset"]
)
async def test_an_unknown_provider_is_a_404(sim, gateway, key, path):
    response = await gateway.post(path, headers=auth(key))
    assert response.status_code == 404 and response.json()["error"]["code"] == "provider_not_found"


@pytest.mark.parametrize(
    "path", ["/api/providers/sim-a/enable", "/api/providers/sim-a/disable", "/api/health/sim-a/reset"]
)
async def test_actions_need_the_admin_scope_and_a_post(sim, gateway, make_key, key, path):
    assert (await gateway.post(path)).status_code == 401
    reader = await make_key(["read"])
    refused = await gateway.post(path, headers=auth(reader))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "insufficient_scope"
    wrong_method = await gateway.get(path, headers=auth(key))
    assert wrong_method.status_code == 405 and "error" in wrong_method.json()


async def breaker_reaching(gateway, key: str, counts: tuple[int, int, int]) -> dict:
    """p1's breaker once its (calls, failures, consecutive failures) read `counts`; the wait is
    only a bound on a hang."""
    for _ in range(200):
        row = (await gateway.get("/api/breakers", headers=auth(key))).json()["breakers"][0]
        if (row["calls"], row["failures"], row["consecutive_failures"]) == counts:
            return row
        await asyncio.sleep(0.05)
    raise AssertionError(
        f"the breaker reads {row['calls'], row['failures'], row['consecutive_failures']}, not {counts}"
    )


async def test_resetting_statistics_clears_the_window_and_counters_but_not_the_breaker(
    configure, rt, gateway, key, settings
):
    with FakeOpenAI() as fake:
        await configure(
            {
                "providers": [
                    {
                        "name": "p1",
                        "kind": "openai",
                        "base_url": fake.url + "/v1",
                        "api_key": API_KEY,
                        "retry": {"max_attempts": 1},
                        "breaker": {"consecutive_failures": 50, "min_calls": 50},
                    }
                ],
                "routes": [
                    {"name": "chat", "capability": "chat", "targets": [{"provider": "p1", "model": "gpt-4o-mini"}]}
                ],
            }
        )
        await rt.refresh(force=True)
        fake.fault(status=500, times=3)
        for _ in range(3):
            assert (await gateway.post("/v1/chat/completions", headers=auth(key), json=CHAT)).status_code == 502
        assert (await gateway.post("/v1/chat/completions", headers=auth(key), json=CHAT)).status_code == 200
        fake.fault(status=500, times=2)
        for _ in range(2):
            await gateway.post("/v1/chat/completions", headers=auth(key), json=CHAT)
        if settings.REDIS_URL:  # the fleet's window in Redis (its exact counts: tests/scaleout); here: reset clears it
            before = (await gateway.get("/api/breakers", headers=auth(key))).json()["breakers"][0]
            assert before["calls"] > 0 and before["failures"] > 0
        else:
            before = await breaker_reaching(gateway, key, (6, 5, 2))
        reset = await gateway.post("/api/health/p1/reset", headers=auth(key))
    assert reset.status_code == 200
    body = reset.json()
    assert (body["provider"], body["calls"], body["consecutive_failures"], body["success_rate"]) == ("p1", 0, 0, None)
    after = await breaker_reaching(gateway, key, (0, 0, 0))
    assert (after["state"], after["generation"]) == (before["state"], before["generation"])
    health = (await gateway.get("/api/health/p1", headers=auth(key))).json()
    assert (health["calls"], health["success_rate"]) == (0, None)
    [event] = (await gateway.get("/api/events?kind=health.reset", headers=auth(key))).json()["events"]
    assert event["id"] == body["event_id"] and event["provider"] == "p1" and event["actor"].startswith("api:")


# -- GET /api/health: the summary; GET /api/health/<name>: the latest probe --------------------


async def test_the_health_list_carries_a_summary_of_the_fleet(configure, rt, gateway, key, make_monitor):
    with FakeOpenAI() as fake:
        await configure(
            {
                "providers": [
                    {
                        "name": "up",
                        "kind": "openai",
                        "base_url": fake.url + "/v1",
                        "api_key": API_KEY,
                        "models": ["gpt-4o-mini"],
                    },
                    {"name": "off", "kind": "simulated", "models": ["sim-small"], "enabled": False},
                ]
            }
        )
        await full_tick(make_monitor())
        body = (await gateway.get("/api/health", headers=auth(key))).json()
    assert body["summary"] == {
        "total": 2,
        "healthy": 1,
        "degraded": 0,
        "unhealthy": 0,
        "unknown": 0,
        "disabled": 1,
        "maintenance": 0,
        "score": 100.0,
    }
    assert len(body["providers"]) == 2


def test_the_summary_score_is_weighted_by_traffic_and_ignores_disabled_providers():
    def entry(status: str, score: float | None, calls: int, enabled: bool = True) -> dict:
        return {"status": status, "score": score, "calls": calls, "enabled": enabled}

    busy_and_quiet = [entry("healthy", 100.0, 30), entry("degraded", 50.0, 10), entry("disabled", 0.0, 90, False)]
    assert summarize(busy_and_quiet)["score"] == 87.5
    assert summarize([entry("healthy", 100.0, 0), entry("degraded", 50.0, 0)])["score"] == 75.0
    assert summarize([entry("unknown", None, 0)])["score"] is None
    assert summarize([])["total"] == 0 and summarize([])["score"] is None


async def test_a_provider_shows_its_latest_probe_details(configure, rt, gateway, key):
    with FakeOllama(version="0.12.6") as ollama:
        await configure(
            {
                "providers": [
                    {"name": "local", "kind": "ollama", "base_url": ollama.url},
                    {"name": "sim-a", "kind": "simulated", "models": ["sim-small"]},
                ]
            }
        )
        await rt.refresh(force=True)
        assert (await gateway.get("/api/health/local", headers=auth(key))).json()["probe"] is None
        assert (await gateway.post("/api/health/local/check", headers=auth(key))).status_code == 200
        probe = (await gateway.get("/api/health/local", headers=auth(key))).json()["probe"]
    assert probe["ok"] is True and probe["detail"]["version"] == "0.12.6"
    assert isinstance(probe["detail"]["models"], int) and probe["at"].endswith("Z")

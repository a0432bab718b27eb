"""GET /api/events: the event history under the contract's names, newest first, cursor-paged."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from health.events import record_event
from health.failures import failure_log, prune_failures
from health.models import HealthEvent
from tests.conftest import auth
from tests.console.conftest import SIMULATED
from tests.fakes.openai import API_KEY, FakeOpenAI

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def sim(configure, rt):
    await configure(SIMULATED)
    await rt.refresh(force=True)
    return rt


async def events(gateway, key, query: str = "") -> dict:
    response = await gateway.get(f"/api/events{query}", headers=auth(key))
    assert response.status_code == 200, response.text
    return response.json()


async def test_each_kind_of_change_has_its_contract_name(sim, gateway, key):
    rows = [
        ("sim-a", "breaker", "closed", "open"),
        ("sim-a", "breaker", "open", "half_open"),
        ("sim-a", "breaker", "half_open", "closed"),
        ("sim-a", "status", "healthy", "degraded"),
        ("sim-a", "status", "healthy", "maintenance"),
        ("sim-a", "cooldown", "", "rejected"),
        ("sim-a", "cooldown", "", "exhausted"),
        ("sim-a", "alert", "alert", "sent"),
        ("sim-a", "alert", "alert", "failed"),
        ("sim-a", "cooldown", "", "rate_limited"),
    ]
    for provider, kind, old, new in rows:
        await sync_to_async(record_event)(provider, kind, old, new, f"{kind} {new}")
    listed = (await events(gateway, key))["events"]
    assert [e["event"] for e in listed][::-1] == [
        "breaker.opened",
        "breaker.half_open",
        "breaker.closed",
        "provider.status",
        "provider.maintenance",
        "credential.rejected",
        "credential.exhausted",
        "alert.sent",
        "alert.failed",
        "credential.rate_limited",
    ]
    newest = listed[0]
    assert set(newest) == {"id", "event", "provider", "from", "to", "reason", "at", "actor", "detail"}
    assert (newest["provider"], newest["to"], newest["reason"]) == ("sim-a", "rate_limited", "cooldown rate_limited")


async def test_operator_actions_through_the_api_are_listed(sim, gateway, key):
    await gateway.post("/api/breakers/sim-a/force-open", headers=auth(key))
    await gateway.post("/api/providers/sim-a/disable", headers=auth(key))
    await gateway.post("/api/health/sim-a/reset", headers=auth(key))
    names = [e["event"] for e in (await events(gateway, key))["events"]]
    assert {"breaker.opened", "provider.action", "provider.disabled", "health.reset"} <= set(names)
    assert names[0] == "health.reset"


async def test_pages_follow_the_cursor_without_overlap(sim, gateway, key):
    for _ in range(5):
        await gateway.post("/api/health/sim-a/reset", headers=auth(key))
    first = await events(gateway, key, "?limit=2")
    second = await events(gateway, key, f"?limit=2&cursor={first['next_cursor']}")
    third = await events(gateway, key, f"?limit=2&cursor={second['next_cursor']}")
    ids = [e["id"] for page in (first, second, third) for e in page["events"]]
    assert len(ids) == 5 and ids == sorted(ids, reverse=True)
    assert third["next_cursor"] is None


async def test_filters_by_provider_kind_and_time(sim, gateway, key):
    old = await sync_to_async(record_event)(
        "sim-b", "status", "healthy", "unhealthy", "down", at=timezone.now() - timedelta(hours=2)
    )
    await sync_to_async(record_event)("sim-a", "breaker", "closed", "open", "tripped")
    await sync_to_async(record_event)("sim-a", "action", "", "enable", "")
    only_b = (await events(gateway, key, "?provider=sim-b"))["events"]
    assert [e["id"] for e in only_b] == [old.pk]
    two_kinds = (await events(gateway, key, "?kind=breaker.opened,provider.enabled"))["events"]
    repeated = (await events(gateway, key, "?kind=breaker.opened&kind=provider.enabled"))["events"]
    assert [e["event"] for e in two_kinds] == [e["event"] for e in repeated] == ["provider.enabled", "breaker.opened"]
    since = (timezone.now() - timedelta(hours=1)).isoformat()
    recent = (await gateway.get("/api/events", params={"since": since}, headers=auth(key))).json()["events"]
    assert old.pk not in [e["id"] for e in recent] and len(recent) == 2


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("?limit=0", "limit"),
        ("?limit=501", "limit"),
        ("?limit=many", "limit"),
        ("?cursor=abc", "cursor"),
        ("?since=yesterday", "since"),
        ("?kind=breaker.exploded", "kind"),
        ("?provider=" + "p" * 65, "provider"),
    ],
)
async def test_bad_parameters_are_a_400_naming_them(sim, gateway, key, query, param):
    response = await gateway.get(f"/api/events{query}", headers=auth(key))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param and f"`{param}`" in error["message"]


async def test_the_list_needs_a_key_with_the_read_scope(sim, gateway, make_key):
    assert (await gateway.get("/api/events")).status_code == 401
    response = await gateway.get("/api/events", headers=auth(await make_key(["gateway"])))
    assert response.status_code == 403


# -- request.failed: stored, and bounded ------------------------------------------------------


async def test_a_flood_of_failed_requests_is_two_events_per_route_window(configure, rt, gateway, key, settings):
    settings.EVENTS_REQUEST_FAILED_WINDOW_S = 60  # the whole flood falls in one window
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
                    }
                ],
                "routes": [
                    {"name": "chat", "capability": "chat", "targets": [{"provider": "p1", "model": "gpt-4o-mini"}]}
                ],
            }
        )
        await rt.refresh(force=True)
        fake.fault(status=500)
        answers = [
            await gateway.post(
                "/v1/chat/completions",
                headers=auth(key),
                json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
            )
            for _ in range(20)
        ]
        assert {a.status_code for a in answers} <= {502, 503}
        await failure_log.drain()
    failed = (await events(gateway, key, "?kind=request.failed"))["events"]
    assert len(failed) == 2
    burst, first = failed
    assert first["detail"]["count"] == 1 and first["detail"]["request_id"] == answers[0].headers["X-Request-Id"]
    assert burst["detail"]["count"] == 19 and burst["detail"]["request_id"] == answers[-1].headers["X-Request-Id"]
    assert "19 more requests failed on route chat" in burst["reason"]


async def test_a_served_request_is_no_event(sim, configure, gateway, key):
    await configure(
        {
            **SIMULATED,
            "routes": [
                {"name": "chat", "capability": "chat", "targets": [{"provider": "sim-a", "model": "sim-small"}]}
            ],
        }
    )
    answer = await gateway.post(
        "/v1/chat/completions",
        headers=auth(key),
        json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert answer.status_code == 200
    await failure_log.drain()
    assert (await events(gateway, key, "?kind=request.failed"))["events"] == []


def test_only_the_newest_failed_requests_are_kept():
    for i in range(5):
        HealthEvent.objects.create(kind="request", new="failure", reason=f"#{i}", at=timezone.now())
    record_event("p", "action", "", "enable")
    assert prune_failures(3) == 2
    kept = HealthEvent.objects.filter(kind="request").order_by("id").values_list("reason", flat=True)
    assert list(kept) == ["#2", "#3", "#4"]
    assert HealthEvent.objects.filter(kind="action").count() == 1

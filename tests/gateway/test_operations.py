from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from providers.models import AuditLog, Provider, ProviderModel

from .conftest import CHAT, auth

pytestmark = pytest.mark.django_db(transaction=True)


async def test_providers_are_listed_with_state_and_detail_masks_credentials(gateway, two_openai, key):
    await two_openai()
    listing = (await gateway.get("/api/providers", headers=auth(key))).json()["providers"]
    assert [p["name"] for p in listing] == ["up-a", "up-b"]
    assert listing[0]["breaker"] == "closed" and listing[0]["status"] == "unknown"
    detail = (await gateway.get("/api/providers/up-a", headers=auth(key))).json()
    assert detail["credentials"][0]["hint"] == "sk-…-key"
    assert "sk-fake-openai-key" not in str(detail)
    assert detail["retry"]["max_attempts"] == 2
    assert (await gateway.get("/api/providers/nope", headers=auth(key))).status_code == 404


async def test_force_open_then_reset_a_breaker_is_audited_and_changes_routing(gateway, two_openai, key, upstream_a):
    await two_openai()
    forced = await gateway.post("/api/breakers/up-a/force-open", headers=auth(key), json={"minutes": 5})
    assert forced.status_code == 200 and forced.json()["state"] == "forced_open"
    response = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))
    assert response.headers["x-gateway-provider"] == "up-b"
    assert upstream_a.requests == []
    reset = await gateway.post("/api/breakers/up-a/reset", headers=auth(key))
    assert reset.json()["state"] == "closed"
    response = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))
    assert response.headers["x-gateway-provider"] == "up-a"
    actions = await sync_to_async(
        lambda: list(AuditLog.objects.filter(object_name="up-a").values_list("action", flat=True))
    )()
    assert {"force_open", "reset_breaker"} <= set(actions)


async def test_force_open_refuses_a_bad_duration(gateway, two_openai, key):
    await two_openai()
    response = await gateway.post("/api/breakers/up-a/force-open", headers=auth(key), json={"minutes": -3})
    assert response.status_code == 400


async def test_config_round_trips_through_the_api_and_a_bad_document_changes_nothing(gateway, two_openai, key):
    await two_openai()
    doc = (await gateway.get("/api/config", headers=auth(key))).json()
    assert [p["name"] for p in doc["providers"]] == ["up-a", "up-b"]
    assert doc["providers"][0]["api_key"] == "sk-…-key"
    doc["providers"][1]["priority"] = 9
    put = await gateway.put("/api/config", headers=auth(key), json=doc)
    assert put.status_code == 200 and put.json()["updated"] == ["provider up-b"]
    doc["providers"][0]["breaker"]["failure_rate"] = 2
    bad = await gateway.put("/api/config", headers=auth(key), json=doc)
    assert bad.status_code == 400
    assert "providers[0].breaker.failure_rate: must be > 0 and <= 1" in bad.json()["error"]["errors"]
    assert await sync_to_async(lambda: Provider.objects.get(name="up-a").breaker_failure_rate)() == 0.5


async def test_models_are_discovered_cached_and_forgotten(gateway, two_openai, key):
    await two_openai()
    listed = (await gateway.get("/api/providers/up-a/models?refresh=true", headers=auth(key))).json()
    names = {m["name"] for m in listed["models"]}
    assert "gpt-4o-mini" in names and len(names) > 3
    count = await sync_to_async(ProviderModel.objects.filter(source="discovered").count)()
    assert count >= len(names) - 1
    cleared = (await gateway.delete("/api/cache", headers=auth(key))).json()
    assert cleared["forgotten_models"] == count
    assert await sync_to_async(ProviderModel.objects.filter(source="discovered").count)() == 0


async def test_the_schema_is_openapi_3_and_documents_every_api_url(gateway):
    import re

    from django.urls import get_resolver

    schema = (await gateway.get("/api/schema")).json()
    assert schema["openapi"].startswith("3.")
    documented = set(schema["paths"])
    for pattern in get_resolver().url_patterns:
        for inner in getattr(pattern, "url_patterns", [pattern]):
            route = str(inner.pattern)
            if route.startswith(("v1/", "api/")) or route == "healthz":
                openapi_path = "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
                assert openapi_path in documented, openapi_path

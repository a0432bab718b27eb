from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from providers.models import ApiKey

from .conftest import CHAT, auth

pytestmark = pytest.mark.django_db(transaction=True)


async def test_no_key_is_a_401_with_a_json_error(gateway, two_openai):
    await two_openai()
    response = await gateway.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"
    assert response.json()["error"]["type"] == "authentication_error"


async def test_an_unknown_key_is_a_401(gateway, two_openai):
    await two_openai()
    response = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth("gw_nope_nope"))
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"


async def test_a_key_without_the_gateway_scope_is_a_403(gateway, two_openai, make_key):
    await two_openai()
    read_only = await make_key(["read"])
    response = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(read_only))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"


async def test_a_gateway_key_cannot_use_the_operations_api_and_a_read_key_cannot_write(gateway, make_key, two_openai):
    await two_openai()
    gateway_only = await make_key(["gateway"])
    assert (await gateway.get("/api/providers", headers=auth(gateway_only))).status_code == 403
    read_only = await make_key(["read"])
    assert (await gateway.get("/api/providers", headers=auth(read_only))).status_code == 200
    reset = await gateway.post("/api/breakers/up-a/reset", headers=auth(read_only))
    assert reset.status_code == 403


async def test_the_anthropic_sdk_header_is_accepted_too(gateway, two_openai, key):
    await two_openai()
    response = await gateway.post("/v1/chat/completions", json=CHAT, headers={"x-api-key": key})
    assert response.status_code == 200


async def test_a_revoked_key_stops_working_once_the_configuration_reloads(gateway, two_openai, key):
    from providers.runtime import runtime

    await two_openai()
    assert (await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))).status_code == 200

    @sync_to_async
    def revoke() -> None:  # as the admin's "Revoke" action does
        for row in ApiKey.objects.all():
            row.revoked_at = timezone.now()
            row.save()

    await revoke()
    await runtime().refresh()
    assert (await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))).status_code == 401


async def test_a_key_over_its_limit_gets_429_with_retry_after(gateway, two_openai, make_key):
    await two_openai()
    limited = await make_key(["gateway"], rate_limit_per_minute=2)
    statuses = [
        (await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(limited))).status_code for _ in range(3)
    ]
    assert statuses[:2] == [200, 200]
    last = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(limited))
    assert last.status_code == 429 and last.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(last.headers["retry-after"]) <= 120  # a sliding minute

"""Several credentials per provider: a refused or exhausted key is set aside, the next serves."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from providers.models import AuditLog
from tests.fakes.openai import FakeOpenAI

from .conftest import CHAT, auth

pytestmark = pytest.mark.django_db(transaction=True)

GOOD = "sk-fake-openai-key"


@pytest.fixture
def upstream():
    with FakeOpenAI(api_key=GOOD) as server:
        yield server


def doc(url: str, keys: list[str]) -> dict:
    return {
        "providers": [
            {
                "name": "multi",
                "kind": "openai",
                "base_url": url + "/v1",
                "api_keys": keys,
                "retry": {"max_attempts": 2, "base_delay_s": 0.01, "max_delay_s": 0.02},
            }
        ],
        "routes": [{"name": "chain", "targets": [{"provider": "multi", "model": "gpt-4o-mini"}]}],
    }


def used_keys(server: FakeOpenAI) -> list[str]:
    return [r.headers.get("Authorization", "")[7:] for r in server.requests_to("/v1/chat/completions")]


async def test_a_refused_key_is_set_aside_and_the_next_one_serves(gateway, configure, upstream, key):
    await configure(doc(upstream.url, ["sk-revoked-key-00000001", GOOD]))
    first = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))
    assert first.status_code == 200
    assert used_keys(upstream) == ["sk-revoked-key-00000001", GOOD]
    second = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))
    assert second.status_code == 200
    assert used_keys(upstream)[-1] == GOOD and len(used_keys(upstream)) == 3  # no second try of the bad key
    detail = (await gateway.get("/api/providers/multi", headers=auth(key))).json()
    assert [c["state"] for c in detail["credentials"]] == ["rejected", "active"]


async def test_an_exhausted_key_is_set_aside_until_an_operator_resets_it(gateway, configure, upstream, key):
    await configure(doc(upstream.url, [GOOD, GOOD.replace("key", "kez")]))
    upstream.fault(status=429, error_code="insufficient_quota", times=1)
    response = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))
    # the second key is not valid on this fake: its 401 is our credential refused (never the
    # caller's answer), and no key is left
    assert response.status_code == 502, response.text
    assert [a["outcome"] for a in response.json()["error"]["attempts"]] == ["exhausted", "credential_rejected"]
    states = [c["state"] for c in (await gateway.get("/api/providers/multi", headers=auth(key))).json()["credentials"]]
    assert states[0] == "exhausted"
    reset = await gateway.post("/api/breakers/multi/reset", headers=auth(key))
    assert reset.status_code == 200 and reset.json()["cooldowns"] == []
    again = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))
    assert again.status_code == 200 and used_keys(upstream)[-1] == GOOD
    assert await sync_to_async(AuditLog.objects.filter(action="reset_breaker", object_name="multi").exists)()


async def test_with_one_key_a_401_is_never_the_callers_answer(gateway, configure, upstream, key):
    await configure(doc(upstream.url, ["sk-wrong-key-000000001"]))
    response = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["type"] == "all_targets_failed" and error["attempts"][0]["outcome"] == "credential_rejected"
    assert "sk-wrong" not in response.text
    again = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))
    assert again.status_code == 503  # set aside until the configuration changes the key or a reset
    assert len(used_keys(upstream)) == 1

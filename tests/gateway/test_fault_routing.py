"""Routing that matches who is at fault, through the ASGI app against fake providers: refused
keys and missing models fall back, targets that cannot take a request are skipped, our own
translation errors are the caller's 400, cooldowns hold per model, streams follow timeouts."""

from __future__ import annotations

import json

import pytest

from providers.runtime import runtime
from tests.fakes.anthropic import API_KEY as ANTHROPIC_KEY

from .conftest import CHAT, auth, provider

pytestmark = pytest.mark.django_db(transaction=True)

WRONG_KEY = "sk-revoked-0123456789abcdef"


def anthropic_first(upstream_anthropic, upstream_a) -> dict:  # type: ignore[no-untyped-def]
    return {
        "providers": [
            provider("claude", upstream_anthropic.url, kind="anthropic", key=ANTHROPIC_KEY),
            provider("up-a", upstream_a.url + "/v1"),
        ],
        "routes": [
            {
                "name": "chain",
                "targets": [
                    {"provider": "claude", "model": "claude-sonnet-4-5"},
                    {"provider": "up-a", "model": "gpt-4o"},
                ],
            },
            {"name": "claude-only", "targets": [{"provider": "claude", "model": "claude-sonnet-4-5"}]},
        ],
    }


async def breaker(gateway, key: str, name: str) -> dict:  # type: ignore[no-untyped-def]
    breakers = (await gateway.get("/api/breakers", headers=auth(key))).json()["breakers"]
    return next(b for b in breakers if b["name"] == name)


async def test_a_401_falls_back_sets_the_key_aside_and_never_shows_it(gateway, configure, key, upstream_a, upstream_b):
    await configure(
        {
            "providers": [
                provider("up-a", upstream_a.url + "/v1", key=WRONG_KEY),
                provider("up-b", upstream_b.url + "/v1"),
            ],
            "routes": [
                {
                    "name": "chain",
                    "targets": [{"provider": "up-a", "model": "gpt-4o-mini"}, {"provider": "up-b", "model": "gpt-4o"}],
                }
            ],
        }
    )
    first = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))
    assert first.status_code == 200 and first.headers["x-gateway-provider"] == "up-b"
    assert WRONG_KEY[-8:] not in first.text and WRONG_KEY[-8:] not in str(first.headers)
    second = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))
    assert second.status_code == 200 and second.headers["x-gateway-attempts"] == "1"
    assert len(upstream_a.requests_to("/v1/chat/completions")) == 1  # the refused key is not tried again
    up_a = await breaker(gateway, key, "up-a")
    assert up_a["state"] == "closed" and up_a["failures"] == 0
    assert [c["kind"] for c in up_a["cooldowns"]] == ["rejected"] and up_a["cooldowns"][0]["until"] is None
    detail = (await gateway.get("/api/providers/up-a", headers=auth(key))).json()
    assert [c["state"] for c in detail["credentials"]] == ["rejected"]


async def test_a_403_falls_back_the_same_way(gateway, two_openai, key, upstream_a, upstream_b):
    await two_openai()
    upstream_a.fault(status=403, times=1)
    response = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))
    assert response.status_code == 200 and response.headers["x-gateway-provider"] == "up-b"
    up_a = await breaker(gateway, key, "up-a")
    assert up_a["state"] == "closed" and up_a["failures"] == 0
    assert [c["kind"] for c in up_a["cooldowns"]] == ["rejected"]


async def test_a_model_missing_on_a_route_target_falls_back_and_is_flagged(
    gateway, configure, key, upstream_a, upstream_b
):
    await configure(
        {
            "providers": [provider("up-a", upstream_a.url + "/v1"), provider("up-b", upstream_b.url + "/v1")],
            "routes": [
                {
                    "name": "chain",
                    "targets": [
                        {"provider": "up-a", "model": "llama-not-pulled"},
                        {"provider": "up-b", "model": "gpt-4o"},
                    ],
                }
            ],
        }
    )
    response = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))
    assert response.status_code == 200 and response.headers["x-gateway-provider"] == "up-b"
    up_a = await breaker(gateway, key, "up-a")
    assert up_a["state"] == "closed" and up_a["failures"] == 0
    assert [c["kind"] for c in up_a["cooldowns"]] == ["model_missing"]
    scoped = runtime().engine.snapshot("up-a").scoped_cooldowns
    assert [(k, scope) for _, k, _, scope in scoped] == [("model_missing", "llama-not-pulled")]
    again = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))
    assert again.headers["x-gateway-attempts"] == "1"
    assert len(upstream_a.requests_to("/v1/chat/completions")) == 1
    await runtime().engine.clear_model_missing("up-a", "llama-not-pulled")  # what a pull does
    await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))
    assert len(upstream_a.requests_to("/v1/chat/completions")) == 2


async def test_a_model_missing_on_a_target_the_caller_named_is_returned(gateway, two_openai, key, upstream_a):
    await two_openai()
    response = await gateway.post(
        "/v1/chat/completions", headers=auth(key), json={**CHAT, "model": "up-a/llama-not-pulled"}
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"
    assert (await breaker(gateway, key, "up-a"))["cooldowns"] == []


async def test_a_target_that_cannot_take_the_request_is_skipped_and_not_counted(
    gateway, configure, key, upstream_a, upstream_anthropic
):
    await configure(anthropic_first(upstream_anthropic, upstream_a))
    response = await gateway.post("/v1/chat/completions", headers=auth(key), json={**CHAT, "n": 2})
    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-provider"] == "up-a"
    assert response.headers["x-gateway-attempts"] == "1"  # nothing was sent to claude
    assert upstream_anthropic.requests_to("/v1/messages") == []
    claude = await breaker(gateway, key, "claude")
    assert claude["calls"] == 0 and claude["state"] == "closed"


async def test_when_no_target_can_take_the_request_the_caller_gets_a_400_saying_why(
    gateway, configure, key, upstream_a, upstream_anthropic
):
    await configure(anthropic_first(upstream_anthropic, upstream_a))
    response = await gateway.post(
        "/v1/chat/completions", headers=auth(key), json={**CHAT, "model": "claude-only", "n": 2}
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (
        error["code"] == "unsupported"
        and "claude/claude-sonnet-4-5" in error["message"]
        and "n > 1" in error["message"]
    )
    assert response.headers["x-gateway-attempts"] == "0"


@pytest.mark.parametrize("bad", [{"temperature": "hot"}, {"stop": 5}, {"tools": [{"type": "function", "function": 5}]}])
async def test_a_request_the_translation_cannot_build_is_a_400_and_never_opens_the_breaker(
    gateway, configure, key, upstream_a, upstream_anthropic, bad
):
    await configure(anthropic_first(upstream_anthropic, upstream_a))
    for _ in range(10):
        response = await gateway.post(
            "/v1/chat/completions", headers=auth(key), json={**CHAT, "model": "claude-only", **bad}
        )
        assert response.status_code == 400, response.text
        assert "Traceback" not in response.text
    claude = await breaker(gateway, key, "claude")
    assert claude["state"] == "closed" and claude["failures"] == 0
    assert upstream_anthropic.requests_to("/v1/messages") == []
    ok = await gateway.post("/v1/chat/completions", headers=auth(key), json={**CHAT, "model": "claude-only"})
    assert ok.status_code == 200, ok.text


async def test_a_rate_limit_on_one_model_leaves_the_providers_other_models_alone(gateway, configure, key, upstream_a):
    await configure(
        {
            "providers": [provider("up-a", upstream_a.url + "/v1")],
            "routes": [
                {"name": "big", "targets": [{"provider": "up-a", "model": "gpt-4o"}]},
                {"name": "small", "targets": [{"provider": "up-a", "model": "gpt-4o-mini"}]},
                {
                    "name": "embed",
                    "capability": "embeddings",
                    "targets": [{"provider": "up-a", "model": "text-embedding-3-small"}],
                },
            ],
        }
    )
    upstream_a.fault(status=429, retry_after="60", times=1)
    limited = await gateway.post("/v1/chat/completions", headers=auth(key), json={**CHAT, "model": "big"})
    assert limited.status_code == 502
    small = await gateway.post("/v1/chat/completions", headers=auth(key), json={**CHAT, "model": "small"})
    assert small.status_code == 200, small.text
    embed = await gateway.post("/v1/embeddings", headers=auth(key), json={"model": "embed", "input": "hi"})
    assert embed.status_code == 200, embed.text
    cooling = await gateway.post("/v1/chat/completions", headers=auth(key), json={**CHAT, "model": "big"})
    assert cooling.status_code == 503
    assert 55 <= int(cooling.headers["retry-after"]) <= 60
    assert cooling.json()["error"]["attempts"][0]["skipped"] == "cooldown"


async def test_a_streams_first_byte_waits_as_long_as_the_providers_timeout(gateway, configure, key, upstream_a):
    await configure(
        {
            "providers": [provider("slow-local", upstream_a.url + "/v1", timeout_s=120)],
            "routes": [{"name": "chain", "targets": [{"provider": "slow-local", "model": "gpt-4o"}]}],
        }
    )
    snapshot = await runtime().current()
    policy, (target,) = snapshot.resolve("chain", "chat")
    assert target.timeout_for(streaming=True) == 120.0  # not the 20 s chat default
    assert policy.deadline > 120.0  # nor cut by the 60 s default deadline
    assert target.breaker.probe_ttl_s > 120.0
    # httpx's read timeout must not cut the wait for the first chunk short either
    assert snapshot.providers["slow-local"].config.stream_idle_timeout_s >= 120.0


async def test_a_stream_ends_at_the_requests_deadline(gateway, two_openai, key, upstream_a):
    await two_openai()
    upstream_a.fault(trickle_s=0.4)  # six frames: 2.4 s in all, the first after 0.4 s
    response = await gateway.post(
        "/v1/chat/completions",
        json={**CHAT, "stream": True, "max_tokens": 50},
        headers={**auth(key), "X-Gateway-Deadline": "1.5"},
    )
    assert response.status_code == 200
    events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert events[-1] != "[DONE]"
    last = json.loads(events[-1])
    assert last["error"]["code"] == "stream_aborted" and "deadline" in last["error"]["message"]
    up_a = await breaker(gateway, key, "up-a")
    assert up_a["failures"] == 0  # the provider was answering: not its fault


async def test_every_target_gets_its_timeouts_from_one_table_and_a_reservation_outlasting_them(
    gateway, configure, key, upstream_a
):
    await configure(
        {
            "providers": [
                {"name": "dl", "kind": "deepl", "base_url": upstream_a.url, "api_key": "k", "models": ["default"]},
                {
                    "name": "mixed",
                    "kind": "simulated",
                    "base_url": "",
                    "capabilities": ["tts", "chat"],
                    "models": ["sim"],
                },
            ]
        }
    )
    snapshot = await runtime().current()
    deepl = snapshot.providers["dl"].target("default", "translation", priority=0)
    assert deepl.attempt_timeout_s == 10.0  # the translation row, not chat's 30 s
    for entry in snapshot.providers.values():
        for capability in entry.capabilities:
            target = entry.target(entry.models[0], capability, priority=0)
            assert target.breaker.probe_ttl_s > target.attempt_timeout_s, (entry.name, capability)
            assert target.breaker.window_s >= 2 * target.attempt_timeout_s, (entry.name, capability)

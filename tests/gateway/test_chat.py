from __future__ import annotations

import asyncio
import json

import pytest

from providers.runtime import runtime

from .conftest import CHAT, auth, provider

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_call_is_served_by_the_first_target_and_says_so(gateway, two_openai, key, upstream_a, upstream_b):
    await two_openai()
    response = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "Echo: hello there"
    assert response.headers["x-gateway-route"] == "chain"
    assert response.headers["x-gateway-provider"] == "up-a"
    assert response.headers["x-gateway-model"] == "gpt-4o-mini"
    assert response.headers["x-gateway-attempts"] == "1"
    sent = upstream_a.requests_to("/v1/chat/completions")
    assert len(sent) == 1 and sent[0].json()["model"] == "gpt-4o-mini"
    assert upstream_b.requests_to("/v1/chat/completions") == []


async def test_a_500_is_retried_then_falls_back_to_the_next_target(gateway, two_openai, key, upstream_a, upstream_b):
    await two_openai()
    upstream_a.fault(status=500)
    response = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))
    assert response.status_code == 200
    assert response.headers["x-gateway-provider"] == "up-b"
    assert response.headers["x-gateway-attempts"] == "3"  # up-a twice (max_attempts 2), then up-b
    assert response.headers["x-gateway-failovers"] == "1"
    assert len(upstream_a.requests_to("/v1/chat/completions")) == 2


async def test_a_provider_set_to_five_attempts_gets_five_despite_the_retry_budgets_floor(
    gateway, configure, upstream_a, upstream_b, key
):
    await configure(
        {
            "providers": [
                provider(
                    "up-a",
                    upstream_a.url + "/v1",
                    retry={"max_attempts": 5, "base_delay_s": 0.001, "max_delay_s": 0.01},
                    breaker={"consecutive_failures": 10},
                ),
                provider("up-b", upstream_b.url + "/v1"),
            ],
            "routes": [
                {
                    "name": "chain",
                    "capability": "chat",
                    "max_attempts": 10,
                    "targets": [{"provider": "up-a", "model": "gpt-4o-mini"}, {"provider": "up-b", "model": "gpt-4o"}],
                }
            ],
        }
    )
    upstream_a.fault(status=503)

    response = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))

    assert response.status_code == 200 and response.headers["x-gateway-provider"] == "up-b"
    assert response.headers["x-gateway-attempts"] == "6"  # 4 retries: more than the budget's floor of 3
    assert len(upstream_a.requests_to("/v1/chat/completions")) == 5


async def test_a_refused_connection_falls_back(gateway, configure, upstream_b, key):
    from tests.fakes.base import free_port

    await configure(
        {
            "providers": [
                provider("down", f"http://127.0.0.1:{free_port()}/v1"),
                provider("up-b", upstream_b.url + "/v1"),
            ],
            "routes": [
                {
                    "name": "chain",
                    "targets": [{"provider": "down", "model": "m"}, {"provider": "up-b", "model": "gpt-4o"}],
                }
            ],
        }
    )
    response = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))
    assert response.status_code == 200 and response.headers["x-gateway-provider"] == "up-b"


async def test_a_timeout_falls_back(gateway, configure, upstream_a, upstream_b, key):
    await configure(
        {
            "providers": [
                provider("slow", upstream_a.url + "/v1", timeout_s=0.3, retry={"max_attempts": 1}),
                provider("up-b", upstream_b.url + "/v1"),
            ],
            "routes": [
                {
                    "name": "chain",
                    "targets": [{"provider": "slow", "model": "gpt-4o"}, {"provider": "up-b", "model": "gpt-4o"}],
                }
            ],
        }
    )
    upstream_a.fault(delay_s=3)
    response = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))
    assert response.status_code == 200 and response.headers["x-gateway-provider"] == "up-b"


async def test_a_caller_error_is_returned_as_is_and_never_retried(gateway, two_openai, key, upstream_a, upstream_b):
    await two_openai()
    upstream_a.fault(status=400, error_code="invalid_value")
    response = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_value"
    assert response.json()["error"]["message"] == "fake openai error 400" or response.json()["error"]["message"]
    assert response.headers["x-gateway-provider"] == "up-a"
    assert len(upstream_a.requests_to("/v1/chat/completions")) == 1
    assert upstream_b.requests_to("/v1/chat/completions") == []


async def test_every_target_failing_is_a_502_with_the_attempts(gateway, two_openai, key, upstream_a, upstream_b):
    await two_openai(max_attempts=4)
    upstream_a.fault(status=503)
    upstream_b.fault(status=502)
    response = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["type"] == "all_targets_failed"
    assert [(a["provider"], a["status"], a["outcome"]) for a in error["attempts"]] == [
        ("up-a", 503, "failure"),
        ("up-a", 503, "failure"),
        ("up-b", 502, "failure"),
        ("up-b", 502, "failure"),
    ]


async def test_every_target_skipped_as_open_is_a_503(gateway, two_openai, key, upstream_a, upstream_b):
    await two_openai()
    rt = runtime()
    await rt.current()
    await rt.engine.force_open("up-a", 60)
    await rt.engine.force_open("up-b", 60)
    response = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["type"] == "no_target_available"
    assert [a["skipped"] for a in error["attempts"]] == ["forced_open", "forced_open"]
    assert upstream_a.requests == [] and upstream_b.requests == []


async def test_a_429_with_a_long_retry_after_cools_the_key_down_and_falls_back(gateway, two_openai, key, upstream_a):
    await two_openai()
    upstream_a.fault(status=429, retry_after="120", times=1)
    first = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))
    assert first.status_code == 200 and first.headers["x-gateway-provider"] == "up-b"
    second = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))
    assert second.headers["x-gateway-provider"] == "up-b"
    assert len(upstream_a.requests_to("/v1/chat/completions")) == 1  # skipped while cooling down
    breakers = (await gateway.get("/api/breakers", headers=auth(key))).json()["breakers"]
    up_a = next(b for b in breakers if b["name"] == "up-a")
    assert up_a["state"] == "closed"  # a rate limit is not an outage
    assert [c["kind"] for c in up_a["cooldowns"]] == ["rate_limited"]


async def test_insufficient_quota_sets_the_credential_aside(gateway, two_openai, key, upstream_a):
    await two_openai()
    upstream_a.fault(status=429, error_code="insufficient_quota", times=1)
    response = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))
    assert response.headers["x-gateway-provider"] == "up-b"
    assert len(upstream_a.requests_to("/v1/chat/completions")) == 1  # no retry on an exhausted key
    detail = (await gateway.get("/api/providers/up-a", headers=auth(key))).json()
    assert detail["credentials"][0]["state"] == "exhausted"
    assert detail["credentials"][0]["hint"] == "sk-…-key"


async def test_an_openai_request_falls_back_to_anthropic_translated(
    gateway, configure, upstream_a, upstream_anthropic, key
):
    from tests.fakes.anthropic import API_KEY as ANTHROPIC_KEY

    await configure(
        {
            "providers": [
                provider("up-a", upstream_a.url + "/v1"),
                provider("claude", upstream_anthropic.url, kind="anthropic", key=ANTHROPIC_KEY),
            ],
            "routes": [
                {
                    "name": "chain",
                    "targets": [
                        {"provider": "up-a", "model": "gpt-4o"},
                        {"provider": "claude", "model": "claude-sonnet-4-5"},
                    ],
                }
            ],
        }
    )
    upstream_a.fault(status=500)
    response = await gateway.post(
        "/v1/chat/completions",
        headers=auth(key),
        json={
            "model": "chain",
            "max_tokens": 50,
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}],
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert response.headers["x-gateway-provider"] == "claude"
    assert body["object"] == "chat.completion"
    assert "hello there" in body["choices"][0]["message"]["content"]
    sent = upstream_anthropic.requests_to("/v1/messages")[0].json()
    assert sent["system"] == "Be brief." and sent["max_tokens"] == 50


async def test_provider_slash_model_names_one_target(gateway, two_openai, key, upstream_b):
    await two_openai()
    response = await gateway.post(
        "/v1/chat/completions", headers=auth(key), json={**CHAT, "model": "up-b/gpt-4.1-mini"}
    )
    assert response.status_code == 200
    assert response.headers["x-gateway-provider"] == "up-b"
    assert upstream_b.requests_to("/v1/chat/completions")[0].json()["model"] == "gpt-4.1-mini"


async def test_an_unknown_model_is_a_404_in_openai_shape(gateway, two_openai, key):
    await two_openai()
    response = await gateway.post("/v1/chat/completions", headers=auth(key), json={**CHAT, "model": "nothing"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "model_not_found"


async def test_malformed_json_is_a_400(gateway, two_openai, key):
    await two_openai()
    response = await gateway.post(
        "/v1/chat/completions",
        headers={**auth(key), "Content-Type": "application/json"},
        content=b'{"model": "chain", "messages": [',
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_json"
    response = await gateway.post("/v1/chat/completions", headers=auth(key), json=["not", "an", "object"])
    assert response.status_code == 400
    response = await gateway.post("/v1/chat/completions", headers=auth(key), json={"model": "chain"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_messages"


async def test_an_oversized_body_is_a_413_before_it_is_read(gateway, two_openai, key, settings):
    await two_openai()
    settings.GATEWAY_MAX_BODY_BYTES = 1000
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 2000}]}
    response = await gateway.post("/v1/chat/completions", headers=auth(key), json=big)
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"


async def test_a_stream_is_forwarded_as_server_sent_events(gateway, two_openai, key):
    await two_openai()
    async with gateway.stream("POST", "/v1/chat/completions", headers=auth(key), json={**CHAT, "stream": True}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["x-gateway-provider"] == "up-a"
        lines = [line async for line in r.aiter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    text = "".join(
        json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
        for line in lines[:-1]
        if json.loads(line[6:])["choices"]
    )
    assert text == "Echo: hello there"


async def test_a_stream_that_fails_before_its_first_byte_falls_back(gateway, two_openai, key, upstream_a):
    await two_openai()
    upstream_a.fault(cut_stream_after=0)
    async with gateway.stream("POST", "/v1/chat/completions", headers=auth(key), json={**CHAT, "stream": True}) as r:
        assert r.headers["x-gateway-provider"] == "up-b"
        body = "".join([line async for line in r.aiter_lines()])
    assert "[DONE]" in body


async def test_a_stream_cut_after_chunks_is_not_retried_and_the_client_hears_it(
    gateway, two_openai, key, upstream_a, upstream_b
):
    await two_openai()
    upstream_a.fault(cut_stream_after=3)
    async with gateway.stream("POST", "/v1/chat/completions", headers=auth(key), json={**CHAT, "stream": True}) as r:
        lines = [line async for line in r.aiter_lines() if line.startswith("data: ")]
    assert r.headers["x-gateway-provider"] == "up-a"
    assert json.loads(lines[-1][6:])["error"]["type"] == "stream_aborted"
    assert "data: [DONE]" not in lines
    assert upstream_b.requests_to("/v1/chat/completions") == []
    assert len(upstream_a.requests_to("/v1/chat/completions")) == 1


async def test_models_lists_routes_and_provider_models(gateway, two_openai, key):
    await two_openai()
    body = (await gateway.get("/v1/models", headers=auth(key))).json()
    ids = [m["id"] for m in body["data"]]
    assert body["object"] == "list" and ids[0] == "chain"


async def test_a_failed_request_is_recorded_with_its_failovers_and_retries(
    gateway, two_openai, key, upstream_a, upstream_b
):
    from asgiref.sync import sync_to_async

    from analytics.models import RequestLog
    from analytics.recorder import flush_all

    await two_openai(max_attempts=4)
    upstream_a.fault(status=503)
    upstream_b.fault(status=503)
    response = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))
    assert response.status_code == 502
    await flush_all()
    row = await sync_to_async(RequestLog.objects.get)()
    assert (row.outcome, row.calls, row.failovers, row.retries) == ("failure", 4, 1, 2)


async def test_a_provider_at_its_request_limit_is_skipped_not_sent_a_429(
    gateway, configure, upstream_a, upstream_b, key
):
    from .conftest import provider

    await configure(
        {
            "providers": [
                provider("up-a", upstream_a.url + "/v1", limits={"requests_per_minute": 2}),
                provider("up-b", upstream_b.url + "/v1"),
            ],
            "routes": [
                {
                    "name": "chain",
                    "targets": [{"provider": "up-a", "model": "gpt-4o"}, {"provider": "up-b", "model": "gpt-4o"}],
                }
            ],
        }
    )
    served = [
        (await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))).headers["x-gateway-provider"]
        for _ in range(4)
    ]
    assert served == ["up-a", "up-a", "up-b", "up-b"]
    assert len(upstream_a.requests_to("/v1/chat/completions")) == 2


async def test_a_provider_over_its_token_limit_is_skipped(gateway, configure, upstream_a, upstream_b, key):
    from .conftest import provider

    await configure(
        {
            "providers": [
                provider("up-a", upstream_a.url + "/v1", limits={"tokens_per_minute": 4}),
                provider("up-b", upstream_b.url + "/v1"),
            ],
            "routes": [
                {
                    "name": "chain",
                    "targets": [{"provider": "up-a", "model": "gpt-4o"}, {"provider": "up-b", "model": "gpt-4o"}],
                }
            ],
        }
    )
    first = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))
    assert first.headers["x-gateway-provider"] == "up-a" and first.json()["usage"]["total_tokens"] > 4
    await asyncio.sleep(0.05)  # the usage is counted just after the answer
    second = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))
    assert second.headers["x-gateway-provider"] == "up-b"

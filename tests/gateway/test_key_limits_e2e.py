"""API keys' limits through the gateway: refused before any provider is called, in the error
shape of the API the caller used (OpenAI's and Anthropic's), on every gateway API; spend settled
from real usage (streams included) equals the request log's cost for the key.

The fake provider counts what it is sent (`requests_to`): that is how "before any upstream
call" is proven. Settling runs in the background; `settled()` waits for it.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.db.models import Sum

from providers.keys import limits_for
from providers.models import KeySpend
from providers.runtime import runtime

from .conftest import CHAT, auth, provider

pytestmark = pytest.mark.django_db(transaction=True)

# $0.10 a token in and out: "hello there" (2 words) echoed as "Echo: hello there" (3) costs $0.50.
PRICED = {"gpt-4o-mini": {"input_per_mtok": 100_000, "output_per_mtok": 100_000}}
MESSAGE = {"model": "chain", "max_tokens": 50, "messages": [{"role": "user", "content": "hello there"}]}
COMPLETIONS = "/v1/chat/completions"


@pytest.fixture
def priced(configure, upstream_a):
    async def setup() -> None:
        target = [{"provider": "up-a", "model": "gpt-4o-mini"}]
        await configure(
            {
                "providers": [provider("up-a", upstream_a.url + "/v1", prices=PRICED)],
                "routes": [
                    {"name": "chain", "capability": "chat", "targets": target},
                    {"name": "other", "capability": "chat", "targets": target},
                ],
            }
        )

    return setup


def calls(upstream) -> int:
    return len(upstream.requests_to(COMPLETIONS))


async def settled() -> None:
    await limits_for(runtime()).flush()


def anthropic(key: str) -> dict[str, str]:
    return {"x-api-key": key, "anthropic-version": "2023-06-01"}


async def test_a_key_over_its_budget_is_refused_before_any_upstream_call(gateway, priced, upstream_a, make_key):
    await priced()
    key = await make_key(["gateway"], budget=Decimal("0.4"), budget_period="day")
    first = await gateway.post(COMPLETIONS, json=CHAT, headers=auth(key))
    assert first.status_code == 200  # nothing spent yet: it may start (and spends $0.50)
    await settled()
    second = await gateway.post(COMPLETIONS, json=CHAT, headers=auth(key))
    assert second.status_code == 429
    error = second.json()["error"]
    assert error["type"] == "budget_exceeded" and error["code"] == "budget_exceeded"
    assert "budget" in error["message"]
    assert calls(upstream_a) == 1


async def test_every_limit_error_in_the_anthropic_shape(gateway, priced, upstream_a, make_key):
    await priced()
    spent = await make_key(["gateway"], budget=Decimal(0))
    elsewhere = await make_key(["gateway"], routes=["other"])
    limited = await make_key(["gateway"], rate_limit_per_minute=1)
    assert (await gateway.post("/v1/messages", json=MESSAGE, headers=anthropic(limited))).status_code == 200
    before = calls(upstream_a)
    for key, status, kind in (
        (spent, 429, "rate_limit_error"),
        (elsewhere, 403, "permission_error"),
        (limited, 429, "rate_limit_error"),
    ):
        response = await gateway.post("/v1/messages", json=MESSAGE, headers=anthropic(key))
        assert response.status_code == status, response.text
        body = response.json()
        assert body["type"] == "error" and body["error"]["type"] == kind
    assert "Retry-After" in response.headers and int(response.headers["Retry-After"]) >= 1
    assert calls(upstream_a) == before


async def test_a_key_limited_to_other_routes_gets_a_403_and_no_call(gateway, priced, upstream_a, make_key):
    await priced()
    key = await make_key(["gateway"], routes=["other"])
    refused = await gateway.post(COMPLETIONS, json=CHAT, headers=auth(key))
    assert refused.status_code == 403
    assert refused.json()["error"]["type"] == "route_not_allowed"
    assert calls(upstream_a) == 0
    allowed = await gateway.post(COMPLETIONS, json={**CHAT, "model": "other"}, headers=auth(key))
    assert allowed.status_code == 200 and calls(upstream_a) == 1


async def test_a_key_past_its_request_limit_gets_a_429_with_retry_after(gateway, priced, upstream_a, make_key):
    await priced()
    key = await make_key(["gateway"], rate_limit_per_minute=2)
    statuses = [(await gateway.post(COMPLETIONS, json=CHAT, headers=auth(key))).status_code for _ in range(2)]
    assert statuses == [200, 200]
    refused = await gateway.post(COMPLETIONS, json=CHAT, headers=auth(key))
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    assert calls(upstream_a) == 2


async def test_a_key_past_its_token_limit_is_refused(gateway, priced, upstream_a, make_key):
    await priced()
    key = await make_key(["gateway"], tokens_per_minute=5)
    assert (await gateway.post(COMPLETIONS, json=CHAT, headers=auth(key))).status_code == 200  # 5 tokens
    await settled()
    refused = await gateway.post(COMPLETIONS, json=CHAT, headers=auth(key))
    assert refused.status_code == 429 and refused.json()["error"]["type"] == "rate_limited"
    assert calls(upstream_a) == 1


async def test_execute_is_limited_too(gateway, priced, upstream_a, make_key):
    await priced()
    key = await make_key(["gateway"], budget=Decimal(0))
    response = await gateway.post(
        "/api/execute", json={"capability": "chat", "route": "chain", "input": "hi"}, headers=auth(key)
    )
    assert response.status_code == 429 and response.json()["error"]["type"] == "budget_exceeded"
    assert calls(upstream_a) == 0


async def test_spend_settled_from_answers_and_streams_equals_the_request_logs_cost(gateway, priced, make_key):
    from analytics.models import RequestLog
    from analytics.recorder import flush_all

    await priced()
    key = await make_key(["gateway"], budget=Decimal(1000))
    assert (await gateway.post(COMPLETIONS, json=CHAT, headers=auth(key))).status_code == 200
    streamed = await gateway.post(
        COMPLETIONS, json={**CHAT, "stream": True, "stream_options": {"include_usage": True}}, headers=auth(key)
    )
    assert streamed.status_code == 200 and "[DONE]" in streamed.text
    await settled()
    await flush_all()

    @sync_to_async
    def sums() -> tuple[Decimal, Decimal, int]:
        logged = RequestLog.objects.filter(api_key_id__isnull=False).aggregate(s=Sum("cost"))["s"]
        kept = KeySpend.objects.aggregate(s=Sum("spend"), n=Sum("requests"))
        return logged, kept["s"], kept["n"]

    logged, kept, requests = await sums()
    assert requests == 2 and kept == logged and kept >= Decimal(1)

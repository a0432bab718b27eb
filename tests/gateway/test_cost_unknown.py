"""Unknown prices end to end: routed last by the cost strategy, logged as `cost: null`, counted
beside the analytics cost sum (never as 0), and published prices read at discovery."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from analytics.recorder import flush_all
from tests.fakes.openai import FakeOpenAI
from tests.fakes.openrouter import FakeOpenRouter
from tests.fakes.openrouter import pricing as openrouter_pricing
from tests.fakes.together import FakeTogether
from tests.fakes.together import pricing as together_pricing

from .conftest import CHAT, auth, provider

pytestmark = pytest.mark.django_db(transaction=True)

QUIET_BREAKER = {"consecutive_failures": 100, "min_calls": 1000}
ONE_TRY = {"max_attempts": 1}


@pytest.fixture
def upstream_c() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def three_prices(configure, upstream_a, upstream_b, upstream_c, settings):
    """`unknown` (no price), `paid` and `free` (a price of 0), one cost-routed chain, listed
    with the unknown one first."""
    settings.ANALYTICS_FLUSH_INTERVAL_S = 60  # the explicit flush writes everything

    def entry(name: str, server: FakeOpenAI, prices: dict) -> dict:
        return provider(name, server.url + "/v1", breaker=QUIET_BREAKER, retry=ONE_TRY, prices=prices)

    await configure(
        {
            "providers": [
                entry("unknown", upstream_a, {}),
                entry("paid", upstream_b, {"gpt-4o": {"input_per_mtok": 2.5, "output_per_mtok": 10}}),
                entry("free", upstream_c, {"gpt-4o-mini": {"input_per_mtok": 0, "output_per_mtok": 0}}),
            ],
            "routes": [
                {
                    "name": "chain",
                    "capability": "chat",
                    "strategy": "cost",
                    "max_attempts": 3,
                    "targets": [
                        {"provider": "unknown", "model": "gpt-4o-mini"},
                        {"provider": "paid", "model": "gpt-4o"},
                        {"provider": "free", "model": "gpt-4o-mini"},
                    ],
                }
            ],
        }
    )


async def test_the_cost_strategy_tries_free_then_paid_then_unknown(gateway, key, three_prices, upstream_b, upstream_c):
    first = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))
    assert first.status_code == 200 and first.headers["X-Gateway-Provider"] == "free"

    upstream_c.fault(status=503, times=1)
    upstream_b.fault(status=503, times=1)
    last = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))
    assert last.status_code == 200 and last.headers["X-Gateway-Provider"] == "unknown"
    await flush_all()
    detail = (await gateway.get(f"/api/requests/{last.headers['X-Request-Id']}", headers=auth(key))).json()
    assert [a["provider"] for a in detail["attempts"]] == ["free", "paid", "unknown"]


async def test_a_request_to_a_model_without_a_price_logs_a_null_cost_and_analytics_count_it_apart(
    gateway, key, three_prices, upstream_c
):
    free = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))
    upstream_c.fault(status=503, times=1)
    paid = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))
    assert paid.headers["X-Gateway-Provider"] == "paid"
    named = await gateway.post("/v1/chat/completions", json={**CHAT, "model": "unknown/gpt-4o-mini"}, headers=auth(key))
    assert named.status_code == 200
    await flush_all()

    def cost(response) -> str | None:  # type: ignore[no-untyped-def]
        return next(r["cost"] for r in listed if r["request_id"] == response.headers["X-Request-Id"])

    listed = (await gateway.get("/api/requests", headers=auth(key))).json()["requests"]
    assert cost(free) == "0"
    assert cost(named) is None
    assert float(cost(paid)) > 0
    one = (await gateway.get(f"/api/requests/{named.headers['X-Request-Id']}", headers=auth(key))).json()
    assert one["cost"] is None

    total = (await gateway.get("/api/analytics", headers=auth(key))).json()["total"]
    assert total["cost_unknown"] == 1
    assert total["cost"] == pytest.approx(float(cost(paid)))
    costs = (await gateway.get("/api/analytics", headers=auth(key))).json()["providers"]
    assert costs["unknown"]["cost_unknown"] == 1 and costs["paid"]["cost_unknown"] == 0


async def test_the_model_catalog_shows_null_for_an_unknown_price(gateway, key, three_prices):
    body = (await gateway.get("/api/providers/paid/models", headers=auth(key))).json()
    gpt4o = next(m for m in body["models"] if m["name"] == "gpt-4o")
    assert gpt4o["input_price_per_mtok"] == 2.5 and gpt4o["price_per_image"] is None
    assert gpt4o["price_known"] and not gpt4o["free"]
    free = (await gateway.get("/api/providers/free/models", headers=auth(key))).json()["models"][0]
    assert free["free"] and free["input_price_per_mtok"] == 0


@pytest.fixture
def openrouter() -> Iterator[FakeOpenRouter]:
    prices = {
        "openai/o3-mini": openrouter_pricing("0.0000011", "0.0000044"),
        "meta-llama/llama-3.3-70b-instruct": openrouter_pricing("0.00000013", "0.0000004"),
        "openrouter/auto": openrouter_pricing("-1", "-1"),
    }
    with FakeOpenRouter(prices=prices) as server:
        yield server


def openrouter_config(server: FakeOpenRouter, prices: dict | None = None) -> dict:
    return {
        "providers": [provider("openrouter", server.url + "/api/v1", breaker=QUIET_BREAKER, prices=prices or {})],
        "routes": [
            {
                "name": "cheapest",
                "capability": "chat",
                "strategy": "cost",
                "targets": [
                    {"provider": "openrouter", "model": "openrouter/auto"},
                    {"provider": "openrouter", "model": "openai/o3-mini"},
                    {"provider": "openrouter", "model": "meta-llama/llama-3.3-70b-instruct"},
                ],
            }
        ],
    }


async def test_openrouters_published_prices_are_read_at_discovery_and_route_by_cost(
    gateway, key, configure, openrouter, settings
):
    settings.ANALYTICS_FLUSH_INTERVAL_S = 60
    await configure(openrouter_config(openrouter))
    before = await gateway.post("/v1/chat/completions", json={**CHAT, "model": "cheapest"}, headers=auth(key))
    assert before.headers["X-Gateway-Model"] == "openrouter/auto"  # nothing known: the given order

    listed = await gateway.get("/api/providers/openrouter/models?refresh=1", headers=auth(key))
    assert listed.status_code == 200
    models = {m["name"]: m for m in listed.json()["models"]}
    assert models["openai/o3-mini"]["input_price_per_mtok"] == pytest.approx(1.1)
    assert models["openai/o3-mini"]["output_price_per_mtok"] == pytest.approx(4.4)
    assert models["openrouter/auto"]["input_price_per_mtok"] is None
    assert not models["openrouter/auto"]["price_known"]

    after = await gateway.post("/v1/chat/completions", json={**CHAT, "model": "cheapest"}, headers=auth(key))
    assert after.headers["X-Gateway-Model"] == "meta-llama/llama-3.3-70b-instruct"
    await flush_all()
    logged = (await gateway.get(f"/api/requests/{after.headers['X-Request-Id']}", headers=auth(key))).json()
    usage = after.json()["usage"]
    expected = (usage["prompt_tokens"] * 0.13 + usage["completion_tokens"] * 0.4) / 1_000_000
    assert float(logged["cost"]) == pytest.approx(expected, abs=1e-8)

    # an operator's price wins over the published one (PUT: the running gateway reloads)
    priced = {"openai/o3-mini": {"input_per_mtok": 0.01, "output_per_mtok": 0.01}}
    put = await gateway.put("/api/config", headers=auth(key), json=openrouter_config(openrouter, priced))
    assert put.status_code == 200
    won = await gateway.post("/v1/chat/completions", json={**CHAT, "model": "cheapest"}, headers=auth(key))
    assert won.headers["X-Gateway-Model"] == "openai/o3-mini"


async def test_togethers_published_prices_are_read_and_an_all_zero_model_stays_unknown(gateway, key, configure):
    prices = {
        "meta-llama/Llama-3.3-70B-Instruct-Turbo": together_pricing(0.88, 0.88),
        "black-forest-labs/FLUX.1-schnell": together_pricing(0, 0),
    }
    with FakeTogether(prices=prices, types={"black-forest-labs/FLUX.1-schnell": "image"}) as server:
        await configure({"providers": [provider("together", server.url + "/v1")]})
        listed = await gateway.get("/api/providers/together/models?refresh=1", headers=auth(key))
    assert listed.status_code == 200
    models = {m["name"]: m for m in listed.json()["models"]}
    llama = models["meta-llama/Llama-3.3-70B-Instruct-Turbo"]
    assert (llama["input_price_per_mtok"], llama["output_price_per_mtok"]) == (0.88, 0.88)
    flux = models["black-forest-labs/FLUX.1-schnell"]
    assert flux["input_price_per_mtok"] is None and not flux["price_known"] and not flux["free"]

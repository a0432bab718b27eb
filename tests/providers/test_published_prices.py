"""Prices published in a provider's model list (OpenRouter, Together): parsed, stored at
discovery beside the operator's, and charged only where the operator set none."""

from __future__ import annotations

from decimal import Decimal

import pytest

from providers.adapters import ModelInfo
from providers.adapters.published_prices import (
    PUBLISHED,
    effective_prices,
    from_details,
    parse_pricing,
    published_prices,
)
from providers.catalog import store_models
from providers.config import apply_config
from providers.models import ProviderModel
from providers.snapshot import load_snapshot
from tests.fakes.openrouter import pricing as openrouter_pricing
from tests.fakes.together import pricing as together_pricing

IN, OUT = "input_price_per_mtok", "output_price_per_mtok"


# -- the parser ---------------------------------------------------------------------------------


def test_openrouter_prices_per_token_become_prices_per_million_tokens():
    item = {"id": "openai/o3-mini", "pricing": openrouter_pricing("0.0000011", "0.0000044", image="0.0007")}
    assert published_prices(item) == {IN: Decimal("1.1"), OUT: Decimal("4.4")}


def test_an_openrouter_free_model_is_free_and_a_router_with_a_variable_price_is_unknown():
    assert parse_pricing(openrouter_pricing("0", "0")) == {IN: Decimal(0), OUT: Decimal(0)}
    assert parse_pricing(openrouter_pricing("-1", "-1")) == {}


def test_openrouter_prices_keep_the_catalogs_six_places():
    assert parse_pricing(openrouter_pricing("0.0000000375", "0.00000015")) == {
        IN: Decimal("0.037500"),
        OUT: Decimal("0.150000"),
    }


def test_together_prices_are_already_per_million_tokens():
    item = {"id": "meta-llama/Llama-3.3-70B-Instruct-Turbo", "pricing": together_pricing(0.88, 0.88)}
    assert published_prices(item) == {IN: Decimal("0.88"), OUT: Decimal("0.88")}


def test_a_together_model_with_every_figure_zero_is_unknown_not_free():
    assert parse_pricing(together_pricing(0, 0)) == {}
    assert parse_pricing(together_pricing(0, 0, hourly=2.5)) == {}  # dedicated only: nothing per token


def test_an_embedding_model_priced_only_for_input_keeps_its_free_output():
    assert parse_pricing(together_pricing(0.02, 0)) == {IN: Decimal("0.02"), OUT: Decimal(0)}


@pytest.mark.parametrize(
    "pricing",
    [
        None,
        "0.1",
        [],
        {},
        {"prompt": "abc", "completion": None},
        {"prompt": True, "completion": False},
        {"prompt": "NaN", "completion": "Infinity"},
        {"input": "1e400", "output": -3},
        {"per_second": 0.1},
    ],
)
def test_what_cannot_be_read_is_unknown(pricing):
    assert parse_pricing(pricing) == {}


def test_a_price_too_large_for_the_catalog_is_dropped_not_clamped():
    assert parse_pricing({"prompt": "5", "completion": "0.000002"}) == {OUT: Decimal("2")}


def test_the_operators_price_wins_and_the_published_one_fills_what_is_unknown():
    details = {PUBLISHED: {IN: "1.1", OUT: "4.4"}}
    merged = effective_prices({IN: Decimal("0.5"), OUT: None, "price_per_image": None}, details)
    assert merged[IN] == Decimal("0.5") and merged[OUT] == Decimal("4.4")
    assert merged["price_per_image"] is None
    assert effective_prices({IN: Decimal(0)}, details)[IN] == 0  # an operator's 0 is free, and wins
    assert from_details({PUBLISHED: {IN: "garbage", OUT: "-1"}}) == {}


# -- discovery stores them ----------------------------------------------------------------------


def _provider() -> None:
    apply_config(
        {
            "providers": [
                {
                    "name": "router",
                    "kind": "openai",
                    "base_url": "https://openrouter.ai/api/v1",
                    "api_key": "sk-or-test",
                    "prices": {"openai/o3-mini": {"input_per_mtok": 0.5}},
                }
            ]
        },
        actor="test",
    )


def _info(name: str, price: dict) -> ModelInfo:
    # what the openai adapter's list_models makes of an item: its fields but the id, as details
    return ModelInfo(name=name, details={"object": "model", "pricing": price})


@pytest.mark.django_db
def test_discovery_stores_published_prices_and_the_snapshot_charges_them_where_the_operator_set_none():
    _provider()
    changed = store_models(
        "router",
        [
            _info("openai/o3-mini", openrouter_pricing("0.0000011", "0.0000044")),
            _info("meta-llama/llama-3.3-70b-instruct", openrouter_pricing("0.00000013", "0.0000004")),
            _info("openrouter/auto", openrouter_pricing("-1", "-1")),
            _info("google/gemma-3-27b-it:free", openrouter_pricing("0", "0")),
        ],
    )
    assert changed == 4  # three new rows, and the configured one's published prices
    rows = {m.name: m for m in ProviderModel.objects.filter(provider__name="router")}
    assert rows["openai/o3-mini"].source == "config"
    assert rows["openai/o3-mini"].input_price_per_mtok == Decimal("0.5")  # the column stays the operator's
    assert rows["openai/o3-mini"].prices()[OUT] == Decimal("4.4")
    assert rows["meta-llama/llama-3.3-70b-instruct"].prices()[IN] == Decimal("0.13")
    assert not rows["openrouter/auto"].price_known and not rows["openrouter/auto"].is_free
    assert rows["google/gemma-3-27b-it:free"].is_free

    entry = load_snapshot().providers["router"]
    o3 = entry.price("openai/o3-mini")
    assert o3 is not None and (o3.input_per_mtok, o3.output_per_mtok) == (Decimal("0.5"), Decimal("4.4"))
    assert entry.price("openrouter/auto") is None
    ranks = {m: entry.target(m, "chat", priority=0).cost for m in rows}
    assert ranks["openrouter/auto"] is None
    assert ranks["google/gemma-3-27b-it:free"] == 0.0
    assert ranks["meta-llama/llama-3.3-70b-instruct"] == pytest.approx(0.53)


@pytest.mark.django_db
def test_a_new_listing_updates_the_published_prices_and_one_without_prices_forgets_them():
    _provider()
    store_models("router", [_info("m", openrouter_pricing("0.000001", "0.000002"))])
    assert store_models("router", [_info("m", openrouter_pricing("0.000003", "0.000002"))]) == 1
    row = ProviderModel.objects.get(name="m")
    assert row.details[PUBLISHED] == {IN: "3.000000", OUT: "2.000000"}
    assert store_models("router", [_info("m", openrouter_pricing("0.000003", "0.000002"))]) == 0  # unchanged
    assert store_models("router", [ModelInfo(name="m", details={"object": "model"})]) == 1
    row.refresh_from_db()
    assert PUBLISHED not in row.details and not row.price_known


@pytest.mark.django_db
def test_a_configuration_import_keeps_published_prices_and_its_own_prices_still_win():
    _provider()
    store_models("router", [_info("m", openrouter_pricing("0.000001", "0.000002"))])
    _provider()  # the same document again (it does not name "m")
    row = ProviderModel.objects.get(name="m")
    assert row.prices()[IN] == Decimal(1)
    apply_config(
        {
            "providers": [
                {
                    "name": "router",
                    "kind": "openai",
                    "base_url": "https://openrouter.ai/api/v1",
                    "api_key": "sk-or-test",
                    "prices": {"m": {"input_per_mtok": 0}},
                }
            ]
        },
        actor="test",
    )
    row.refresh_from_db()
    assert row.prices()[IN] == 0 and row.prices()[OUT] == Decimal(2)

"""Prices a provider publishes in its own model list, read at discovery (pure: no I/O, no Django).

Two formats are known, told apart by the keys of an item's `pricing` object:

- OpenRouter (`GET /api/v1/models`, items under `data`): strings in USD **per token**
  (`"prompt": "0.000001"`, `"completion": "0.000002"`), plus `image` (per image *sent to*
  the model), `request` (per request), `web_search`, `internal_reasoning`, cache reads and
  writes. `"0"` is a free model (the `:free` variants); a negative price (`"-1"`, published
  by routers such as `openrouter/auto`) means "it depends": unknown.
- Together (`GET /v1/models`, a top-level array): numbers in USD **per million tokens**
  (`"input": 0.88`, `"output": 0.88`), plus `hourly` (dedicated endpoints), `base` and
  `finetune` (fine-tuning). Every figure 0 is a model not sold per token (dedicated only,
  or an image model billed per megapixel): unknown, not free.

Only prices with a catalog column are read: input and output per million tokens
(`ProviderModel.input_price_per_mtok`, `output_price_per_mtok`). OpenRouter's `image` is
not the catalog's `price_per_image` (that is the price of an image the model *makes*) and
`request` has no column; neither is guessed at.

The catalog keeps what was published apart from what an operator set
(`ProviderModel.details[PUBLISHED]`); `effective_prices` merges them, the operator's first.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["PRICE_FIELDS", "PUBLISHED", "effective_prices", "from_details", "parse_pricing", "published_prices"]

# The catalog's price columns (ProviderModel), in the order of `Price`'s fields.
PRICE_FIELDS = (
    "input_price_per_mtok",
    "output_price_per_mtok",
    "price_per_image",
    "price_per_kchar",
    "price_per_minute",
)
# The key of ProviderModel.details that keeps what the provider published, as decimal strings.
PUBLISHED = "published_prices"

MILLION = Decimal(1_000_000)
PLACES = Decimal("1e-6")  # the catalog columns keep 6 places (DECIMAL(12, 6))
TOP = Decimal("999999.999999")  # and at most this: a larger figure is garbage, not a price

Prices = dict[str, Decimal]


def _amount(value: Any) -> Decimal | None:
    """A finite, non-negative amount from a JSON string or number; None for anything else."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        number = Decimal(value.strip()) if isinstance(value, str) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite() or number < 0:
        return None
    return number


def _column(per_mtok: Decimal | None) -> Decimal | None:
    if per_mtok is None or per_mtok > TOP:  # larger: garbage, and too large to quantize
        return None
    return per_mtok.quantize(PLACES)


def _openrouter(pricing: Mapping[str, Any]) -> Prices:
    out: Prices = {}
    for key, field in (("prompt", "input_price_per_mtok"), ("completion", "output_price_per_mtok")):
        per_token = _amount(pricing.get(key))
        value = _column(per_token * MILLION if per_token is not None else None)
        if value is not None:
            out[field] = value
    return out


def _together(pricing: Mapping[str, Any]) -> Prices:
    figures = [_amount(v) for v in pricing.values()]
    if not any(figures):  # all zero (or none readable): not sold per token here
        return {}
    out: Prices = {}
    for key, field in (("input", "input_price_per_mtok"), ("output", "output_price_per_mtok")):
        value = _column(_amount(pricing.get(key)))
        if value is not None:
            out[field] = value
    if not any(out.values()):  # only hourly or fine-tuning prices: nothing per token
        return {}
    return out


def parse_pricing(pricing: Any) -> Prices:
    """The catalog prices (column name → USD, per million tokens) in one `pricing` object of a
    model list; empty when there is none, or none this module can read."""
    if not isinstance(pricing, Mapping):
        return {}
    if "prompt" in pricing or "completion" in pricing:
        return _openrouter(pricing)
    if "input" in pricing or "output" in pricing:
        return _together(pricing)
    return {}


def published_prices(item: Mapping[str, Any]) -> Prices:
    """The catalog prices one model-list item publishes (its `pricing` key); see the module doc."""
    return parse_pricing(item.get("pricing"))


def from_details(details: Mapping[str, Any] | None) -> Prices:
    """What `details[PUBLISHED]` holds (decimal strings), read back; bad values are dropped."""
    stored = (details or {}).get(PUBLISHED)
    if not isinstance(stored, Mapping):
        return {}
    out: Prices = {}
    for field in PRICE_FIELDS:
        value = _column(_amount(stored.get(field)))
        if value is not None:
            out[field] = value
    return out


def effective_prices(
    configured: Mapping[str, Decimal | None], details: Mapping[str, Any] | None
) -> dict[str, Decimal | None]:
    """Each price as charged: the one an operator set (configuration, admin, API; not None),
    else the one the provider published, else None (unknown). A price of 0 is free."""
    published = from_details(details)
    return {
        field: configured.get(field) if configured.get(field) is not None else published.get(field)
        for field in PRICE_FIELDS
    }

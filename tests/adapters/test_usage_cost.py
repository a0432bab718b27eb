"""`Usage.cost`: a price of 0 is free, an unknown price (None) is not; a cost is unknown only
when no unit the call used has a known price."""

from __future__ import annotations

from decimal import Decimal

from providers.adapters import Price, Usage


def test_a_model_without_a_price_has_an_unknown_cost_unless_nothing_was_used():
    assert Usage(tokens_in=10, tokens_out=5).cost(None) is None
    assert Usage(tokens_in=10).cost(Price()) is None
    assert Usage().cost(None) == 0


def test_a_price_of_zero_is_free():
    assert Usage(tokens_in=10, tokens_out=5).cost(Price(input_per_mtok=Decimal(0), output_per_mtok=Decimal(0))) == 0


def test_a_unit_not_used_needs_no_price_and_one_left_unknown_beside_a_priced_one_is_not_billed():
    chat = Price(input_per_mtok=Decimal(2), output_per_mtok=Decimal(8))  # images unknown
    assert Usage(tokens_in=500_000, tokens_out=250_000).cost(chat) == Decimal(3)
    speech = Price(per_kchar=Decimal("0.3"))  # billed per character; the minutes it also reports are not
    assert Usage(characters=2000, audio_seconds=12.5).cost(speech) == Decimal("0.6")
    assert Usage(audio_seconds=12.5).cost(speech) is None  # nothing it used has a price

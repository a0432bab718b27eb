"""The cost strategy and unknown prices: a price of 0 is free (first), no price is unknown (last)."""

from __future__ import annotations

import math
import random

from providers.engine import TargetSpec
from providers.engine.latency import LatencyTracker
from providers.engine.strategies import by_cost, cost_rank, order_targets


def names(targets: list[TargetSpec]) -> str:
    return "".join(t.provider for t in targets)


def test_unknown_prices_sort_after_every_priced_target_and_free_comes_first():
    targets = [
        TargetSpec("u", "m", cost=None),
        TargetSpec("p", "m", cost=12.5),
        TargetSpec("f", "m", cost=0.0),
        TargetSpec("c", "m", cost=0.4),
    ]
    assert names(by_cost(targets)) == "fcpu"


def test_targets_of_equal_or_unknown_price_keep_their_given_order():
    targets = [
        TargetSpec("a", "m", cost=None),
        TargetSpec("b", "m", cost=1.0),
        TargetSpec("c", "m", cost=None),
        TargetSpec("d", "m", cost=1.0),
        TargetSpec("e", "m", cost=math.nan),
    ]
    assert names(by_cost(targets)) == "bdace"


def test_a_nan_cost_is_unknown_not_a_price():
    assert cost_rank(TargetSpec("a", "m", cost=math.nan)) == cost_rank(TargetSpec("b", "m", cost=None))
    assert cost_rank(TargetSpec("a", "m", cost=1e9)) < cost_rank(TargetSpec("b", "m", cost=None))


def test_the_cost_strategy_orders_a_chain_with_unknown_prices_last():
    targets = [TargetSpec("u", "m", cost=None), TargetSpec("p", "m", cost=3.0), TargetSpec("f", "m", cost=0.0)]
    order = order_targets("cost", targets, scores={}, latency=LatencyTracker(), turn=0, rng=random.Random(1))
    assert names(order) == "fpu"
    preferred = order_targets(
        "cost", targets, scores={}, latency=LatencyTracker(), turn=0, rng=random.Random(1), preferred_provider="u"
    )
    assert names(preferred) == "ufp"  # a caller's preference still wins over the price

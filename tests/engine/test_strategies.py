"""Ordering the chain: one test per strategy, ties keep the given order."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from providers.engine import RoutePolicy, TargetSpec
from providers.engine.latency import LatencyTracker
from providers.engine.strategies import order_targets

from .upstream import Router, Upstream


def names(targets: list[TargetSpec]) -> str:
    return "".join(t.provider for t in targets)


def order(strategy: str, targets: list[TargetSpec], **kw) -> list[TargetSpec]:  # type: ignore[no-untyped-def]
    kw.setdefault("scores", {})
    kw.setdefault("latency", LatencyTracker())
    kw.setdefault("turn", 0)
    kw.setdefault("rng", random.Random(3))
    return order_targets(strategy, targets, **kw)


def test_priority_puts_lower_numbers_first_and_keeps_ties_in_order():
    targets = [TargetSpec("a", "m", priority=2), TargetSpec("b", "m", priority=1), TargetSpec("c", "m", priority=2)]
    assert names(order("priority", targets)) == "bac"


def test_cost_puts_the_cheapest_first():
    targets = [TargetSpec("a", "m", cost=3.0), TargetSpec("b", "m", cost=1.0), TargetSpec("c", "m", cost=1.0)]
    assert names(order("cost", targets)) == "bca"


def test_health_score_puts_the_healthiest_first_and_unknown_in_the_middle():
    targets = [TargetSpec("a", "m"), TargetSpec("b", "m"), TargetSpec("c", "m")]
    assert names(order("health_score", targets, scores={"a": 10.0, "b": 90.0})) == "bca"


def test_least_latency_explores_targets_without_samples_first():
    latency = LatencyTracker()
    for _ in range(5):
        latency.add("a/m", 2.0)
        latency.add("b/m", 0.5)
    targets = [TargetSpec("a", "m"), TargetSpec("b", "m"), TargetSpec("c", "m")]
    assert names(order("least_latency", targets, latency=latency)) == "cba"


def test_round_robin_rotates_by_turn():
    targets = [TargetSpec(n, "m") for n in "abc"]
    assert [names(order("round_robin", targets, turn=t)) for t in range(4)] == ["abc", "bca", "cab", "abc"]


def test_weighted_order_follows_the_weights():
    targets = [TargetSpec("a", "m", weight=3.0), TargetSpec("b", "m", weight=1.0), TargetSpec("z", "m", weight=0.0)]
    rng = random.Random(11)
    firsts = Counter(order("weighted", targets, rng=rng)[0].provider for _ in range(4000))
    assert firsts["z"] == 0
    assert firsts["a"] / 4000 == pytest.approx(0.75, abs=0.03)
    assert all(order("weighted", targets, rng=rng)[-1].provider == "z" for _ in range(50))


def test_random_order_is_a_permutation_that_varies():
    targets = [TargetSpec(n, "m") for n in "abcd"]
    rng = random.Random(5)
    seen = {names(order("random", targets, rng=rng)) for _ in range(200)}
    assert len(seen) > 10 and all(sorted(s) == list("abcd") for s in seen)


def test_the_preferred_provider_moves_to_the_front():
    targets = [TargetSpec(n, "m", priority=i) for i, n in enumerate("abc")]
    assert names(order("priority", targets, preferred_provider="c")) == "cab"


def test_an_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="strategy"):
        order("fastest", [TargetSpec("a", "m")])


async def test_round_robin_rotates_per_route_through_the_engine(engine):
    router = Router(a=Upstream(), b=Upstream())
    targets = [TargetSpec("a", "m"), TargetSpec("b", "m")]
    served = [
        (await engine.execute(RoutePolicy("one", strategy="round_robin"), targets, router)).target.provider
        for _ in range(4)
    ]
    other = (await engine.execute(RoutePolicy("two", strategy="round_robin"), targets, router)).target.provider
    assert served == ["a", "b", "a", "b"] and other == "a"


async def test_health_scores_set_from_outside_order_the_chain(engine):
    router = Router(a=Upstream(), b=Upstream())
    engine.set_scores({"a": 20.0, "b": 95.0})
    result = await engine.execute(
        RoutePolicy("r", strategy="health_score"), [TargetSpec("a", "m"), TargetSpec("b", "m")], router
    )
    assert result.target.provider == "b"

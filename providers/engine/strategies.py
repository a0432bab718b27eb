"""Ordering a route's targets (the fallback chain's order). Ties keep the given order.

Every strategy is a pure function of the targets and what it is handed (scores, latencies,
a counter, a random source), so ordering is cheap and testable without an engine.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence

from .latency import LatencyTracker
from .policy import STRATEGIES, TargetSpec

UNKNOWN_SCORE = 50.0  # a target the monitor has not scored yet sorts as middling


def latency_key(target: TargetSpec) -> str:
    return f"{target.breaker_key}/{target.model}"


def by_priority(targets: Sequence[TargetSpec]) -> list[TargetSpec]:
    return sorted(targets, key=lambda t: t.priority)


def cost_rank(target: TargetSpec) -> tuple[int, float]:
    """Priced targets by price (a price of 0 is free, first); a target whose price is unknown
    (`cost` None or NaN) after every priced one: unknown is not free."""
    cost = target.cost
    if cost is None or math.isnan(cost):
        return (1, 0.0)
    return (0, cost)


def by_cost(targets: Sequence[TargetSpec]) -> list[TargetSpec]:
    return sorted(targets, key=cost_rank)


def by_health_score(targets: Sequence[TargetSpec], scores: Mapping[str, float]) -> list[TargetSpec]:
    return sorted(targets, key=lambda t: -scores.get(t.breaker_key, UNKNOWN_SCORE))


def by_latency(targets: Sequence[TargetSpec], latency: LatencyTracker) -> list[TargetSpec]:
    """Fastest p50 first; targets without samples go first so they get explored."""

    def key(t: TargetSpec) -> tuple[int, float]:
        p50 = latency.percentile(latency_key(t), 0.5)
        return (0, 0.0) if p50 is None else (1, p50)

    return sorted(targets, key=key)


def round_robin(targets: Sequence[TargetSpec], turn: int) -> list[TargetSpec]:
    if not targets:
        return []
    n = turn % len(targets)
    return [*targets[n:], *targets[:n]]


def weighted(targets: Sequence[TargetSpec], rng: random.Random) -> list[TargetSpec]:
    """A weighted random order without replacement (Efraimidis-Spirakis): the chance that a
    target comes first is its share of the total weight. Weight 0 goes last."""

    def key(t: TargetSpec) -> float:
        if t.weight <= 0:
            return math.inf
        return -math.log(1.0 - rng.random()) / t.weight  # exponential race, smallest wins

    keyed = [(key(t), i, t) for i, t in enumerate(targets)]
    keyed.sort(key=lambda x: (x[0], x[1]))
    return [t for _, _, t in keyed]


def shuffled(targets: Sequence[TargetSpec], rng: random.Random) -> list[TargetSpec]:
    order = list(targets)
    rng.shuffle(order)
    return order


def prefer(targets: list[TargetSpec], provider: str | None) -> list[TargetSpec]:
    """Move `provider`'s targets to the front, keeping the order within each group."""
    if not provider:
        return targets
    return [t for t in targets if t.provider == provider] + [t for t in targets if t.provider != provider]


def order_targets(
    strategy: str,
    targets: Sequence[TargetSpec],
    *,
    scores: Mapping[str, float],
    latency: LatencyTracker,
    turn: int,
    rng: random.Random,
    preferred_provider: str | None = None,
) -> list[TargetSpec]:
    """The chain's order for one request under `strategy` (one of `STRATEGIES`)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy: must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
    if len(targets) < 2:
        return list(targets)
    if strategy == "priority":
        order = by_priority(targets)
    elif strategy == "round_robin":
        order = round_robin(targets, turn)
    elif strategy == "weighted":
        order = weighted(targets, rng)
    elif strategy == "least_latency":
        order = by_latency(targets, latency)
    elif strategy == "health_score":
        order = by_health_score(targets, scores)
    elif strategy == "random":
        order = shuffled(targets, rng)
    else:
        order = by_cost(targets)
    return prefer(order, preferred_provider)

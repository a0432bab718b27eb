"""Pure delay maths: full-jitter backoff, Retry-After jitter and break durations.

No state and no clock: each function takes its random source, so a seeded `random.Random`
makes every delay reproducible.
"""

from __future__ import annotations

import random


def backoff_bound(attempt: int, base: float, cap: float) -> float:
    """The upper bound of the full-jitter delay after failed attempt `attempt` (1-based)."""
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    # Past 2**64 the product overflows to inf or loses meaning; the cap has long applied.
    return min(cap, base * 2.0 ** min(attempt - 1, 64))


def full_jitter(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """AWS's full jitter: U(0, min(cap, base x 2^(attempt-1)))."""
    return rng.uniform(0.0, backoff_bound(attempt, base, cap))


def jittered_at_least(seconds: float, jitter: float, rng: random.Random) -> float:
    """A server-given delay used as a minimum, with upward jitter: d x U(1, 1 + jitter)."""
    return seconds * rng.uniform(1.0, 1.0 + jitter)


def break_duration(opened_count: int, base: float, cap: float, jitter: float, rng: random.Random) -> float:
    """How long a breaker stays open on its `opened_count`-th consecutive opening (§3):
    min(cap, base x 2^(k-1)) x U(1, 1 + jitter)."""
    k = max(1, opened_count)
    return min(cap, base * 2.0 ** min(k - 1, 64)) * rng.uniform(1.0, 1.0 + jitter)

"""Limits on how much extra load retries may add (resilience.md §4).

`RetryBudget` is the SRE 10% rule with Envoy's floor: over a sliding window, a retry (or a
hedge) is allowed only while `retries < max(min_retries, ratio x first_attempts)`.
`AdaptiveThrottle` is SRE eq. 21-1: reject locally with probability
`max(0, (requests - K·accepts) / (requests + 1))`, counting only overload signals (429, 529)
as non-accepts.

Both are per process by design, as in the SRE book and gRPC's retry throttling: each client
protects the server from itself, so a shared store has nothing to add here.
"""

from __future__ import annotations

import random

from .window import RateWindow


class RetryBudget:
    """First attempts (`a`) and retries (`b`) over `window_s` seconds."""

    __slots__ = ("min_retries", "params", "ratio", "window")

    def __init__(self, window_s: float = 10.0, ratio: float = 0.1, min_retries: int = 3) -> None:
        self.params = (window_s, ratio, min_retries)
        self.window = RateWindow(window_s, 10)
        self.ratio = ratio
        self.min_retries = min_retries

    def record_first(self, now: float) -> None:
        self.window.add(now, a=1)

    def allows(self, now: float) -> bool:
        self.window.roll(now)
        return self.window.b < max(self.min_retries, self.ratio * self.window.a)

    def try_spend(self, now: float) -> bool:
        """Take one retry token if the budget allows it; the check and the count are one step."""
        if not self.allows(now):
            return False
        self.window.add(now, b=1)
        return True


class AdaptiveThrottle:
    """Requests (`a`) and accepts (`b`) over `window_s`; rejects locally when accepts lag."""

    __slots__ = ("k", "params", "window")

    def __init__(self, window_s: float = 120.0, k: float = 2.0) -> None:
        self.params = (window_s, k)
        self.window = RateWindow(window_s, 12)
        self.k = k

    def record(self, now: float, accepted: bool) -> None:
        """One request the application wanted to send, locally rejected ones included."""
        self.window.add(now, a=1, b=1 if accepted else 0)

    def reject_probability(self, now: float) -> float:
        self.window.roll(now)
        requests, accepts = self.window.a, self.window.b
        return max(0.0, (requests - self.k * accepts) / (requests + 1))

    def should_reject(self, now: float, rng: random.Random) -> bool:
        p = self.reject_probability(now)
        return p > 0.0 and rng.random() < p

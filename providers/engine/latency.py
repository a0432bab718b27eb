"""Recent latencies per target: the last 100 successful durations (TTFT for streams).

Used by the least_latency strategy (p50), the hedging delay (p95) and `min_useful_time`
(p50). Percentiles are computed on demand from a sorted copy, refreshed once a tenth of the samples
is new.
"""

from __future__ import annotations

import math
from collections import deque


class LatencySamples:
    __slots__ = ("_sorted", "_stale", "samples")

    def __init__(self, size: int = 100) -> None:
        self.samples: deque[float] = deque(maxlen=size)
        self._sorted: list[float] | None = None
        self._stale = 0

    def add(self, seconds: float) -> None:
        self.samples.append(seconds)
        self._stale += 1

    def __len__(self) -> int:
        return len(self.samples)

    def percentile(self, q: float) -> float | None:
        """The nearest-rank percentile `q` in (0, 1], or None without samples."""
        if not self.samples:
            return None
        # Re-sort once a tenth of the samples is new: percentiles used for routing need not
        # move with every call, and sorting 100 floats per attempt would dominate its cost.
        if self._sorted is None or self._stale > len(self.samples) // 10:
            self._sorted = sorted(self.samples)
            self._stale = 0
        data = self._sorted
        return data[min(len(data) - 1, max(0, math.ceil(q * len(data)) - 1))]


class LatencyTracker:
    """Samples by key: the engine records under "breaker_key" and "breaker_key/model"."""

    __slots__ = ("_by_key", "size")

    def __init__(self, size: int = 100) -> None:
        self.size = size
        self._by_key: dict[str, LatencySamples] = {}

    def add(self, key: str, seconds: float) -> None:
        samples = self._by_key.get(key)
        if samples is None:
            samples = self._by_key[key] = LatencySamples(self.size)
        samples.add(seconds)

    def get(self, key: str) -> LatencySamples | None:
        return self._by_key.get(key)

    def percentile(self, key: str, q: float) -> float | None:
        samples = self._by_key.get(key)
        return samples.percentile(q) if samples is not None else None

    def count(self, key: str) -> int:
        samples = self._by_key.get(key)
        return len(samples) if samples is not None else 0

"""A time-bucketed sliding window of call outcomes (resilience.md §3 "Window").

The window spans `window_s` in `buckets` equal buckets on the monotonic clock. Totals are kept
running, so adding an outcome or reading the counts costs O(1) unless buckets expired since the
last touch (then O(expired buckets), at most `buckets`). A bucket's calls leave the window when
the bucket does, so the window covers between `window_s - bucket` and `window_s` of history.
"""

from __future__ import annotations

import math
from typing import NamedTuple


class WindowCounts(NamedTuple):
    """Calls that count (successes and failures; ignored outcomes are not calls). Immutable."""

    calls: int = 0
    failures: int = 0
    slow: int = 0
    consecutive_failures: int = 0

    @property
    def failure_rate(self) -> float | None:
        return self.failures / self.calls if self.calls else None

    @property
    def slow_rate(self) -> float | None:
        return self.slow / self.calls if self.calls else None

    @property
    def success_rate(self) -> float | None:
        return (self.calls - self.failures) / self.calls if self.calls else None


EMPTY = WindowCounts()


class SlidingWindow:
    """Counts calls, failures and slow calls over the last `window_s` seconds."""

    __slots__ = ("_bucket_s", "_calls", "_epoch", "_fail", "_n", "_slow", "_t_calls", "_t_fail", "_t_slow", "window_s")

    def __init__(self, window_s: float, buckets: int = 12) -> None:
        if window_s <= 0 or buckets < 1:
            raise ValueError("window_s must be positive and buckets at least 1")
        self.window_s = window_s
        self._n = buckets
        self._bucket_s = window_s / buckets
        self._calls = [0] * buckets
        self._fail = [0] * buckets
        self._slow = [0] * buckets
        self._epoch: int | None = None  # index of the newest bucket (time // bucket_s)
        self._t_calls = self._t_fail = self._t_slow = 0

    def _roll(self, now: float) -> int:
        index = math.floor(now / self._bucket_s)
        epoch = self._epoch
        if epoch is None:
            self._epoch = index
        elif index > epoch:
            # Empty every bucket between the old newest and the new newest, all if past the span.
            for i in range(epoch + 1, min(index, epoch + self._n) + 1):
                slot = i % self._n
                self._t_calls -= self._calls[slot]
                self._t_fail -= self._fail[slot]
                self._t_slow -= self._slow[slot]
                self._calls[slot] = self._fail[slot] = self._slow[slot] = 0
            self._epoch = index
        return index % self._n

    def add(self, now: float, failure: bool, slow: bool = False) -> None:
        """Add one call at monotonic time `now`. A time older than the newest bucket counts in
        the newest one: late results are still evidence, and the window never moves back."""
        slot = self._roll(now)
        self._calls[slot] += 1
        self._t_calls += 1
        if failure:
            self._fail[slot] += 1
            self._t_fail += 1
        if slow:
            self._slow[slot] += 1
            self._t_slow += 1

    def counts(self, now: float, consecutive_failures: int = 0) -> WindowCounts:
        self._roll(now)
        return WindowCounts(self._t_calls, self._t_fail, self._t_slow, consecutive_failures)

    def clear(self) -> None:
        for i in range(self._n):
            self._calls[i] = self._fail[i] = self._slow[i] = 0
        self._t_calls = self._t_fail = self._t_slow = 0


class RateWindow:
    """Two counters over a sliding window (`a` and `b`), for the retry budget and throttling."""

    __slots__ = ("_a", "_b", "_bucket_s", "_epoch", "_n", "a", "b")

    def __init__(self, window_s: float, buckets: int = 10) -> None:
        self._n = buckets
        self._bucket_s = window_s / buckets
        self._a = [0] * buckets
        self._b = [0] * buckets
        self._epoch: int | None = None
        self.a = 0
        self.b = 0

    def roll(self, now: float) -> int:
        index = math.floor(now / self._bucket_s)
        epoch = self._epoch
        if epoch is None:
            self._epoch = index
        elif index > epoch:
            for i in range(epoch + 1, min(index, epoch + self._n) + 1):
                slot = i % self._n
                self.a -= self._a[slot]
                self.b -= self._b[slot]
                self._a[slot] = self._b[slot] = 0
            self._epoch = index
        return index % self._n

    def add(self, now: float, a: int = 0, b: int = 0) -> None:
        slot = self.roll(now)
        self._a[slot] += a
        self._b[slot] += b
        self.a += a
        self.b += b

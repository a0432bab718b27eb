"""The latency histogram the rollups keep: fixed log-spaced buckets, about 20% wide.

Bucket 0 counts latencies under 1 ms; bucket i (1..73) counts `BOUNDS_MS[i-1] <= ms <
BOUNDS_MS[i]`, where the bounds are 1.2**i rounded to three significant digits (so they print
cleanly as Prometheus `le` labels); the last bucket counts everything from about ten minutes
up. Because every rollup row holds the same buckets as plain integer columns, rollups add up
with atomic SQL increments and percentiles of any window come from summed columns.

A percentile read from the histogram lies in the bucket that holds the exact percentile of
the raw latencies: its error is at most one bucket width (about 20%).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence

GROWTH = 1.2


def _round3(x: float) -> float:
    digits = 2 - math.floor(math.log10(x))
    return round(x, digits) if digits > 0 else float(round(x, digits))


# Upper bounds of buckets 0..73 in ms; bucket 74 is the overflow (>= ~601 s).
BOUNDS_MS: tuple[float, ...] = tuple(_round3(GROWTH**i) for i in range(74))
BUCKETS = len(BOUNDS_MS) + 1
COLUMNS: tuple[str, ...] = tuple(f"h{i:02d}" for i in range(BUCKETS))


def bucket_of(ms: float) -> int:
    """The index of the bucket that counts a latency of `ms` milliseconds."""
    return bisect_right(BOUNDS_MS, ms)


def bucket_range(index: int) -> tuple[float, float]:
    """[low, high) of bucket `index` in ms (the overflow bucket's high is infinite)."""
    low = BOUNDS_MS[index - 1] if index > 0 else 0.0
    high = BOUNDS_MS[index] if index < len(BOUNDS_MS) else math.inf
    return low, high


def percentile(counts: Sequence[int], q: float) -> float | None:
    """The q-th percentile (0 < q <= 100) of the latencies counted in `counts`, in ms.

    Nearest rank (the value at rank ceil(q/100 * n)), placed inside its bucket by geometric
    interpolation on the rank; None when nothing was counted.
    """
    total = sum(counts)
    if total <= 0:
        return None
    rank = max(1, math.ceil(q / 100 * total))
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            low, high = bucket_range(index)
            fraction = (rank - seen - 0.5) / count
            if index == 0:
                return high * fraction
            if math.isinf(high):
                return low
            return low * (high / low) ** fraction
        seen += count
    return None  # unreachable: the ranks add up to total


def exact_percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of raw values (what `percentile` approximates)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]

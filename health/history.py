"""A provider's probe history over a window (1 h, 24 h, 7 d), in buckets for the charts."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from .models import ProbeResult

# window -> (length in seconds, buckets)
WINDOWS: dict[str, tuple[int, int]] = {"1h": (3600, 60), "24h": (86400, 96), "7d": (7 * 86400, 84)}
WINDOW_LABELS = {"1h": "1 hour", "24h": "24 hours", "7d": "7 days"}


@dataclass(frozen=True)
class Bucket:
    start: float  # epoch seconds
    checks: int
    failures: int
    p50_ms: float | None
    p95_ms: float | None

    @property
    def success_pct(self) -> float | None:
        return None if not self.checks else 100.0 * (self.checks - self.failures) / self.checks


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def bucketize(rows: Iterable[tuple[datetime, bool, float]], start: float, end: float, count: int) -> list[Bucket]:
    """Group (at, ok, latency_ms) rows into `count` equal buckets from `start` to `end`."""
    width = (end - start) / count
    latencies: list[list[float]] = [[] for _ in range(count)]
    failures = [0] * count
    checks = [0] * count
    for at, ok, ms in rows:
        i = int((at.timestamp() - start) // width)
        if not 0 <= i < count:
            continue
        checks[i] += 1
        if ok:
            latencies[i].append(ms)
        else:
            failures[i] += 1
    buckets = []
    for i in range(count):
        values = sorted(latencies[i])
        buckets.append(
            Bucket(start + i * width, checks[i], failures[i], percentile(values, 0.5), percentile(values, 0.95))
        )
    return buckets


@dataclass(frozen=True)
class History:
    window: str
    start: float
    end: float
    buckets: list[Bucket]

    @property
    def checks(self) -> int:
        return sum(b.checks for b in self.buckets)

    @property
    def failures(self) -> int:
        return sum(b.failures for b in self.buckets)

    @property
    def success_pct(self) -> float | None:
        return None if not self.checks else 100.0 * (self.checks - self.failures) / self.checks


def probe_history(provider: str, window: str, now: datetime | None = None) -> History:
    length, count = WINDOWS[window]
    end = now or timezone.now()
    start = end - timedelta(seconds=length)
    rows = (
        ProbeResult.objects.filter(provider__name=provider, at__gte=start, at__lte=end)
        .order_by("at")
        .values_list("at", "ok", "latency_ms")
    )
    return History(
        window,
        start.timestamp(),
        end.timestamp(),
        bucketize(rows.iterator(), start.timestamp(), end.timestamp(), count),
    )

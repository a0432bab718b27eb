"""Time windows of the analytics, and which rollup buckets cover them.

A window ends at the end of the current minute and reaches back its length. It is covered by
whole days in the middle, whole hours beside them and minutes at the edges, so a 30-day window
reads 29 day rows, up to 47 hour rows and up to 59 minute rows per dimension instead of 43,200
minutes. Where minute rollups are no longer kept (older than
ANALYTICS_MINUTE_RETENTION_HOURS) an edge is widened to its whole hour; the answer's `from`
says where the window really starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings

from .models import Granularity

WINDOWS: dict[str, timedelta] = {
    "5m": timedelta(minutes=5),
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
DEFAULT_WINDOW = "24h"
# The step of each window's time series, and the rollups it is read from: one rollup row
# per step and dimension, so even a 30-day series reads a few hundred rows (finer steps
# from finer rollups cost ~10 ms per 1,000 rows summed, on SQLite).
SERIES_STEP: dict[str, tuple[timedelta, str]] = {
    "5m": (timedelta(minutes=1), Granularity.MINUTE),
    "1h": (timedelta(minutes=1), Granularity.MINUTE),
    "24h": (timedelta(hours=1), Granularity.HOUR),
    "7d": (timedelta(hours=1), Granularity.HOUR),
    "30d": (timedelta(days=1), Granularity.DAY),
}
SPANS = {
    Granularity.MINUTE: timedelta(minutes=1),
    Granularity.HOUR: timedelta(hours=1),
    Granularity.DAY: timedelta(days=1),
}


class WindowError(ValueError):
    """An unknown window name."""


@dataclass(frozen=True)
class Segment:
    granularity: str
    start: datetime  # inclusive bucket start
    end: datetime  # exclusive


@dataclass(frozen=True)
class Window:
    name: str
    start: datetime
    end: datetime
    segments: tuple[Segment, ...]

    @property
    def step(self) -> timedelta:
        return SERIES_STEP[self.name][0]

    @property
    def series_granularity(self) -> str:
        return SERIES_STEP[self.name][1]

    @property
    def series_start(self) -> datetime:
        """The first step wholly inside the window (the last one is the current, partial one)."""
        return ceil(self.start, self.step)


def parse_window(value: str | None) -> str:
    """The window's name (DEFAULT_WINDOW for None: none asked for); WindowError when unknown,
    the empty name included (`?window=` names no window)."""
    if value is None:
        return DEFAULT_WINDOW
    if value not in WINDOWS:
        raise WindowError(f"unknown window {value!r}: use one of {', '.join(WINDOWS)}")
    return value


def fitting_window(oldest: datetime | None, now: datetime) -> str:
    """The window a page opens on when none is asked for: DEFAULT_WINDOW, or when the oldest
    data (a bucket start) is younger than that, the smallest window that still shows all of
    it, so a fresh install's first requests are bars across the chart, not a dot at its edge.
    No data at all: 1 hour (a window that fills while one watches)."""
    if oldest is None:
        return "1h"
    for name, length in WINDOWS.items():
        if length > WINDOWS[DEFAULT_WINDOW]:
            break
        end = floor(now, SPANS[Granularity.MINUTE]) + SPANS[Granularity.MINUTE]
        if end - length <= oldest:
            return name
    return DEFAULT_WINDOW


def floor(at: datetime, step: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((at - epoch) // step) * step


def ceil(at: datetime, step: timedelta) -> datetime:
    down = floor(at, step)
    return down if down == at else down + step


def minute_horizon(now: datetime) -> datetime:
    """The oldest minute whose rollups retention still keeps."""
    return ceil(now - timedelta(hours=settings.ANALYTICS_MINUTE_RETENTION_HOURS), SPANS[Granularity.MINUTE])


def window(name: str, now: datetime | None = None) -> Window:
    """The window `name` ending with the current minute, and the rollup segments covering it."""
    name = parse_window(name)
    now = (now or datetime.now(UTC)).astimezone(UTC)
    end = floor(now, SPANS[Granularity.MINUTE]) + SPANS[Granularity.MINUTE]
    start = end - WINDOWS[name]
    return cover(name, start, end, minute_horizon(now))


def cover(name: str, start: datetime, end: datetime, minutes_from: datetime) -> Window:
    day, hour = SPANS[Granularity.DAY], SPANS[Granularity.HOUR]
    segments: list[Segment] = []
    d0, d1 = ceil(start, day), floor(end, day)
    if d0 < d1:
        segments.append(Segment(Granularity.DAY, d0, d1))
        edges = [(start, d0), (d1, end)]
    else:
        edges = [(start, end)]
    for a, b in edges:
        if a >= b:
            continue
        h0, h1 = ceil(a, hour), floor(b, hour)
        if h0 < h1:
            segments.append(Segment(Granularity.HOUR, h0, h1))
            parts = [(a, h0), (h1, b)]
        else:
            parts = [(a, b)]
        for m0, m1 in parts:
            if m0 >= m1:
                continue
            if m0 < minutes_from:  # minute rollups are gone there: take its whole hours
                segments.append(Segment(Granularity.HOUR, floor(m0, hour), ceil(m1, hour)))
            else:
                segments.append(Segment(Granularity.MINUTE, m0, m1))
    segments.sort(key=lambda s: s.start)
    return Window(name, segments[0].start, max(s.end for s in segments), tuple(segments))

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from analytics.windows import WindowError, parse_window, window

NOW = datetime(2026, 11, 22, 11, 27, 13, tzinfo=UTC)


def covered(win) -> timedelta:
    return sum((s.end - s.start for s in win.segments), timedelta())


@pytest.mark.parametrize("name", ["5m", "1h", "24h"])
def test_short_windows_are_covered_exactly_up_to_the_current_minute(name):
    win = window(name, NOW)
    assert win.end == datetime(2026, 11, 22, 11, 28, tzinfo=UTC)
    assert (
        win.end - win.start
        == covered(win)
        == {"5m": timedelta(minutes=5), "1h": timedelta(hours=1), "24h": timedelta(hours=24)}[name]
    )


def test_a_day_window_reads_hours_in_the_middle_and_minutes_at_its_edges():
    win = window("24h", NOW)
    assert [s.granularity for s in win.segments] == ["m", "h", "m"]
    assert win.segments[1].end - win.segments[1].start == timedelta(hours=23)


def test_a_30_day_window_reads_days_and_widens_its_old_edge_to_a_whole_hour():
    win = window("30d", NOW)
    kinds = [s.granularity for s in win.segments]
    assert "d" in kinds and kinds[-1] == "m"
    day = next(s for s in win.segments if s.granularity == "d")
    assert day.end - day.start == timedelta(days=29)
    assert win.start == datetime(2026, 10, 23, 11, 0, tzinfo=UTC)  # minute rollups are gone there
    assert covered(win) == win.end - win.start
    assert all(a.end == b.start for a, b in zip(win.segments, win.segments[1:], strict=False))


def test_an_unknown_window_is_refused_and_none_means_24h():
    assert parse_window(None) == "24h"
    for unknown in ("2w", ""):
        with pytest.raises(WindowError):
            parse_window(unknown)

"""The server-side charts: pure functions of numbers to SVG."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from health import charts, history
from health.templatetags import console


def test_a_sparkline_scales_from_zero_and_marks_failed_checks():
    svg = charts.sparkline([100, 200, 50], [False, True, False], label="p1 check latency")
    assert svg.startswith('<svg class="sparkline" role="img"')
    assert 'aria-label="p1 check latency: 3 checks, latest 50 ms, lowest 50 ms, highest 200 ms"' in svg
    points = re.search(r'<polyline class="spark-line" points="([^"]+)"', svg).group(1).split()
    ys = [float(p.split(",")[1]) for p in points]
    assert ys[1] == 2.0 and ys[0] == 14.0 and ys[2] == 20.0  # top at the pad, half, a quarter
    assert svg.count('class="spark-fail"') == 1


def test_a_sparkline_without_data_says_so():
    assert 'aria-label="x: no data yet"' in charts.sparkline([], label="x")
    one = charts.sparkline([42.0], label="x")
    assert "1 checks, latest 42 ms" in one and 'points="2,2 118,2"' in one


def test_a_heartbeat_has_a_slot_per_check_with_its_story():
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    beats = [
        charts.Beat(
            now - timedelta(seconds=30 * i),
            ok=i != 1,
            slow=i == 2,
            latency_ms=90.0,
            error="http_500: <boom>" if i == 1 else "",
        )
        for i in range(3)
    ][::-1]
    svg = charts.heartbeat(beats, label="p1 checks", slots=10)
    assert svg.count('class="beat beat-none"') == 7
    assert svg.count("beat-ok") == 1 and svg.count("beat-fail") == 1 and svg.count("beat-slow") == 1
    assert "last 3 checks, 1 ok, 1 slow, 1 failed" in svg
    assert "2026-01-01 11:59:30 UTC · failed · 90 ms · http_500: &lt;boom&gt;" in svg  # escaped


def test_a_line_chart_breaks_its_line_where_data_is_missing():
    start = 0.0
    points = [(0, 10.0), (10, 20.0), (20, None), (30, 40.0), (40, 30.0)]
    svg = charts.line_chart([charts.Series("p50", points, "series-a")], start, 40, label="Latency", unit="ms")
    assert svg.count("<polyline") == 2
    assert 'aria-label="Latency. p50 from 10 ms to 40 ms, latest 30 ms"' in svg
    assert ">40 ms</text>" in svg and ">0 ms</text>" in svg  # a round top


def test_a_percentage_chart_runs_to_100_and_labels_an_empty_series():
    svg = charts.line_chart(
        [charts.Series("success", [(0, None)], "series-ok")], 0, 60, label="Success", unit="%", y_max=100
    )
    assert ">100%</text>" in svg and "success: no data" in svg and "<polyline" not in svg


def y_axis(top: float) -> list[str]:
    """The y axis's labels, bottom to top, of a line chart whose highest value is `top`."""
    svg = charts.line_chart([charts.Series("s", [(0, top)], "series-a")], 0, 60, label="L", unit="%")
    return re.findall(r'<text class="tick" x="42" y="[^"]+" text-anchor="end">([^<]*)</text>', svg)


def test_the_y_axis_ticks_are_round_numbers():
    assert y_axis(380) == ["0%", "100%", "200%", "300%", "400%"]
    assert y_axis(100) == ["0%", "25%", "50%", "75%", "100%"]
    assert y_axis(0.3) == ["0%", "0.1%", "0.2%", "0.3%", "0.4%"]


def test_buckets_hold_counts_and_percentiles():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        (start + timedelta(seconds=s), ok, ms)
        for s, ok, ms in [(5, True, 100), (10, True, 300), (20, False, 9000), (70, True, 50), (130, True, 1)]
    ]
    buckets = history.bucketize(rows, start.timestamp(), start.timestamp() + 120, 2)
    assert [(b.checks, b.failures) for b in buckets] == [(3, 1), (1, 0)]  # the last row is outside
    assert buckets[0].p50_ms == 100 and buckets[0].p95_ms == 300 and round(buckets[0].success_pct) == 67
    assert buckets[1].p50_ms == 50


def test_the_formatting_filters():
    assert console.ms(None) == "–" and console.ms(84.4) == "84 ms" and console.ms(1234) == "1.2 s"
    assert console.rate(0.985) == "98.5%" and console.rate(1.0) == "100%" and console.rate(None) == "–"
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert console.ago(now - timedelta(seconds=12), now) == "12 s ago"
    assert console.ago(now - timedelta(minutes=5), now) == "5 min ago"
    assert console.ago(now - timedelta(hours=5), now) == "5 h ago"
    assert console.ago(None) == "never"


def test_a_bar_chart_stacks_counts_per_step_and_leaves_empty_steps_bare():
    svg = charts.bar_chart(
        [0, 60, 120, 180],
        60,
        [charts.Stack("ok", [3, 0, 2, 0], "series-ok"), charts.Stack("failed", [1, 0, 0, 0], "series-bad")],
        0,
        240,
        label="Requests per minute",
    )
    assert svg.count('<rect class="bar series-ok"') == 2 and svg.count('<rect class="bar series-bad"') == 1
    assert svg.count("<g><title>") == 2  # a tooltip per step with requests, none for empty steps
    assert "1970-01-01 00:00 UTC: 3 ok, 1 failed" in svg
    assert 'aria-label="Requests per minute. ok 5 in all, at most 3 in a step; failed 1 in all' in svg
    assert "<title>Requests per minute</title><desc>" in svg
    ok = re.findall(r'<rect class="bar series-ok" x="[^"]+" y="([^"]+)" width="[^"]+" height="([^"]+)"', svg)
    bad = re.search(r'<rect class="bar series-bad" x="[^"]+" y="([^"]+)" width="[^"]+" height="([^"]+)"', svg)
    assert float(bad.group(1)) + float(bad.group(2)) == float(ok[0][0])  # the failed bar sits on the ok one


def test_a_bar_chart_counts_in_whole_numbers_and_clips_the_first_step():
    svg = charts.bar_chart([-30, 30], 60, [charts.Stack("n", [1, 2], "series-a")], 0, 90, label="N")
    assert re.findall(r'x="42" y="[^"]+" text-anchor="end">([^<]*)</text>', svg) == ["0", "1", "2"]
    widths = [float(w) for w in re.findall(r'<rect class="bar series-a" x="[^"]+" y="[^"]+" width="([^"]+)"', svg)]
    assert widths[0] < widths[1]  # half of the first step is before the window


def test_annotations_mark_their_moment_with_a_dashed_line_and_say_so():
    notes = [
        charts.Annotation(30, "alice disabled provider p1"),
        charts.Annotation(500, "outside the window"),
        charts.Annotation(45, "bob put in maintenance provider p1", "note-maintenance"),
    ]
    svg = charts.line_chart(
        [charts.Series("p50", [(0, 10.0), (60, 20.0)], "series-a")], 0, 60, label="Latency", annotations=notes
    )
    assert svg.count('<g class="note ') == 2 and '<g class="note note-maintenance">' in svg
    assert "<title>1970-01-01 00:00 UTC · alice disabled provider p1</title>" in svg
    assert "2 changes marked: 1970-01-01 00:00 UTC alice disabled provider p1; " in svg
    assert "outside the window" not in svg
    x = re.search(r'<g class="note note-config"><title>[^<]*</title><line x1="([^"]+)"', svg).group(1)
    assert float(x) == 48 + (640 - 48 - 8) / 2  # halfway along the plot


def test_a_lone_point_between_gaps_is_a_dot_not_a_line():
    points = [(0, None), (10, 5.0), (20, None), (30, 6.0), (40, 7.0)]
    svg = charts.line_chart([charts.Series("p95", points, "series-b")], 0, 40, label="L")
    assert svg.count("<circle") == 1 and svg.count("<polyline") == 1

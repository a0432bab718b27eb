"""Charts drawn on the server as inline SVG: sparklines, heartbeat strips and line charts.

Pure functions of numbers to markup (no Django models, no I/O). Colours come from CSS
classes, so the light and dark themes restyle them; every chart is an `img` with an
`aria-label` that says in words what it shows, and the marks carry `<title>`s for hover.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe


@dataclass(frozen=True)
class Beat:
    """One check in a heartbeat strip."""

    at: datetime
    ok: bool
    slow: bool
    latency_ms: float
    error: str = ""


@dataclass(frozen=True)
class Series:
    """One line of a chart: (x as epoch seconds, y or None for a gap)."""

    name: str
    points: Sequence[tuple[float, float | None]]
    css: str  # the line's class: series-a, series-b, series-ok ...


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "–"
    if value >= 10_000:
        return f"{value / 1000:.0f} s"
    if value >= 1000:
        return f"{value / 1000:.1f} s"
    return f"{value:.0f} ms"


def _num(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def sparkline(
    values: Sequence[float],
    failed: Sequence[bool] = (),
    *,
    label: str,
    noun: str = "checks",
    fmt: Callable[[float], str] = fmt_ms,
    width: int = 120,
    height: int = 28,
) -> SafeString:
    """A sparkline on a zero baseline (latencies unless `fmt` says otherwise); the points
    in `failed` are marked."""
    if not values:
        return format_html(
            '<svg class="sparkline empty" role="img" aria-label="{}" viewBox="0 0 {} {}" width="{}" height="{}"></svg>',
            f"{label}: no data yet",
            width,
            height,
            width,
            height,
        )
    top = max(values) or 1.0
    pad = 2.0
    step = (width - 2 * pad) / max(1, len(values) - 1)
    points = [
        (pad + i * step if len(values) > 1 else width / 2, height - pad - (v / top) * (height - 2 * pad))
        for i, v in enumerate(values)
    ]
    line = " ".join(f"{_num(x)},{_num(y)}" for x, y in points)
    if len(points) == 1:  # one check: a level line, not an invisible point
        line = f"{_num(pad)},{_num(points[0][1])} {_num(width - pad)},{_num(points[0][1])}"
        points = [(pad, points[0][1]), (width - pad, points[0][1])]
    area = f"{_num(points[0][0])},{height} {line} {_num(points[-1][0])},{height}"
    # A failed check is a red tick across the strip (the SVG stretches, so no circles).
    dots = "".join(
        f'<line class="spark-fail" x1="{_num(x)}" x2="{_num(x)}" y1="0" y2="{height}"></line>'
        for (x, _), bad in zip(points, failed, strict=False)
        if bad
    )
    summary = f"{label}: {len(values)} {noun}, latest {fmt(values[-1])}, lowest {fmt(min(values))}, highest {fmt(top)}"
    return format_html(
        '<svg class="sparkline" role="img" aria-label="{}" viewBox="0 0 {} {}" width="{}" height="{}" '
        'preserveAspectRatio="none"><title>{}</title><polygon class="spark-area" points="{}"></polygon>'
        '<polyline class="spark-line" points="{}"></polyline>{}</svg>',
        summary,
        width,
        height,
        width,
        height,
        summary,
        area,
        line,
        mark_safe(dots),
    )


def heartbeat(beats: Sequence[Beat], *, label: str, slots: int = 30, width: int = 240, height: int = 18) -> SafeString:
    """The last `slots` checks, oldest left; empty slots stay grey."""
    beats = list(beats)[-slots:]
    gap = 2.0
    cell = (width - gap * (slots - 1)) / slots
    offset = slots - len(beats)
    cells = []
    for i in range(offset):
        cells.append(
            f'<rect class="beat beat-none" x="{_num(i * (cell + gap))}" y="0" width="{_num(cell)}" '
            f'height="{height}" rx="1.5"></rect>'
        )
    for j, beat in enumerate(beats):
        state = "fail" if not beat.ok else ("slow" if beat.slow else "ok")
        words = {"fail": "failed", "slow": "slow", "ok": "ok"}[state]
        tip = f"{beat.at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC · {words} · {fmt_ms(beat.latency_ms)}"
        if beat.error:
            tip += f" · {beat.error[:160]}"
        x = (offset + j) * (cell + gap)
        cells.append(
            f'<rect class="beat beat-{state}" x="{_num(x)}" y="0" width="{_num(cell)}" height="{height}" '
            f'rx="1.5"><title>{escape(tip)}</title></rect>'
        )
    failed = sum(1 for b in beats if not b.ok)
    slow = sum(1 for b in beats if b.ok and b.slow)
    summary = (
        f"{label}: last {len(beats)} checks, {len(beats) - failed - slow} ok, {slow} slow, {failed} failed"
        if beats
        else f"{label}: no checks yet"
    )
    return format_html(
        '<svg class="heartbeat" role="img" aria-label="{}" viewBox="0 0 {} {}" preserveAspectRatio="none">{}</svg>',
        summary,
        width,
        height,
        mark_safe("".join(cells)),
    )


def _ticks(top: float, count: int = 4) -> list[float]:
    """`count` round steps from 0 to at least `top`."""
    if top <= 0:
        top = 1.0
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        step = magnitude * factor
        if step * count >= top:
            return [step * i for i in range(count + 1)]
    return [raw * i for i in range(count + 1)]


def _time_label(at: float, span_s: float) -> str:
    moment = datetime.fromtimestamp(at, tz=UTC)
    return f"{moment:%a %d}" if span_s > 2 * 86400 else f"{moment:%H:%M}"


def line_chart(
    series: Sequence[Series],
    start: float,
    end: float,
    *,
    label: str,
    unit: str = "ms",
    y_max: float | None = None,
    width: int = 640,
    height: int = 200,
) -> SafeString:
    """Lines over time with a labelled y axis (0 to a round maximum) and time ticks.

    A None value breaks its line, so missing data shows as a gap, never as a zero.
    """
    left, right, top_pad, bottom = 48.0, 8.0, 10.0, 22.0
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    values = [y for s in series for _, y in s.points if y is not None]
    ticks = _ticks(y_max if y_max is not None else max(values, default=0.0))
    y_top = ticks[-1]
    span = max(end - start, 1.0)

    def x_of(t: float) -> float:
        return left + (t - start) / span * plot_w

    def y_of(v: float) -> float:
        return top_pad + plot_h - (v / y_top) * plot_h

    def y_text(v: float) -> str:
        return fmt_ms(v) if unit == "ms" else f"{_num(v)}{unit}"

    parts = []
    for v in ticks:
        y = y_of(v)
        parts.append(
            f'<line class="grid" x1="{_num(left)}" x2="{_num(width - right)}" y1="{_num(y)}" y2="{_num(y)}">'
            f'</line><text class="tick" x="{_num(left - 6)}" y="{_num(y + 4)}" text-anchor="end">'
            f"{escape(y_text(v))}</text>"
        )
    for i in range(5):
        t = start + span * i / 4
        anchor = "start" if i == 0 else ("end" if i == 4 else "middle")
        parts.append(
            f'<text class="tick" x="{_num(x_of(t))}" y="{height - 6}" text-anchor="{anchor}">'
            f"{escape(_time_label(t, span))}</text>"
        )
    described = []
    for s in series:
        segments: list[list[tuple[float, float]]] = [[]]
        for t, point in s.points:
            if point is None:
                if segments[-1]:
                    segments.append([])
                continue
            segments[-1].append((x_of(t), y_of(point)))
        for seg in segments:
            if len(seg) == 1:
                x, y = seg[0]
                parts.append(f'<circle class="line {s.css}" cx="{_num(x)}" cy="{_num(y)}" r="2"></circle>')
            elif seg:
                pts = " ".join(f"{_num(x)},{_num(y)}" for x, y in seg)
                parts.append(f'<polyline class="line {s.css}" points="{pts}"></polyline>')
        known = [v for _, v in s.points if v is not None]
        if known:
            described.append(f"{s.name} from {y_text(min(known))} to {y_text(max(known))}, latest {y_text(known[-1])}")
        else:
            described.append(f"{s.name}: no data")
    summary = f"{label}. " + "; ".join(described)
    return format_html(
        '<svg class="chart" role="img" aria-label="{}" viewBox="0 0 {} {}">{}</svg>',
        summary,
        width,
        height,
        mark_safe("".join(parts)),
    )

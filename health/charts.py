"""Charts drawn on the server as inline SVG: sparklines, heartbeat strips, line and bar charts.

Pure functions of numbers to markup (no Django models, no I/O). Colours come from CSS
classes, so the light and dark themes restyle them; every chart is an `img` with an
`aria-label` that says in words what it shows, and the marks carry `<title>`s for hover.

Counts (requests, failovers) are bars, one per step, since a count belongs to its step and
a line between two steps would invent the values in between. Rates and latencies are lines
that break where a step has no data: a gap, never a zero. Both take `Annotation`s: a
configuration change drawn as a dashed vertical line with its own `<title>`.
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


@dataclass(frozen=True)
class Stack:
    """One layer of a stacked bar chart: a value per step, in the steps' order."""

    name: str
    values: Sequence[float]
    css: str  # the bars' class: series-ok, series-bad, series-muted ...


@dataclass(frozen=True)
class Annotation:
    """A moment worth marking on a time chart: a configuration change, maintenance..."""

    at: float  # epoch seconds
    label: str  # what happened, for the marker's tooltip
    css: str = "note-config"


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


def _ticks(top: float, count: int = 4, *, whole: bool = False) -> list[float]:
    """`count` round steps from 0 to at least `top` (whole numbers only for counts)."""
    if top <= 0:
        top = 1.0
    if whole and top <= count:
        return [float(i) for i in range(max(1, math.ceil(top)) + 1)]
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


def _moment(at: float) -> str:
    return f"{datetime.fromtimestamp(at, tz=UTC):%Y-%m-%d %H:%M} UTC"


@dataclass(frozen=True)
class _Frame:
    """The plot area of a time chart: scales, grid, axes and annotation markers."""

    start: float
    end: float
    y_top: float
    width: int
    height: int
    left: float = 48.0
    right: float = 8.0
    top_pad: float = 10.0
    bottom: float = 22.0

    @property
    def span(self) -> float:
        return max(self.end - self.start, 1.0)

    @property
    def plot_h(self) -> float:
        return self.height - self.top_pad - self.bottom

    def x_of(self, t: float) -> float:
        return self.left + (t - self.start) / self.span * (self.width - self.left - self.right)

    def y_of(self, v: float) -> float:
        return self.top_pad + self.plot_h - (v / self.y_top) * self.plot_h

    def axes(self, ticks: Sequence[float], y_text: Callable[[float], str]) -> list[str]:
        parts = []
        for v in ticks:
            y = self.y_of(v)
            parts.append(
                f'<line class="grid" x1="{_num(self.left)}" x2="{_num(self.width - self.right)}" y1="{_num(y)}" '
                f'y2="{_num(y)}"></line><text class="tick" x="{_num(self.left - 6)}" y="{_num(y + 4)}" '
                f'text-anchor="end">{escape(y_text(v))}</text>'
            )
        for i in range(5):
            t = self.start + self.span * i / 4
            anchor = "start" if i == 0 else ("end" if i == 4 else "middle")
            parts.append(
                f'<text class="tick" x="{_num(self.x_of(t))}" y="{self.height - 6}" text-anchor="{anchor}">'
                f"{escape(_time_label(t, self.span))}</text>"
            )
        return parts

    def notes(self, annotations: Sequence[Annotation]) -> tuple[list[str], str]:
        """Markers for the annotations inside the window, and a sentence about them."""
        inside = [a for a in annotations if self.start <= a.at <= self.end]
        parts = []
        for a in inside:
            x = _num(self.x_of(a.at))
            tip = escape(f"{_moment(a.at)} · {a.label}")
            parts.append(
                f'<g class="note {escape(a.css)}"><title>{tip}</title>'
                f'<line x1="{x}" x2="{x}" y1="{_num(self.top_pad)}" y2="{_num(self.top_pad + self.plot_h)}"></line>'
                f'<path d="M{x} {_num(self.top_pad)} l-4 -6 h8 z"></path></g>'
            )
        if not inside:
            return parts, ""
        sentence = f" {len(inside)} change{'s' if len(inside) != 1 else ''} marked: " + "; ".join(
            f"{_moment(a.at)} {a.label}" for a in inside[:5]
        )
        return parts, sentence + ("; …" if len(inside) > 5 else "") + "."


def _svg(label: str, summary: str, width: int, height: int, parts: list[str]) -> SafeString:
    return format_html(
        '<svg class="chart" role="img" aria-label="{}" viewBox="0 0 {} {}"><title>{}</title><desc>{}</desc>{}</svg>',
        summary,
        width,
        height,
        label,
        summary,
        mark_safe("".join(parts)),
    )


def line_chart(
    series: Sequence[Series],
    start: float,
    end: float,
    *,
    label: str,
    unit: str = "ms",
    y_max: float | None = None,
    annotations: Sequence[Annotation] = (),
    width: int = 640,
    height: int = 200,
) -> SafeString:
    """Lines over time with a labelled y axis (0 to a round maximum) and time ticks.

    A None value breaks its line, so missing data shows as a gap, never as a zero; a point
    with no neighbour is a dot.
    """
    values = [y for s in series for _, y in s.points if y is not None]
    ticks = _ticks(y_max if y_max is not None else max(values, default=0.0))
    frame = _Frame(start, end, ticks[-1], width, height)

    def y_text(v: float) -> str:
        return fmt_ms(v) if unit == "ms" else f"{_num(v)}{unit}"

    parts = frame.axes(ticks, y_text)
    described = []
    for s in series:
        segments: list[list[tuple[float, float]]] = [[]]
        for t, point in s.points:
            if point is None:
                if segments[-1]:
                    segments.append([])
                continue
            segments[-1].append((frame.x_of(t), frame.y_of(point)))
        for seg in segments:
            if len(seg) == 1:
                x, y = seg[0]
                parts.append(f'<circle class="line {s.css}" cx="{_num(x)}" cy="{_num(y)}" r="2.5"></circle>')
            elif seg:
                pts = " ".join(f"{_num(x)},{_num(y)}" for x, y in seg)
                parts.append(f'<polyline class="line {s.css}" points="{pts}"></polyline>')
        known = [v for _, v in s.points if v is not None]
        if known:
            described.append(f"{s.name} from {y_text(min(known))} to {y_text(max(known))}, latest {y_text(known[-1])}")
        else:
            described.append(f"{s.name}: no data")
    marks, noted = frame.notes(annotations)
    return _svg(label, f"{label}. " + "; ".join(described) + noted, width, height, parts + marks)


def bar_chart(
    starts: Sequence[float],
    step: float,
    stacks: Sequence[Stack],
    start: float,
    end: float,
    *,
    label: str,
    annotations: Sequence[Annotation] = (),
    width: int = 640,
    height: int = 200,
) -> SafeString:
    """Counts per step as bars (the `stacks` piled bottom up), on whole-number ticks.

    `starts` are the steps' start times; a step is drawn over its own span, clipped to the
    window, so a partial first or current step is a narrower bar. An empty step has no bar.
    """
    totals = [sum(s.values[i] for s in stacks) for i in range(len(starts))]
    ticks = _ticks(max(totals, default=0.0), whole=True)
    frame = _Frame(start, end, ticks[-1], width, height)
    parts = frame.axes(ticks, lambda v: f"{v:,.0f}" if v == int(v) else _num(v))
    for i, t0 in enumerate(starts):
        if not totals[i]:
            continue
        a, b = max(t0, start), min(t0 + step, end)
        if b <= a:
            continue
        x0, x1 = frame.x_of(a), frame.x_of(b)
        gap = min(1.0, (x1 - x0) * 0.15)
        x, w = x0 + gap / 2, max(x1 - x0 - gap, 0.5)
        tip = f"{_moment(a)}: " + ", ".join(f"{s.values[i]:,.0f} {s.name}" for s in stacks if s.values[i])
        base = 0.0
        rects = []
        for s in stacks:
            v = s.values[i]
            if not v:
                continue
            y_hi, y_lo = frame.y_of(base + v), frame.y_of(base)
            rects.append(
                f'<rect class="bar {s.css}" x="{_num(x)}" y="{_num(y_hi)}" width="{_num(w)}" '
                f'height="{_num(max(y_lo - y_hi, 0.5))}"></rect>'
            )
            base += v
        parts.append(f"<g><title>{escape(tip)}</title>{''.join(rects)}</g>")
    described = []
    for s in stacks:
        total = sum(s.values)
        busiest = max(s.values, default=0)
        described.append(f"{s.name} {total:,.0f} in all, at most {busiest:,.0f} in a step")
    marks, noted = frame.notes(annotations)
    return _svg(label, f"{label}. " + "; ".join(described) + noted, width, height, parts + marks)

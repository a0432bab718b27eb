"""Formatting for the console: latencies, rates, scores and ages, the same everywhere."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import dateformat, timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from health import charts

register = template.Library()


@register.filter
def ms(value: float | None) -> str:
    """85 ms, 1.2 s, 12 s; a dash when unknown."""
    return charts.fmt_ms(value)


@register.filter
def rate(value: float | None) -> str:
    """A ratio (0-1) as a percentage: 98.5%."""
    if value is None:
        return "–"
    pct = value * 100
    return f"{pct:.0f}%" if pct in (0, 100) else f"{pct:.1f}%"


@register.filter
def pct(value: float | None) -> str:
    """A percentage (0-100): 98.5%."""
    return rate(None if value is None else value / 100)


@register.filter
def score(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"


@register.filter
def ago(value: datetime | None, now: datetime | None = None) -> str:
    """How long ago, in one unit: 12 s ago, 3 min ago, 2 h ago, 4 d ago."""
    if value is None:
        return "never"
    seconds = ((now or timezone.now()) - value).total_seconds()
    if seconds < 0:
        seconds = 0
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} d ago"


@register.simple_tag
def ago_time(value: datetime | None) -> SafeString | str:
    """A <time> saying how long ago, which the page's script keeps ticking: the exact time
    with its timezone is in `datetime` (ISO 8601), the wording the same as `ago`."""
    if value is None:
        return ""
    return format_html(
        '<time datetime="{}" data-ago title="{}">{}</time>',
        value.isoformat(),
        dateformat.format(timezone.localtime(value), "Y-m-d H:i:s e"),
        ago(value),
    )


@register.simple_tag
def until_time(value: datetime | None) -> SafeString | str:
    """How long from now ("in 12 min"), ticking like `ago_time`."""
    if value is None:
        return ""
    return format_html('<span data-until="{}">{}</span>', value.isoformat(), until(value))


@register.filter
def until(value: datetime | None) -> str:
    """How long from now: in 12 min."""
    if value is None:
        return ""
    seconds = max(0.0, (value - timezone.now()).total_seconds())
    if seconds < 90:
        return f"in {seconds:.0f} s"
    if seconds < 90 * 60:
        return f"in {seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"in {seconds / 3600:.0f} h"
    return f"in {seconds / 86400:.0f} d"


@register.filter
def change(event: object) -> str:
    """An event's change as old → new (or just the new value)."""
    old, new = getattr(event, "old", ""), getattr(event, "new", "")
    return f"{old} → {new}" if old and new else (new or old)


@register.simple_tag
def page_href(base: dict[str, str], page: int) -> str:
    """A link to another page of a list, keeping its filters."""
    from urllib.parse import urlencode

    return "?" + urlencode({**base, "page": page})


@register.filter
def count(value: float | int | None) -> str:
    """A count with thousands separators: 12,345."""
    return "–" if value is None else f"{int(value):,}"


@register.filter
def cost(value: float | None) -> str:
    """A cost in the prices' currency, to four decimals (or "< 0.0001")."""
    if value is None:
        return "–"
    if 0 < value < 0.0001:
        return "< 0.0001"
    return f"{value:,.4f}" if value < 100 else f"{value:,.2f}"

"""Formatting for the console: latencies, rates, scores, ages and timestamps, the same
everywhere.

Timestamps: one format, `2026-03-05 14:03:07 CET` (date, 24-hour time, the zone's name), in
the operator's time zone: the `CONSOLE_TIME_ZONE` setting (an IANA name, e.g.
`Europe/Berlin`) when set, else the browser's. `{% timestamp value %}` renders a `<time>`
whose `datetime` is the instant in ISO 8601 (UTC); without the setting the server writes UTC
and marks it `data-stamp="browser"`, and console.js rewrites it in the browser's zone (the
page reads right without JavaScript, in UTC). `{% timestamp value relative=True %}` (and
`{% ago_time value %}`) says "3 min ago", ticking in the browser, with the timestamp as its
title. Values are datetimes or ISO 8601 strings (the request log's API shape).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django import template
from django.conf import settings
from django.utils import dateformat, timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from health import charts

register = template.Library()
log = logging.getLogger(__name__)

STAMP_FORMAT = "Y-m-d H:i:s T"
_warned: set[str] = set()


def console_zone() -> tzinfo | None:
    """The operator's zone from `CONSOLE_TIME_ZONE`; None: the browser's."""
    name = str(getattr(settings, "CONSOLE_TIME_ZONE", "") or "").strip()
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        if name not in _warned:  # said once per process, not on every timestamp
            _warned.add(name)
            log.warning("CONSOLE_TIME_ZONE=%r is no IANA time zone: timestamps use the browser's", name)
        return None


def instant(value: datetime | str | None) -> datetime | None:
    """An aware datetime from a datetime or an ISO 8601 string (naive: UTC); None if neither."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if timezone.is_aware(value) else value.replace(tzinfo=UTC)


@register.filter
def stamp(value: datetime | str | None) -> str:
    """The timestamp as text, in the console's zone (UTC when that is the browser's)."""
    at = instant(value)
    if at is None:
        return ""
    return dateformat.format(at.astimezone(console_zone() or UTC), STAMP_FORMAT)


@register.simple_tag
def timestamp(value: datetime | str | None, relative: bool = False, empty: str = "") -> SafeString | str:
    """`<time>` with the instant (ISO 8601) and the console's format, or `empty` for none."""
    at = instant(value)
    if at is None:
        return empty
    zone = "browser" if console_zone() is None else "fixed"
    iso = at.astimezone(UTC).isoformat()
    if relative:
        return format_html(
            '<time datetime="{}" data-ago data-stamp="{}" title="{}">{}</time>', iso, zone, stamp(at), ago(at)
        )
    return format_html('<time datetime="{}" data-stamp="{}">{}</time>', iso, zone, stamp(at))


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
def ago_time(value: datetime | str | None) -> SafeString | str:
    """A <time> saying how long ago, which the page's script keeps ticking: the exact time
    is in `datetime` (ISO 8601) and in its title, the wording the same as `ago`."""
    return timestamp(value, relative=True)


@register.simple_tag
def until_time(value: datetime | str | None) -> SafeString | str:
    """How long from now ("in 12 min"), ticking like `ago_time`; the timestamp in its title."""
    at = instant(value)
    if at is None:
        return ""
    zone = "browser" if console_zone() is None else "fixed"
    return format_html(
        '<time datetime="{}" data-stamp="{}" data-until="{}" title="{}">{}</time>',
        at.astimezone(UTC).isoformat(),
        zone,
        at.astimezone(UTC).isoformat(),
        stamp(at),
        until(at),
    )


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

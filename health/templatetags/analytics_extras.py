"""Template filters for analytics figures, for any console page: `{% load analytics_extras %}`.

- `{{ key|error_name }}`: "Service unavailable (<code>http_503</code>)", the plain name with
  the raw key beside it (just the key when it has no name).
- `{{ value|money }}`: a cost with the prices' currency (PRICE_CURRENCY): "0.0123 USD".
- `{% price_currency %}`: the currency's code alone, for a column heading.
- `{{ uptime|uptime }}`: an `health.uptime.Uptime` as "99.5%" ("–" when nothing was monitored).
- `{{ seconds|span }}`: a length of time in one unit ("45 min", "5.5 h").
- `{% uptime_span uptime %}`: an uptime as a `<span>` whose title says how much time was
  monitored.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.conf import settings
from django.utils.html import format_html
from django.utils.safestring import SafeString

from analytics.error_names import error_name as plain_name
from health import uptime as uptimes

from .console import cost, rate

register = template.Library()


@register.filter
def error_name(key: str | None) -> SafeString | str:
    """An error key with its plain-language name first."""
    if not key:
        return ""
    name = plain_name(key)
    if name == key:
        return format_html("<code>{}</code>", key)
    return format_html('{} (<code class="error-key">{}</code>)', name, key)


@register.simple_tag
def price_currency() -> str:
    return str(settings.PRICE_CURRENCY)


@register.filter
def money(value: float | None) -> str:
    """A cost at the configured prices, with their currency; "–" when unknown."""
    if value is None:
        return "–"
    return f"{cost(value)} {settings.PRICE_CURRENCY}"


@register.filter(name="uptime")
def uptime_text(value: uptimes.Uptime | None) -> str:
    return "–" if value is None else rate(value.ratio)


@register.filter(name="span")
def _span(seconds: float) -> str:
    """A length of time in one unit: 45 min, 5.5 h, 2.0 d."""
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} d"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min"


@register.simple_tag
def uptime_span(measured: uptimes.Uptime | None) -> SafeString:
    """An uptime (`health.uptime.uptime_of`, read by the view: a template reads no database)
    with what it was measured on in its title."""
    if measured is None or measured.ratio is None:
        return format_html('<span class="uptime muted" title="{}">–</span>', "Not monitored in this window")
    title = f"Up {_span(measured.up_s)} of {_span(measured.monitored_s)} monitored"
    if measured.maintenance_s:
        title += f"; {_span(measured.maintenance_s)} of maintenance left out"
    return format_html('<span class="uptime" title="{}">{}</span>', title, rate(measured.ratio))


PRICE_UNITS = (
    ("input_price_per_mtok", "in /Mtok"),
    ("output_price_per_mtok", "out /Mtok"),
    ("price_per_image", "/image"),
    ("price_per_kchar", "/1k chars"),
    ("price_per_minute", "/min"),
)


@register.filter
def model_price(model: Any) -> str:
    """A model's prices as charged (`ProviderModel.prices`): "free", "unknown", or the known
    ones with their units, "0.15 in /Mtok · 0.6 out /Mtok"; a token price missing beside a
    known one is "unknown" (the cost of that side is not counted)."""
    prices = model.prices()
    known = {field: value for field, value in prices.items() if value is not None}
    if not known:
        return "unknown"
    if not any(known.values()):
        return "free"
    parts = []
    tokens = {"input_price_per_mtok", "output_price_per_mtok"} & set(known)
    for field, unit in PRICE_UNITS:
        value = prices.get(field)
        if value is None and not (tokens and field in ("input_price_per_mtok", "output_price_per_mtok")):
            continue
        parts.append(f"{'unknown' if value is None else _decimal(value)} {unit}")
    return " · ".join(parts)


def _decimal(value: Any) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text

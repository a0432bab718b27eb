"""The console's events page (`/events`): the event history filtered by provider, kind (the
row's kind: status, breaker, cooldown...), a text search and a date range.

The search and the range are `GET /api/events`' own (`q`, `since`, `until`, read by
health/feed.py), so the page and the API find the same events and refuse the same input: a
refused value is shown beside the form, with the field marked, never a 500 (400 for a whole
page; 200 for htmx, which swaps only 2xx answers in).
"""

from __future__ import annotations

from typing import Any

from django.core.paginator import Paginator

from providers.models import Provider

from . import feed
from .models import HealthEvent

EVENTS_PER_PAGE = 50
RANGE = ("since", "until")


def _names() -> list[str]:
    return sorted(
        set(Provider.objects.values_list("name", flat=True))
        | set(HealthEvent.objects.exclude(provider_name="").values_list("provider_name", flat=True).distinct())
    )


def events_context(query: Any) -> tuple[dict[str, Any], bool]:
    """The page's context, and whether its filters were usable."""
    provider = str(query.get("provider", ""))[:64]
    kind = query.get("kind", "")
    kind = kind if kind in HealthEvent.Kind.values else ""
    form = {name: str(query.get(name, "")).strip()[:100] for name in ("q", *RANGE)}
    base = {k: v for k, v in (("provider", provider), ("kind", kind), *form.items()) if v}
    context: dict[str, Any] = {
        "section": "events",
        "provider": provider,
        "kind": kind,
        "form": form,
        "providers": _names(),
        "kinds": HealthEvent.Kind.values,
        "base_query": base,
        "error": None,
        "page": None,
    }
    try:
        searched = feed.parse_query({name: value for name, value in form.items() if value})
    except feed.QueryError as exc:
        context["error"] = {"param": exc.param, "message": str(exc)}
        return context, False
    rows = feed.filtered(searched)
    if provider:
        rows = rows.filter(provider_name=provider)
    if kind:
        rows = rows.filter(kind=kind)
    context["page"] = Paginator(rows, EVENTS_PER_PAGE).get_page(query.get("page"))
    context["searching"] = any(form.values())
    return context, True

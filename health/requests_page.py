"""The console's request log (staff only): `/requests`, the log filtered as `GET /api/requests`
filters it (analytics/requests.py), and `/requests/<request_id>`, one request with its attempt
timeline.

The filters are a GET form, so a filtered view is a URL to share and works without
JavaScript; with htmx the form and the "older" link swap the `request-list` partial only. A
filter the API would refuse is shown beside the form (400 for a whole page; 200 for htmx, which
swaps only 2xx answers in), never a 500. The search box takes an `X-Request-Id` to its page.

A request's page shows its request and response bodies when REQUEST_BODY_RETENTION_DAYS keeps
them (scrubbed and bounded by the gateway; JSON pretty-printed when it parses, always escaped by
the template), and says in one line that they are not kept, and which setting keeps them, when not.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse

from analytics import requests as log
from project.database import db_call
from providers.models import Provider, Route

from .access import console_view
from .views import ConsoleRequest

LIST = "health/requests.html"
ONE = "health/request.html"
FIELDS = ("route", "provider", "key", "status", "since", "until")
LONGEST_ID = 64  # as the API: longer is no request id


def _shown(entry: dict[str, Any]) -> dict[str, Any]:
    """A request as the API gives it, with its time in words for the table."""
    at = datetime.fromisoformat(entry["at"])
    return {**entry, "when": f"{at:%Y-%m-%d %H:%M:%S}", "href": reverse("health-request", args=[entry["request_id"]])}


def _choices() -> dict[str, list[str]]:
    return {
        "providers": list(Provider.objects.order_by("name").values_list("name", flat=True)),
        "routes": list(Route.objects.order_by("name").values_list("name", flat=True)),
    }


def list_context(query: Any) -> tuple[dict[str, Any], bool]:
    """The page's context, and whether its filters were usable."""
    form = {name: str(query.get(name) or "") for name in FIELDS}
    kept = {name: value for name, value in form.items() if value}
    if query.get("limit"):
        kept["limit"] = str(query.get("limit"))
    context: dict[str, Any] = {
        "section": "requests",
        "form": form,
        "error": None,
        "rows": [],
        "older": None,
        "paged": bool(query.get("cursor")),
        "newest": "?" + urlencode(kept) if kept else "?",
        **_choices(),
    }
    try:
        filters = log.parse_filters(query)
    except log.QueryError as exc:
        context["error"] = {"param": exc.param, "message": str(exc)}
        return context, False
    data = log.page(filters)
    context["rows"] = [_shown(r) for r in data["requests"]]
    if data["next_cursor"]:
        context["older"] = "?" + urlencode({**kept, "cursor": data["next_cursor"]})
    return context, True


@console_view()
async def requests_page(request: ConsoleRequest) -> HttpResponse:
    wanted = (request.GET.get("id") or "").strip()
    if wanted:
        if len(wanted) <= LONGEST_ID and "/" not in wanted:
            return HttpResponseRedirect(reverse("health-request", args=[wanted]))
        query = request.GET.copy()
        query.pop("id")
        context, _ = await db_call(list_context, query)
        context["error"] = {
            "param": "id",
            "message": f"id: not a request id (at most {LONGEST_ID} characters, no slash)",
        }
        usable = False
    else:
        context, usable = await db_call(list_context, request.GET)
    context.update(role=request.role, wanted=wanted)
    template = f"{LIST}#request-list" if request.htmx else LIST
    return render(request, template, context, status=200 if usable or request.htmx else 400)


def pretty(body: str | None) -> str | None:
    """A kept body as the page shows it: JSON indented when it parses (a body cut short does
    not), any other text as it is."""
    if not body:
        return body
    try:
        data = json.loads(body)
        shown = json.dumps(data, indent=2, ensure_ascii=False)
        if not shown.isascii():
            shown.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate written as an escape: shown as one
        return json.dumps(data, indent=2)
    except (ValueError, RecursionError):
        return body
    return shown


def _one(request_id: str) -> dict[str, Any] | None:
    found = log.find(request_id, bodies=True) if len(request_id) <= LONGEST_ID else None
    if found is None:
        return None
    entry = _shown(found)
    entry["attempts"] = [{**a, "number": i} for i, a in enumerate(found["attempts"], start=1)]
    entry["request_body"] = pretty(found["request_body"])
    entry["response_body"] = pretty(found["response_body"])
    return entry


@console_view()
async def request_page(request: ConsoleRequest, request_id: str) -> HttpResponse:
    entry = await db_call(_one, request_id)
    context = {
        "section": "requests",
        "role": request.role,
        "request_id": request_id,
        "entry": entry,
        "bodies_kept": log.bodies_kept(),
    }
    return render(request, ONE, context, status=200 if entry is not None else 404)

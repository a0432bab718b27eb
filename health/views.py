"""The console's pages (staff only) and the process's own health endpoint.

Each page is one template that renders the whole page, or one named partial for an htmx
request: the partial is chosen by the element htmx targets (`HX-Target`), so links and
forms keep real URLs and the pages work without JavaScript.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django_htmx.middleware import HtmxDetails

from providers import schemas as s
from providers.openapi import Response, document

from . import pages
from .access import Role, console_view
from .cards import VIEWS, Filters
from .events_page import events_context
from .history import WINDOWS


class ConsoleRequest(HttpRequest):
    """A console view's request as it reaches the view: `htmx` set by django-htmx's
    middleware, `role` by `console_view`. Only a type: the object is Django's own request."""

    htmx: HtmxDetails
    role: Role


def _database_ok() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        return cursor.fetchone() == (1,)


@document(
    "GET",
    "/healthz",
    "Liveness and readiness of this process",
    scope=None,
    tags=["meta"],
    responses={200: Response("Up", s.Healthz), 503: Response("The database does not answer", s.Healthz)},
    errors=(),
)
async def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness and readiness: 200 when the database answers, 503 otherwise."""
    try:
        ok = await sync_to_async(_database_ok)()
    except Exception as exc:
        return JsonResponse({"status": "error", "database": type(exc).__name__}, status=503)
    return JsonResponse(
        {"status": "ok" if ok else "error", "database": "ok" if ok else "error"}, status=200 if ok else 503
    )


def template_for(request: ConsoleRequest, template: str, partials: dict[str, str], default: str) -> str:
    """The whole page, or for htmx the partial that its target names."""
    if not request.htmx:
        return template
    return f"{template}#{partials.get(request.htmx.target or '', default)}"


VIEW_COOKIE = "console_view"
VIEW_COOKIE_AGE = 365 * 24 * 3600


@console_view()
async def dashboard(request: ConsoleRequest) -> HttpResponse:
    """The providers, as cards or as a table. The view chosen (`?view=`) is remembered in a
    cookie; a visit without `view` goes to the remembered one by a redirect, so the page's URL
    always names its view and the socket, which learns the view from the URL, agrees."""
    remembered = request.COOKIES.get(VIEW_COOKIE, "")
    if not request.htmx and "view" not in request.GET and remembered in VIEWS:
        query = request.GET.copy()
        query["view"] = remembered
        return HttpResponseRedirect(f"{request.path}?{query.urlencode()}")
    filters = Filters.from_query(request.GET, arrange=True)
    context = await pages.dashboard_context(filters, request.role)
    response = render(request, template_for(request, pages.DASHBOARD, {"resync": "live"}, "board"), context)
    if filters.view and filters.view != remembered:
        response.set_cookie(VIEW_COOKIE, filters.view, max_age=VIEW_COOKIE_AGE, samesite="Lax", httponly=True)
    return response


@console_view()
async def provider_page(request: ConsoleRequest, name: str) -> HttpResponse:
    window = request.GET.get("window", "24h")
    if window not in WINDOWS:
        window = "24h"
    context = await pages.provider_context(name, window, request.role)
    if context is None:
        raise Http404(f"no provider named {name!r}")
    partials = {"resync": "live", "charts": "charts", f"events-{name}": "events", f"pull-{name}": "pull"}
    return render(request, template_for(request, pages.PROVIDER, partials, "summary"), context)


@console_view()
def events_page(request: ConsoleRequest) -> HttpResponse:
    """The event history; a search or range the API would refuse is shown beside the form
    (400 for a whole page, 200 for htmx, which swaps only 2xx answers in)."""
    context, usable = events_context(request.GET)
    context["role"] = request.role
    status = 200 if usable or request.htmx else 400
    return render(request, template_for(request, pages.EVENTS, {}, "event-list"), context, status=status)

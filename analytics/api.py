"""The analytics API: `/api/analytics`, `/api/analytics/<name>` and the CSV export (Bearer key
with scope `read`; the export also takes a staff session, for the console)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from project.database import db_call
from providers.gateway.auth import api_view, authenticate
from providers.gateway.errors import RequestError
from providers.openapi import Param, Response, document

from . import queries, requests
from . import schemas as s
from .export import export_csv
from .windows import WINDOWS, WindowError, parse_window

WINDOW = Param(
    "window",
    description="the window to sum over (default 24h)",
    schema={"type": "string", "enum": list(WINDOWS), "default": "24h"},
)


def window_of(request: HttpRequest) -> str:
    try:
        return parse_window(request.GET.get("window"))
    except WindowError as exc:
        raise RequestError(400, str(exc), code="invalid_window") from None


@document(
    "GET",
    "/api/analytics",
    "Requests, success rate, failovers, latency, tokens and cost: in total, per provider and per route",
    scope="read",
    tags=["analytics"],
    responses={200: Response("The window's figures", s.Analytics)},
    params=[WINDOW],
)
@api_view("read")
async def analytics(request: HttpRequest) -> HttpResponse:
    name = window_of(request)
    return JsonResponse(await db_call(queries.summary, name))


@document(
    "GET",
    "/api/analytics/{name}",
    "One provider's figures, per route, over time, and its top errors",
    scope="read",
    tags=["analytics"],
    responses={200: Response("The provider's figures", s.ProviderAnalytics)},
    params=[WINDOW],
    errors=(400, 401, 403, 404),
)
@api_view("read")
async def provider_analytics(request: HttpRequest, name: str) -> HttpResponse:
    window = window_of(request)
    if not await db_call(queries.provider_known, name):
        raise RequestError(404, f"no provider named {name!r}", code="provider_not_found")
    return JsonResponse(await db_call(queries.provider_detail, name, window))


@document(
    "GET",
    "/api/analytics/export.csv",
    "The window as CSV: one line per time step, provider and route (also with a staff session, for the console)",
    scope="read",
    tags=["analytics"],
    responses={200: Response("CSV with a header line", content_type="text/csv")},
    params=[
        WINDOW,
        Param(
            "by",
            description="provider: attempts per provider and route (default); "
            "route: client requests per route and serving provider",
            schema={"type": "string", "enum": ["provider", "route"]},
        ),
    ],
)
async def export(request: HttpRequest) -> HttpResponse:
    try:
        user = await request.auser()
        if not (user.is_active and user.is_staff):
            await authenticate(request, "read")
        window = window_of(request)
        by = request.GET.get("by", "provider")
        if by not in ("provider", "route"):
            raise RequestError(400, "`by` must be provider or route.", code="invalid_by")
    except RequestError as exc:
        return exc.response()
    body = await db_call(export_csv, window, by=by)
    response = HttpResponse(body, content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="analytics-{window}-{by}-{stamp}.csv"'
    return response


REQUEST_FILTERS = [
    Param("route", description="only this route (the name the client asked for)"),
    Param("provider", description="only requests this provider answered"),
    Param("key", description="only requests made with this API key (its name or prefix)"),
    Param(
        "status",
        description="ok: answered; failed: any other outcome",
        schema={"type": "string", "enum": ["ok", "failed"]},
    ),
    Param("since", description="from this time on (ISO 8601 or seconds since the epoch)"),
    Param("until", description="up to this time (ISO 8601 or seconds since the epoch)"),
    Param(
        "limit",
        description=f"rows per page (1-{requests.MAX_LIMIT}, default {requests.DEFAULT_LIMIT})",
        schema={"type": "integer", "minimum": 1, "maximum": requests.MAX_LIMIT},
    ),
    Param("cursor", description="the `next_cursor` of the previous page"),
]


@document(
    "GET",
    "/api/requests",
    "The request log, newest first, cursor-paged and filtered",
    scope="read",
    tags=["requests"],
    responses={200: Response("One page of requests", s.RequestPage)},
    params=REQUEST_FILTERS,
    errors=(400, 401, 403),
)
@api_view("read")
async def request_list(request: HttpRequest) -> HttpResponse:
    try:
        filters = requests.parse_filters(request.GET)
    except requests.QueryError as exc:
        raise RequestError(400, str(exc), code="invalid_parameter", param=exc.param) from None
    return JsonResponse(await db_call(requests.page, filters))


@document(
    "GET",
    "/api/requests/{request_id}",
    "One request by its X-Request-Id: every attempt, tokens, cost and timings; for an admin key, "
    "also its request and response bodies when REQUEST_BODY_RETENTION_DAYS keeps them",
    scope="read",
    tags=["requests"],
    responses={
        200: Response(
            "The request (`request_body` and `response_body` only for a key with the admin scope)", s.RequestDetail
        )
    },
    errors=(401, 403, 404),
)
@api_view("read")
async def request_detail(request: HttpRequest, request_id: str) -> HttpResponse:
    # Bodies hold what users sent and got: only an admin key reads them (a read key: left out).
    key = getattr(request, "api_key", None)
    admin = key is not None and key.has_scope("admin")
    found = await db_call(requests.find, request_id, bodies=admin) if len(request_id) <= 64 else None
    if found is None:
        raise RequestError(
            404,
            "no request with this id in the log (it may be older than the retention, or "
            "not written yet: the log is written in batches)",
            code="request_not_found",
        )
    return JsonResponse(found)

"""The console's configuration pages: providers and routes as typed forms, not JSON.

`/config/providers` and `/config/routes` list them; `.../new` and `.../<name>` are a form each,
`.../<name>/delete` asks before deleting. Staff may look (the form is shown read-only);
saving, creating and deleting need the `configure` level (superusers, health/access.py), and
"Test connection" the `act` level, like "Check now".

Every save is one entry given to the importer (health/config_store.py): the same validation
and write as `PUT /api/config?prune=false`, audited the same way, and the running process
takes it at once (`runtime().refresh(force=True)`; the other processes within
CONFIG_POLL_INTERVAL_S). Forms are plain POSTs that work without JavaScript; htmx swaps the
kind's option fields when the kind changes and shows a connection test in place.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from project.database import db_call
from providers.adapters import ADAPTER_MODULES, adapter_class
from providers.models import Kind
from providers.runtime import runtime

from . import config_store as store
from .access import console_view
from .actions import audit, see_other
from .config_forms import (
    ProviderForm,
    RouteForm,
    TargetRow,
    apply_row_op,
    attach_errors,
    flatten,
    provider_defaults,
    provider_entry,
    route_defaults,
    route_entry,
    route_initial,
    target_rows,
)
from .monitor import check_now
from .views import ConsoleRequest

PROVIDERS = "health/config/providers.html"
PROVIDER = "health/config/provider.html"
ROUTES = "health/config/routes.html"
ROUTE = "health/config/route.html"
DELETE = "health/config/delete.html"


def _default_urls() -> dict[str, str]:
    return {kind: adapter_class(kind).default_base_url for kind in Kind.values if kind in ADAPTER_MODULES}


def _kind(value: str | None, fallback: str = "openai") -> str:
    return value if value in Kind.values else fallback


async def _refresh() -> None:
    await runtime().refresh(force=True)


# -- providers ---------------------------------------------------------------------------------


@console_view()
async def providers_page(request: ConsoleRequest) -> HttpResponse:
    rows = await db_call(store.provider_rows)
    context = {"section": "config", "role": request.role, "providers": rows}
    return render(request, PROVIDERS, context)


def _provider_context(request: ConsoleRequest, form: ProviderForm, row: store.ProviderRow | None) -> dict[str, Any]:
    urls = _default_urls()
    form.fields["base_url"].widget.attrs["placeholder"] = urls.get(form.kind_shown, "")
    return {
        "section": "config",
        "role": request.role,
        "form": form,
        "provider": row,
        "editing": row is not None,
        "default_urls": urls,
        "kind": form.kind_shown,
    }


def _kind_options(request: ConsoleRequest, row: store.ProviderRow | None) -> HttpResponse | None:
    """htmx asks for the kind's own fields when the kind select changes."""
    if request.htmx and request.htmx.target == "kind-options":
        kind = _kind(request.GET.get("kind"))
        form = ProviderForm(kind=kind, editing=row is not None, initial=provider_defaults(kind))
        return render(request, f"{PROVIDER}#kind-options", _provider_context(request, form, row))
    return None


async def _save_provider(
    request: ConsoleRequest, form: ProviderForm, base: dict[str, Any], row: store.ProviderRow | None
) -> HttpResponse:
    kind = form.kind_shown
    if form.is_valid():
        entry = provider_entry(base, form.cleaned_data, kind)
        try:
            outcome = await db_call(
                store.save_entry, "providers", entry, request.user.get_username(), create=row is None
            )
        except store.ConfigError as exc:
            attach_errors(form, exc.errors)
        else:
            await _refresh()
            name = entry["name"]
            messages.success(request, f"Provider {name} {outcome}." if outcome != "unchanged" else "Nothing changed.")
            return see_other(reverse("health-config-provider", args=[name]))
    return render(request, PROVIDER, _provider_context(request, form, row), status=400)


@require_http_methods(["GET", "POST"])
@console_view("configure")
async def provider_new(request: ConsoleRequest) -> HttpResponse:
    if (partial := _kind_options(request, None)) is not None:
        return partial
    if request.method == "POST":
        kind = _kind(request.POST.get("kind"))
        return await _save_provider(request, ProviderForm(request.POST, kind=kind), {}, None)
    kind = _kind(request.GET.get("kind"))
    form = ProviderForm(kind=kind, initial=provider_defaults(kind))
    return render(request, PROVIDER, _provider_context(request, form, None))


@require_http_methods(["GET", "POST"])
@console_view()
async def provider_edit(request: ConsoleRequest, name: str) -> HttpResponse:
    row = await db_call(store.one_provider, name)
    entry = await db_call(store.exported, "providers", name)
    if row is None or entry is None:
        raise Http404(f"no provider named {name!r}")
    if (partial := _kind_options(request, row)) is not None:
        return partial
    initial = flatten(entry, entry["kind"])
    if request.method == "POST":
        if not request.role.can_configure:
            raise PermissionDenied("this needs the configure level")
        kind = _kind(request.POST.get("kind"), entry["kind"])
        form = ProviderForm(request.POST, kind=kind, editing=True, initial=initial)
        return await _save_provider(request, form, entry, row)
    form = ProviderForm(kind=entry["kind"], editing=True, initial=initial)
    return render(request, PROVIDER, _provider_context(request, form, row))


@require_POST
@console_view("act")
async def provider_test(request: ConsoleRequest, name: str) -> HttpResponse:
    """Test connection: one probe of the saved provider, as "Check now" runs it, shown in place."""
    rt = runtime()
    await rt.refresh(force=True)
    if name not in (await rt.current()).providers:
        raise Http404(f"no provider named {name!r}")
    [result] = await check_now(rt, [name])
    await db_call(audit, request.user, "check_now", name, {"ok": result.ok}, "test connection")
    if request.htmx:
        return render(request, f"{PROVIDER}#test-result", {"result": result, "tested": name})
    if result.ok:
        messages.success(request, f"Connection to {name}: ok in {result.latency_ms:.0f} ms.")
    else:
        messages.error(request, f"Connection to {name} failed after {result.latency_ms:.0f} ms: {result.error}")
    return see_other(reverse("health-config-provider", args=[name]))


@require_http_methods(["GET", "POST"])
@console_view("configure")
async def provider_delete(request: ConsoleRequest, name: str) -> HttpResponse:
    row = await db_call(store.one_provider, name)
    if row is None:
        raise Http404(f"no provider named {name!r}")
    context = {
        "section": "config",
        "role": request.role,
        "kind": "provider",
        "name": name,
        "used_by": row.routes,
        "back": reverse("health-config-provider", args=[name]),
    }
    if request.method == "POST":
        try:
            await db_call(store.delete_provider, name, request.user.get_username())
        except store.ConfigError as exc:
            context["errors"] = exc.errors
            return render(request, DELETE, context, status=400)
        await _refresh()
        messages.success(request, f"Provider {name} deleted.")
        return see_other(reverse("health-config-providers"))
    return render(request, DELETE, context)


# -- routes ------------------------------------------------------------------------------------


@console_view()
async def routes_page(request: ConsoleRequest) -> HttpResponse:
    rows = await db_call(store.route_rows)
    return render(request, ROUTES, {"section": "routes", "role": request.role, "routes": rows})


async def _route_context(
    request: ConsoleRequest, form: RouteForm, rows: list[TargetRow], editing: str | None
) -> dict[str, Any]:
    models = await db_call(store.known_models)
    for row in rows:
        # a model the chain names that the provider does not list is still offered, as it is
        if row.provider in models and row.model and row.model not in models[row.provider]:
            models[row.provider] = [*models[row.provider], row.model]
    return {
        "section": "routes",
        "role": request.role,
        "form": form,
        "rows": rows,
        "models": models,
        "providers": list(models),
        "editing": editing,
    }


async def _save_route(
    request: ConsoleRequest, form: RouteForm, base: dict[str, Any], editing: str | None
) -> HttpResponse:
    rows = target_rows(request.POST)
    op = request.POST.get("op", "")
    if op:  # a row button pressed without JavaScript: show the changed chain, save nothing
        return render(request, ROUTE, await _route_context(request, form, apply_row_op(rows, op), editing))
    if form.is_valid():
        entry = route_entry(base, form.cleaned_data, rows)
        try:
            outcome = await db_call(
                store.save_entry, "routes", entry, request.user.get_username(), create=editing is None
            )
        except store.ConfigError as exc:
            attach_errors(form, exc.errors, rows)
        else:
            await _refresh()
            name = entry["name"]
            messages.success(request, f"Route {name} {outcome}." if outcome != "unchanged" else "Nothing changed.")
            return see_other(reverse("health-config-route", args=[name]))
    return render(request, ROUTE, await _route_context(request, form, rows, editing), status=400)


@require_http_methods(["GET", "POST"])
@console_view("configure")
async def route_new(request: ConsoleRequest) -> HttpResponse:
    if request.method == "POST":
        return await _save_route(request, RouteForm(request.POST), {}, None)
    form = RouteForm(initial=route_defaults())
    return render(request, ROUTE, await _route_context(request, form, [TargetRow()], None))


@require_http_methods(["GET", "POST"])
@console_view()
async def route_edit(request: ConsoleRequest, name: str) -> HttpResponse:
    entry = await db_call(store.exported, "routes", name)
    if entry is None:
        raise Http404(f"no route named {name!r}")
    initial = route_initial(entry)
    if request.method == "POST":
        if not request.role.can_configure:
            raise PermissionDenied("this needs the configure level")
        return await _save_route(request, RouteForm(request.POST, editing=True, initial=initial), entry, name)
    rows = [
        TargetRow(t["provider"], t.get("model", ""), "" if t.get("weight") is None else f"{t['weight']:g}")
        for t in entry["targets"]
    ]
    form = RouteForm(editing=True, initial=initial)
    return render(request, ROUTE, await _route_context(request, form, rows, name))


@require_http_methods(["GET", "POST"])
@console_view("configure")
async def route_delete(request: ConsoleRequest, name: str) -> HttpResponse:
    if await db_call(store.exported, "routes", name) is None:
        raise Http404(f"no route named {name!r}")
    context = {
        "section": "routes",
        "role": request.role,
        "kind": "route",
        "name": name,
        "used_by": [],
        "back": reverse("health-config-route", args=[name]),
    }
    if request.method == "POST":
        try:
            await db_call(store.delete_route, name, request.user.get_username())
        except store.ConfigError as exc:
            context["errors"] = exc.errors
            return render(request, DELETE, context, status=400)
        await _refresh()
        messages.success(request, f"Route {name} deleted.")
        return see_other(reverse("health-config-routes"))
    return render(request, DELETE, context)

"""The operations API: providers, breakers, configuration, model catalog (Bearer key with
scope `read`; changes need `admin`). Health lives in health/api.py, analytics in
analytics/api.py. Every change an API call makes is audited under `api:<key name>`.

Two things here come from the health app, plugged in by its AppConfig.ready: each provider's
status and score (`add_health_reader`; `GET /api/providers?sort=health_score` sorts by it),
and the event history that hears of an operator's action (a breaker reset or force-open,
enabling or disabling a provider: it connects to `signals.operator_acted`).

The URL patterns of enable/disable are in health/urls.py for now (see there).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, NamedTuple

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from project.database import db_call

from . import schemas as s
from .catalog import forget_discovered, model_pulled, refresh_catalog
from .config import ConfigError, apply_config, export_config, load_document
from .engine import UpstreamError
from .gateway.auth import api_view
from .gateway.bodies import parse_json
from .gateway.errors import RequestError, error_response
from .models import AuditLog, Provider
from .openapi import Param, Response, build_schema, document
from .runtime import runtime
from .signals import operator_acted
from .snapshot import ProviderEntry


def actor(request: HttpRequest) -> str:
    key = getattr(request, "api_key", None)
    return f"api:{key.name}" if key is not None else "api"


def audit(
    request: HttpRequest, action: str, object_type: str, name: str, changes: dict[str, Any] | None = None
) -> None:
    AuditLog.objects.create(
        actor=actor(request), action=action, object_type=object_type, object_name=name, changes=changes or {}
    )


async def provider_entry(name: str) -> ProviderEntry:
    entry = (await runtime().current()).providers.get(name)
    if entry is None:
        raise RequestError(404, f"no provider named {name!r}", code="provider_not_found")
    return entry


class HealthSummary(NamedTuple):
    status: str  # healthy | degraded | unhealthy | unknown ...
    score: float | None  # 0-100


# Readers of the providers' health by name (sync: they may query the database). None
# plugged in: every provider is "unknown".
HealthReader = Callable[[], Mapping[str, HealthSummary]]
_health_readers: list[HealthReader] = []


def add_health_reader(reader: HealthReader) -> None:
    """Plug in a reader of each provider's status and score (in an AppConfig.ready)."""
    if reader not in _health_readers:
        _health_readers.append(reader)


def _health_rows() -> dict[str, HealthSummary]:
    rows: dict[str, HealthSummary] = {}
    for reader in _health_readers:
        rows.update(reader())
    return rows


def _summary(entry: ProviderEntry, health: HealthSummary | None, breaker: str, base_url: str) -> dict[str, Any]:
    status = health.status if health is not None else "unknown"
    if not entry.enabled:
        status = "disabled"
    elif entry.maintenance:
        status = "maintenance"
    return {
        "name": entry.name,
        "kind": entry.kind,
        "base_url": base_url,
        "enabled": entry.enabled,
        "maintenance": entry.maintenance,
        "capabilities": list(entry.capabilities),
        "models": list(entry.models),
        "priority": entry.priority,
        "weight": entry.weight,
        "is_demo": entry.is_demo,
        "status": status,
        "score": health.score if health is not None else None,
        "breaker": breaker,
        # Why the provider cannot be called (e.g. `base_url: env:NAME` unset); null: it can.
        "problem": entry.problem or None,
    }


SORTS: dict[str, Callable[[dict[str, Any]], tuple[Any, ...]]] = {
    # best first; a provider without a score (not evaluated yet, disabled) after every scored one
    "health_score": lambda r: (r["score"] is None, -(r["score"] or 0.0), r["priority"], r["name"]),
    "priority": lambda r: (r["priority"], r["name"]),
    "name": lambda r: (r["name"],),
}


@document(
    "GET",
    "/api/providers",
    "List providers with their status and breaker state",
    scope="read",
    tags=["providers"],
    responses={200: Response("The providers", s.ProviderList)},
    params=[
        Param("capability", description="only providers with this capability (chat, embeddings, image, tts, stt, ...)"),
        Param(
            "enabled", description="true: only enabled providers; false: only disabled ones", schema={"type": "boolean"}
        ),
        Param(
            "sort",
            description="health_score (best first, unscored last), priority (default) or name",
            schema={"type": "string", "enum": list(SORTS), "default": "priority"},
        ),
    ],
)
@api_view("read")
async def providers_list(request: HttpRequest) -> HttpResponse:
    capability = request.GET.get("capability", "").strip()
    if len(capability) > 40:
        raise RequestError(400, "`capability` is at most 40 characters.", code="invalid_parameter", param="capability")
    enabled = query_flag(request, "enabled", True) if request.GET.get("enabled") else None
    sort = request.GET.get("sort") or "priority"
    if sort not in SORTS:
        raise RequestError(400, f"`sort` must be one of {', '.join(SORTS)}.", code="invalid_parameter", param="sort")
    rt = runtime()
    snapshot = await rt.current()
    health = await db_call(_health_rows)
    rows = [
        _summary(e, health.get(e.name), rt.engine.snapshot(e.name).state, e.base_url)
        for e in snapshot.providers.values()
        if (not capability or capability in e.capabilities) and (enabled is None or e.enabled == enabled)
    ]
    return JsonResponse({"providers": sorted(rows, key=SORTS[sort])})


@document(
    "GET",
    "/api/providers/{name}",
    "One provider: settings, credentials (masked), state",
    scope="read",
    tags=["providers"],
    responses={200: Response("The provider", s.ProviderDetail)},
    errors=(401, 403, 404),
)
@api_view("read")
async def provider_detail(request: HttpRequest, name: str) -> HttpResponse:
    rt = runtime()
    entry = await provider_entry(name)
    health = (await db_call(_health_rows)).get(name)
    breaker = rt.engine.snapshot(name)
    cooldowns = {credential: (kind, until) for credential, kind, until in breaker.cooldowns}

    def credentials() -> list[dict[str, Any]]:
        provider = Provider.objects.get(name=name)
        rows = []
        for secret in provider.secrets.all():
            cooldown = cooldowns.get(str(secret.pk))
            kind, until = cooldown if cooldown else ("active", None)
            rows.append(
                {
                    "id": str(secret.pk),
                    "label": secret.label,
                    "hint": secret.display,
                    "enabled": secret.enabled,
                    "state": kind,
                    "until": until,
                }
            )
        return rows

    data = _summary(entry, health, breaker.state, entry.base_url)
    b = entry.breaker
    data.update(
        {
            "timeout_s": entry.timeout_s,
            "retry": {
                "max_attempts": entry.retry.max_attempts,
                "base_delay_s": entry.retry.base_delay_s,
                "max_delay_s": entry.retry.max_delay_s,
            },
            "breaker_policy": {
                "mode": entry.breaker_mode,
                "window_s": b.window_s,
                "min_calls": b.min_calls,
                "failure_rate": b.failure_rate,
                "consecutive_failures": b.consecutive_failures,
                "break_s": b.break_s,
                "max_break_s": b.max_break_s,
                "half_open_probes": b.half_open_probes,
            },
            "health_check": await db_call(
                lambda: dict(
                    zip(
                        ("interval_s", "timeout_s", "probe"),
                        Provider.objects.filter(name=name)
                        .values_list("health_interval_s", "health_timeout_s", "health_probe")
                        .get(),
                        strict=True,
                    )
                )
            ),
            "options": dict(entry.config.options),
            "credentials": await db_call(credentials),
        }
    )
    return JsonResponse(data)


def breaker_dict(snap: Any) -> dict[str, Any]:
    return {
        "name": snap.key,
        "state": snap.state,
        "generation": snap.generation,
        "open_until": snap.open_until,
        "opened_count": snap.opened_count,
        "reason": snap.reason,
        "calls": snap.calls,
        "failures": snap.failures,
        "slow": snap.slow,
        "success_rate": snap.success_rate,
        "consecutive_failures": snap.consecutive_failures,
        "cooldowns": [{"credential": c, "kind": k, "until": u} for c, k, u in snap.cooldowns],
    }


@document(
    "GET",
    "/api/breakers",
    "Every provider's circuit breaker and cooldowns",
    scope="read",
    tags=["breakers"],
    responses={200: Response("The breakers", s.BreakerList)},
)
@api_view("read")
async def breakers_list(request: HttpRequest) -> HttpResponse:
    rt = runtime()
    snapshot = await rt.current()
    for name in snapshot.providers:
        await rt.engine.refresh(name)  # apply due lazy transitions so the answer is current
    return JsonResponse({"breakers": [breaker_dict(rt.engine.snapshot(n)) for n in sorted(snapshot.providers)]})


@document(
    "POST",
    "/api/breakers/{name}/reset",
    "Close the breaker and clear the provider's cooldowns",
    scope="admin",
    tags=["breakers"],
    responses={200: Response("The breaker after the reset", s.Breaker)},
    errors=(401, 403, 404),
)
@require_http_methods(["POST"])
@api_view("admin")
async def breaker_reset(request: HttpRequest, name: str) -> HttpResponse:
    await provider_entry(name)
    rt = runtime()
    await rt.engine.reset(name)
    await db_call(audit, request, "reset_breaker", "provider", name)
    await _note_action(name, "reset_breaker", actor(request))
    return JsonResponse(breaker_dict(rt.engine.snapshot(name)))


@document(
    "POST",
    "/api/breakers/{name}/force-open",
    "Force the breaker open (a failover drill)",
    scope="admin",
    tags=["breakers"],
    request=s.ForceOpen,
    responses={200: Response("The breaker, forced open", s.Breaker)},
    errors=(400, 401, 403, 404),
)
@require_http_methods(["POST"])
@api_view("admin")
async def breaker_force_open(request: HttpRequest, name: str) -> HttpResponse:
    await provider_entry(name)
    minutes = None
    if request.body.strip():
        # `null` or `5` must not mean "open until reset": only an object is taken.
        data = parse_json(request, what='The body ({"minutes": N})')
        minutes = data.get("minutes")
        if minutes is not None and (
            isinstance(minutes, bool) or not isinstance(minutes, int | float) or not 0 < minutes <= 7 * 24 * 60
        ):
            raise RequestError(400, "`minutes` must be a number > 0 and <= 10080.")
    rt = runtime()
    await rt.engine.force_open(name, minutes * 60 if minutes else None)
    await db_call(audit, request, "force_open", "provider", name, {"minutes": minutes})
    await _note_action(name, "force_open", actor(request), f"for {minutes} minutes" if minutes else "until reset")
    return JsonResponse(breaker_dict(rt.engine.snapshot(name)))


def _set_enabled(name: str, enabled: bool, who: str) -> bool:
    """Flip the flag (a row lock, so two calls at once cannot both think they changed it) and
    audit the call; True when it changed."""
    with transaction.atomic():
        provider = Provider.objects.select_for_update().get(name=name)
        before = provider.enabled
        if before != enabled:
            provider.enabled = enabled
            provider.save(update_fields=["enabled", "updated_at"])  # bumps the configuration version
    AuditLog.objects.create(
        actor=who,
        action="enable" if enabled else "disable",
        object_type="provider",
        object_name=name,
        changes={"enabled": [before, enabled]},
    )
    return before != enabled


async def _switch(request: HttpRequest, name: str, enabled: bool) -> HttpResponse:
    """The provider's new state at once: this process reloads now, the others within
    CONFIG_POLL_INTERVAL_S (the save bumps the configuration version). A real change is
    told to `operator_acted` (health's history: `provider.enabled` / `provider.disabled`);
    a call that changes nothing is only audited."""
    await provider_entry(name)
    who = actor(request)
    try:
        changed = await db_call(_set_enabled, name, enabled, who)
    except Provider.DoesNotExist:  # deleted since the snapshot was taken
        raise RequestError(404, f"no provider named {name!r}", code="provider_not_found") from None
    rt = runtime()
    await rt.refresh(force=True)
    if changed:
        await _note_action(name, "enable" if enabled else "disable", who)
    entry = await provider_entry(name)
    health = (await db_call(_health_rows)).get(name)
    return JsonResponse(_summary(entry, health, rt.engine.snapshot(name).state, entry.base_url))


@document(
    "POST",
    "/api/providers/{name}/enable",
    "Let routes send traffic to the provider again",
    scope="admin",
    tags=["providers"],
    responses={200: Response("The provider, enabled", s.ProviderSummary)},
    errors=(401, 403, 404),
)
@require_http_methods(["POST"])
@api_view("admin")
async def provider_enable(request: HttpRequest, name: str) -> HttpResponse:
    return await _switch(request, name, True)


@document(
    "POST",
    "/api/providers/{name}/disable",
    "Take the provider out of every route and stop probing it",
    scope="admin",
    tags=["providers"],
    responses={200: Response("The provider, disabled", s.ProviderSummary)},
    errors=(401, 403, 404),
)
@require_http_methods(["POST"])
@api_view("admin")
async def provider_disable(request: HttpRequest, name: str) -> HttpResponse:
    return await _switch(request, name, False)


async def _note_action(name: str, action: str, who: str, detail: str = "") -> None:
    """Tell whoever listens (the event history, which the console shows) of an operator's action."""
    await db_call(operator_acted.send, sender=Provider, provider=name, action=action, actor=who, detail=detail)


FLAGS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def query_flag(request: HttpRequest, name: str, default: bool) -> bool:
    """A boolean query parameter: true/false (or 1/0, yes/no); anything else is a 400, never
    a guess (`?prune=fasle` must not delete the configuration)."""
    value = request.GET.get(name)
    if value is None:
        return default
    try:
        return FLAGS[value.lower()]
    except KeyError:
        raise RequestError(400, f"`{name}` must be true or false.", code=f"invalid_{name}") from None


@document(
    "GET",
    "/api/providers/{name}/models",
    "The provider's model catalog (discovered, configured, priced)",
    scope="read",
    tags=["providers"],
    responses={200: Response("The models", s.CatalogList)},
    params=[Param("refresh", description="true: ask the provider now", schema={"type": "boolean"})],
    errors=(401, 403, 404),
)
@api_view("read")
async def provider_models(request: HttpRequest, name: str) -> HttpResponse:
    await provider_entry(name)
    if query_flag(request, "refresh", False):
        try:
            await refresh_catalog(runtime(), name)
        except UpstreamError as exc:
            return error_response(502, "provider_error", f"{name} did not list its models: {exc.message}")
        except Exception as exc:
            return error_response(502, "provider_error", f"{name} did not list its models: {type(exc).__name__}")

    def rows() -> list[dict[str, Any]]:
        out = []
        for m in Provider.objects.get(name=name).catalog.all():
            # As charged: the operator's price, else the provider's published one; null: unknown.
            charged, configured = m.prices(), m.configured_prices()
            prices = {field: None if p is None else float(p) for field, p in charged.items()}
            out.append(
                {
                    "name": m.name,
                    "capabilities": m.capabilities,
                    "context_window": m.context_window,
                    **prices,
                    "published": [f for f, p in charged.items() if p is not None and configured[f] is None],
                    "source": m.source,
                    "price_known": any(p is not None for p in prices.values()),
                    "free": m.is_free,
                }
            )
        return out

    return JsonResponse({"provider": name, "models": await db_call(rows)})


@document(
    "POST",
    "/api/providers/{name}/models/{model}/pull",
    "Pull a model onto an Ollama provider; streams progress as JSON lines",
    scope="admin",
    tags=["providers"],
    responses={200: Response("One progress object per line", s.PullProgress, "application/x-ndjson")},
    errors=(400, 401, 403, 404),
)
@require_http_methods(["POST"])
@api_view("admin")
async def provider_model_pull(request: HttpRequest, name: str, model: str) -> HttpResponseBase:
    entry = await provider_entry(name)
    if entry.kind != "ollama":
        raise RequestError(
            400, f"{name} is a {entry.kind} provider; only Ollama providers pull models.", code="unsupported"
        )
    rt = runtime()
    adapter: Any = rt.adapter(entry, entry.credentials[0][0] if entry.credentials else None)
    await db_call(audit, request, "pull_model", "provider", name, {"model": model})

    async def progress() -> AsyncIterator[bytes]:
        try:
            async for step in adapter.pull(model):
                yield json.dumps(step).encode() + b"\n"
        except UpstreamError as exc:
            yield json.dumps({"status": "error", "error": exc.message}).encode() + b"\n"
            return
        except Exception as exc:
            yield json.dumps({"status": "error", "error": f"{type(exc).__name__}: {exc}"}).encode() + b"\n"
            return
        await model_pulled(rt, name, model)

    response = StreamingHttpResponse(progress(), content_type="application/x-ndjson")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


@document(
    "GET",
    "/api/config",
    "The configuration, as import_config takes it (secrets masked)",
    scope="read",
    tags=["config"],
    responses={200: Response("The configuration", s.ConfigDocument, also=("application/yaml",))},
    params=[Param("format", description="json (default) or yaml", schema={"type": "string", "enum": ["json", "yaml"]})],
)
@api_view("read")
async def config_get(request: HttpRequest) -> HttpResponse:
    fmt = request.GET.get("format", "json")
    if fmt not in ("json", "yaml"):
        raise RequestError(400, f"`format` must be json or yaml, not {fmt!r}.", code="invalid_format")
    doc = await db_call(export_config)
    if fmt == "yaml":
        from .config import dump_yaml

        return HttpResponse(dump_yaml(doc), content_type="application/yaml")
    return JsonResponse(doc)


@document(
    "PUT",
    "/api/config",
    "Replace the configuration (what the document omits is deleted)",
    scope="admin",
    tags=["config"],
    request=s.ConfigDocument,
    responses={200: Response("What changed", s.ConfigResult)},
    params=[Param("prune", description="false: only create and update", schema={"type": "boolean"})],
)
@api_view("admin")
async def config_put(request: HttpRequest) -> HttpResponse:
    try:
        text = request.body.decode()
    except UnicodeDecodeError:
        raise RequestError(400, "The body must be UTF-8 YAML or JSON.") from None
    prune = query_flag(request, "prune", True)
    try:
        doc = load_document(text)  # bounded in depth and size, then validated by the importer
        if not doc and prune:
            # A blank body, `null` or `{}` would otherwise delete every provider, route and
            # channel: a client's mistake, most likely. Emptying it all must be said outright.
            raise ConfigError(
                ['document: empty; to delete everything, send {"providers": [], "routes": [], "alert_channels": []}']
            )
        summary = await db_call(apply_config, doc, actor=actor(request), prune=prune)
    except ConfigError as exc:
        return error_response(
            400,
            "invalid_config",
            "nothing changed: " + "; ".join(exc.errors[:20]),
            code="invalid_config",
            errors=exc.errors,
        )
    await runtime().refresh(force=True)
    return JsonResponse(
        {
            "created": summary.created,
            "updated": summary.updated,
            "deleted": summary.deleted,
            "unchanged": summary.unchanged,
        }
    )


@csrf_exempt
@require_http_methods(["GET", "PUT"])
async def config(request: HttpRequest) -> HttpResponse:
    return await (config_put(request) if request.method == "PUT" else config_get(request))


@document(
    "DELETE",
    "/api/cache",
    "Forget every discovered model (they are listed again on the next refresh)",
    scope="admin",
    tags=["config"],
    responses={200: Response("How many were forgotten", s.CacheCleared)},
)
@require_http_methods(["DELETE"])
@api_view("admin")
async def cache_delete(request: HttpRequest) -> HttpResponse:
    count = await db_call(forget_discovered)
    await db_call(audit, request, "clear_cache", "models", "discovered", {"forgotten": count})
    await runtime().refresh(force=True)
    return JsonResponse({"forgotten_models": count})


@document(
    "GET",
    "/api/schema",
    "This OpenAPI 3 document",
    scope=None,
    tags=["meta"],
    responses={200: Response("OpenAPI 3 document")},
    errors=(),
)
async def schema(request: HttpRequest) -> HttpResponse:
    return JsonResponse(build_schema(), json_dumps_params={"indent": None})

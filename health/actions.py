"""What operators do from the console. Every action is audited twice: an AuditLog row under
the user's username and an `action` event in the provider's history (published, so every
open console shows it).

Levels (see access.py): check now, reset, force-open, pull and switching the SD WebUI model
need `act`; enabling, disabling, maintenance, registering discovered providers and removing
the demo need `configure`.

A plain form POST answers with a redirect back to the page and a message (no JavaScript
needed); an htmx POST answers with the changed fragments, swapped out of band.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from project.database import db_call
from providers.demo import remove_demo
from providers.discovery import DiscoveredServer, discover_configured, register
from providers.engine import UpstreamError
from providers.models import AuditLog, MaintenanceWindow, Provider
from providers.runtime import runtime
from providers.snapshot import ProviderEntry

from . import pages, pulls
from .access import Level, View, console_view
from .events import publish, record_action
from .monitor import check_now
from .templatetags.console import stamp
from .views import ConsoleRequest

MAX_MINUTES = 7 * 24 * 60
MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/\-]{0,199}$")


def see_other(url: str) -> HttpResponseRedirect:
    """After a POST, back to a page with GET (303)."""
    return HttpResponseRedirect(url, status=303)


class ActionError(Exception):
    """Bad input for an action: shown to the user, answered with 400."""


def audit(user: Any, action: str, name: str, changes: dict[str, Any] | None = None, detail: str = "") -> None:
    who = user.get_username()
    AuditLog.objects.create(actor=who, action=action, object_type="provider", object_name=name, changes=changes or {})
    record_action(name, action, who, detail)


async def _entry(name: str) -> ProviderEntry:
    entry = (await runtime().current()).providers.get(name)
    if entry is None:
        raise Http404(f"no provider named {name!r}")
    return entry


async def _engine_events_written() -> None:
    """Wait until the engine's own events of this action (a breaker's change) are logged, so
    the history lists the change before the action, and two writers never race for SQLite."""
    sink = getattr(runtime(), "event_sink", None)
    if sink is not None:
        await sink.written()


def _minutes(request: HttpRequest) -> int:
    try:
        minutes = int(request.POST.get("minutes", ""))
    except ValueError:
        raise ActionError("Give the number of minutes.") from None
    if not 1 <= minutes <= MAX_MINUTES:
        raise ActionError(f"Minutes must be from 1 to {MAX_MINUTES}.")
    return minutes


async def _answer(
    request: ConsoleRequest, name: str, text: str, level: str = "success", status: int = 200
) -> HttpResponse:
    """The changed fragments for htmx; otherwise back to the provider page with a message."""
    if request.htmx:
        context = await pages.provider_live_context(name, request.role)
        if context is None:
            raise Http404(f"no provider named {name!r}")
        context["flash"] = [(level, text)]
        pull = context.get("pull")
        if (
            pull
            and status == 200
            and request.resolver_match is not None
            and request.resolver_match.url_name == "health-pull-model"
        ):
            # The page keeps the newer of this answer and the socket's pushes (data-version):
            # a pull that already ended says how, not "Pulling…".
            context["flash_version"] = pull.get("version")
            context["flash"] = [pulls.outcome(pull) or (level, text)]
        return render(request, f"{pages.PROVIDER}#acted", context, status=status)
    messages.add_message(request, messages.ERROR if level == "error" else messages.SUCCESS, text)
    return see_other(reverse("health-provider", args=[name]))


# An action: does its work on the named provider and says what it did.
Action = Callable[[HttpRequest, str], Awaitable[str]]


def provider_action(level: Level = "act") -> Callable[[Action], View]:
    """POST only, at `level`; an ActionError becomes a 400 with its message."""

    def decorate(fn: Action) -> View:
        async def view(request: ConsoleRequest, name: str) -> HttpResponse:
            await _entry(name)
            try:
                text = await fn(request, name)
            except ActionError as exc:
                return await _answer(request, name, str(exc), "error", 400)
            return await _answer(request, name, text)

        view.__name__ = fn.__name__
        view.__doc__ = fn.__doc__
        return require_POST(console_view(level)(view))

    return decorate


# -- act ---------------------------------------------------------------------------------------


@provider_action("act")
async def check_provider(request: HttpRequest, name: str) -> str:
    """Probe the provider now."""
    [result] = await check_now(runtime(), [name])
    await db_call(audit, request.user, "check_now", name, {"ok": result.ok})
    if result.ok:
        return f"Checked {name}: ok in {result.latency_ms:.0f} ms."
    return f"Checked {name}: failed after {result.latency_ms:.0f} ms: {result.error}"


@provider_action("act")
async def reset_breaker(request: HttpRequest, name: str) -> str:
    """Close the breaker and clear the provider's cooldowns."""
    await runtime().engine.reset(name)
    await _engine_events_written()
    await db_call(audit, request.user, "reset_breaker", name)
    return f"The breaker of {name} is closed and its cooldowns are cleared."


@provider_action("act")
async def force_open(request: HttpRequest, name: str) -> str:
    """Force the breaker open for N minutes (a failover drill)."""
    minutes = _minutes(request)
    await runtime().engine.force_open(name, minutes * 60)
    await _engine_events_written()
    await db_call(audit, request.user, "force_open", name, {"minutes": minutes}, f"for {minutes} minutes")
    return f"The breaker of {name} is forced open for {minutes} minutes."


@provider_action("act")
async def pull_model(request: HttpRequest, name: str) -> str:
    """Start pulling a model onto an Ollama provider; progress goes to the page live."""
    entry = await _entry(name)
    if entry.kind != "ollama":
        raise ActionError(f"{name} is a {entry.kind} provider: only Ollama providers pull models.")
    model = request.POST.get("model", "").strip()
    if not MODEL_RE.match(model):
        raise ActionError("Name a model, e.g. llama3.2 or qwen2.5:0.5b.")
    if pulls.running(name):
        raise ActionError(f"{name} is already pulling a model; wait for it to finish.")
    await db_call(audit, request.user, "pull_model", name, {"model": model}, f"started pulling {model}")
    await pulls.start(runtime(), entry, model, request.user.get_username())
    return f"Pulling {model} onto {name}…"


@provider_action("act")
async def switch_sd_model(request: HttpRequest, name: str) -> str:
    """Load another checkpoint on a Stable Diffusion WebUI provider."""
    entry = await _entry(name)
    if entry.kind != "sdwebui":
        raise ActionError(f"{name} is a {entry.kind} provider: only SD WebUI providers switch checkpoints.")
    model = request.POST.get("model", "").strip()
    if not model or len(model) > 300:
        raise ActionError("Choose a checkpoint.")
    rt = runtime()
    adapter: Any = rt.adapter(entry, entry.credentials[0][0] if entry.credentials else None)
    try:
        await adapter.set_model(model)
    except UpstreamError as exc:
        await db_call(
            audit,
            request.user,
            "switch_model",
            name,
            {"model": model, "error": exc.message},
            f"could not load {model}: {exc.message}",
        )
        raise ActionError(f"{name} did not load {model}: {exc.message}") from exc
    except Exception as exc:
        raise ActionError(f"{name} did not answer: {type(exc).__name__}") from exc
    await db_call(audit, request.user, "switch_model", name, {"model": model}, f"loaded {model}")
    return f"{name} loaded {model}."


# -- configure ---------------------------------------------------------------------------------


async def _reload(name: str) -> None:
    """Take the change in this process now (others within CONFIG_POLL_INTERVAL_S) and
    repaint every console's card."""
    await runtime().refresh(force=True)
    await publish({"type": "health.update", "provider": name})


def _set_enabled(name: str, enabled: bool, user: Any) -> bool:
    with transaction.atomic():
        provider = Provider.objects.select_for_update().get(name=name)
        before = provider.enabled
        if before != enabled:
            provider.enabled = enabled
            provider.save(update_fields=["enabled", "updated_at"])
    audit(user, "enable" if enabled else "disable", name, {"enabled": [before, enabled]})
    return before != enabled


@provider_action("configure")
async def enable_provider(request: HttpRequest, name: str) -> str:
    """Let routes send traffic to the provider again."""
    changed = await db_call(_set_enabled, name, True, request.user)
    await _reload(name)
    return f"{name} is enabled." if changed else f"{name} was already enabled."


@provider_action("configure")
async def disable_provider(request: HttpRequest, name: str) -> str:
    """Take the provider out of every route and stop probing it."""
    changed = await db_call(_set_enabled, name, False, request.user)
    await _reload(name)
    return f"{name} is disabled." if changed else f"{name} was already disabled."


def _start_maintenance(name: str, minutes: int, reason: str, user: Any) -> MaintenanceWindow:
    now = timezone.now()
    window = MaintenanceWindow(
        provider=Provider.objects.get(name=name),
        starts_at=now,
        ends_at=now + timedelta(minutes=minutes),
        reason=reason,
        created_by=user.get_username(),
    )
    window.full_clean()
    window.save()
    audit(
        user,
        "maintenance_start",
        name,
        {"minutes": minutes, "reason": reason, "ends_at": window.ends_at.isoformat()},
        f"for {minutes} minutes" + (f": {reason}" if reason else ""),
    )
    return window


@provider_action("configure")
async def start_maintenance(request: HttpRequest, name: str) -> str:
    """Open a maintenance window now: traffic routes around the provider, alerts are silent."""
    minutes = _minutes(request)
    reason = request.POST.get("reason", "").strip()
    if len(reason) > 200:
        raise ActionError("Keep the reason under 200 characters.")
    try:
        window = await db_call(_start_maintenance, name, minutes, reason, request.user)
    except ValidationError as exc:
        raise ActionError("; ".join(exc.messages)) from exc
    await _reload(name)
    return f"{name} is in maintenance until {stamp(window.ends_at)}."


def _end_maintenance(name: str, user: Any) -> int:
    now = timezone.now()
    ended = 0
    for window in MaintenanceWindow.objects.filter(provider__name=name, starts_at__lte=now, ends_at__gt=now):
        if window.starts_at >= now:
            window.delete()
        else:
            window.ends_at = now
            window.save(update_fields=["ends_at"])
        ended += 1
    if ended:
        audit(user, "maintenance_end", name, {"ended": ended})
    return ended


@provider_action("configure")
async def end_maintenance(request: HttpRequest, name: str) -> str:
    """Close the open maintenance window now."""
    ended = await db_call(_end_maintenance, name, request.user)
    await _reload(name)
    return f"{name}'s maintenance ended." if ended else f"{name} was not in maintenance."


@require_POST
@console_view("configure")
async def remove_demo_providers(request: HttpRequest) -> HttpResponse:
    """Delete the demo's providers and route (the dashboard's banner)."""
    removed = await db_call(remove_demo, request.user.get_username())
    await runtime().refresh(force=True)
    messages.success(request, f"Removed the demo ({removed} row{'s' if removed != 1 else ''}).")
    return see_other(reverse("health-dashboard"))


# -- discovery -----------------------------------------------------------------------------------


def _known_urls() -> dict[str, str]:
    return {p.base_url.rstrip("/"): p.name for p in Provider.objects.all()}


@console_view("configure")
async def discover_page(request: ConsoleRequest) -> HttpResponse:
    """Look for Ollama, SD WebUI and OpenAI-compatible servers nearby and offer to register them."""
    found = await discover_configured()
    known = await db_call(_known_urls)
    servers = [{"server": s, "registered_as": known.get(s.base_url.rstrip("/"))} for s in found]
    return render(request, "health/discover.html", {"section": "providers", "role": request.role, "servers": servers})


def _register(name: str, kind: str, base_url: str, models: list[str], user: Any) -> tuple[str, bool]:
    server = DiscoveredServer(kind, base_url, None, tuple(models))
    registered, created = register(server, actor=user.get_username(), name=name)
    if created:
        record_action(registered, "register", user.get_username(), f"discovered {kind} at {base_url}")
    return registered, created


@require_POST
@console_view("configure")
async def register_discovered(request: HttpRequest) -> HttpResponse:
    """Create a provider from a discovered server."""
    name = request.POST.get("name", "").strip()
    kind = request.POST.get("kind", "")
    base_url = request.POST.get("base_url", "").strip()
    if kind not in ("ollama", "sdwebui", "openai"):
        messages.error(request, "Only discovered Ollama, SD WebUI and OpenAI-compatible servers register here.")
        return see_other(reverse("health-discover"))
    try:
        registered, created = await db_call(
            _register, name, kind, base_url, request.POST.getlist("models"), request.user
        )
    except ValidationError as exc:
        details = "; ".join(f"{field}: {', '.join(errors)}" for field, errors in exc.message_dict.items())
        messages.error(request, f"{name or 'The provider'} was not registered: {details}")
        return see_other(reverse("health-discover"))
    if not created:
        messages.info(request, f"{base_url} is already registered as {registered}.")
        return see_other(reverse("health-provider", args=[registered]))
    await runtime().refresh(force=True)
    messages.success(request, f"Registered {registered}; the monitor probes it within seconds.")
    return see_other(reverse("health-provider", args=[registered]))

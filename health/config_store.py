"""What the configuration pages read and write, synchronously (the pages call it through
`db_call`).

A save is one entry of a configuration document given to `apply_config`, exactly as
`PUT /api/config?prune=false` or `import_config` would apply it: the same validation, the
same write, the same `AuditLog` row (`create`/`update`, object type `provider` or `route`,
the console user as actor, the changed keys), which is what the charts' annotations read
(health/annotations.py). A deletion writes the `delete` row the importer's prune writes.

An entry starts from the exported one (`export_config`), so keys the form has no field for
(prices, a kind's other options) go back unchanged and export → save is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from providers import crypto
from providers.config import ConfigError, apply_config, export_config
from providers.models import AuditLog, Provider, Route, RouteTarget

__all__ = [
    "ConfigError",
    "EnvReference",
    "ProviderRow",
    "delete_provider",
    "delete_route",
    "exported",
    "known_models",
    "provider_rows",
    "route_rows",
    "routes_using",
    "save_entry",
]


@dataclass(frozen=True)
class EnvReference:
    """An `env:NAME` the provider reads (its key or its base URL) and whether this server has it."""

    what: str  # "API key" | "base URL"
    name: str
    set: bool
    problem: str = ""  # a name that may not be used (one of the server's own settings)

    @property
    def warning(self) -> str:
        if self.problem:
            return f"{self.what}: {self.problem}"
        if not self.set:
            return f"{self.what}: env:{self.name} is not set in the server's environment"
        return ""


def env_references(provider: Provider) -> list[EnvReference]:
    refs = []
    for secret in provider.secrets.all():
        if secret.env_var:
            problem = crypto.env_reference_error(secret.env_var) or ""
            refs.append(EnvReference("API key", secret.env_var, bool(os.environ.get(secret.env_var)), problem))
    name = provider.base_url_env
    if name is not None:
        problem = crypto.env_reference_error(name) or ""
        refs.append(EnvReference("base URL", name, bool(os.environ.get(name, "").strip()), problem))
    return refs


@dataclass
class ProviderRow:
    name: str
    kind: str
    kind_label: str
    base_url: str
    enabled: bool
    is_demo: bool
    keys: list[str]  # masked values and env:NAME references
    models: int
    routes: list[str]
    env: list[EnvReference] = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        return [ref.warning for ref in self.env if ref.warning]


def _routes_by_provider() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for provider, route in RouteTarget.objects.values_list("provider__name", "route__name").order_by("route__name"):
        names = out.setdefault(provider, [])
        if route not in names:
            names.append(route)
    return out


def provider_row(provider: Provider, routes: dict[str, list[str]]) -> ProviderRow:
    return ProviderRow(
        name=provider.name,
        kind=provider.kind,
        kind_label=provider.get_kind_display(),
        base_url=provider.base_url,
        enabled=provider.enabled,
        is_demo=provider.is_demo,
        keys=[s.display for s in provider.secrets.all()],
        models=len(set(provider.configured_models) | {m.name for m in provider.catalog.all()}),
        routes=routes.get(provider.name, []),
        env=env_references(provider),
    )


def provider_rows() -> list[ProviderRow]:
    routes = _routes_by_provider()
    return [provider_row(p, routes) for p in Provider.objects.prefetch_related("secrets", "catalog")]


def one_provider(name: str) -> ProviderRow | None:
    provider = Provider.objects.prefetch_related("secrets", "catalog").filter(name=name).first()
    return None if provider is None else provider_row(provider, _routes_by_provider())


def routes_using(name: str) -> list[str]:
    return _routes_by_provider().get(name, [])


def route_rows() -> list[dict[str, Any]]:
    rows = []
    for route in Route.objects.with_targets():
        rows.append(
            {
                "name": route.name,
                "capability": route.capability,
                "strategy": route.strategy,
                "enabled": route.enabled,
                "is_demo": route.is_demo,
                "description": route.description,
                "targets": [str(t) for t in route.targets.all()],
            }
        )
    return rows


def exported(section: str, name: str) -> dict[str, Any] | None:
    """The entry `export_config` writes for it (secrets masked), or None."""
    return next((e for e in export_config()[section] if e["name"] == name), None)


def known_models() -> dict[str, list[str]]:
    """Every provider's models, by provider name: configured, then the rest of its catalog."""
    out: dict[str, list[str]] = {}
    for provider in Provider.objects.prefetch_related("catalog").order_by("priority", "name"):
        names = list(dict.fromkeys([*provider.configured_models, *sorted(m.name for m in provider.catalog.all())]))
        out[provider.name] = names
    return out


def save_entry(section: str, entry: dict[str, Any], actor: str, *, create: bool) -> str:
    """Apply one entry as `PUT /api/config?prune=false` would; "created", "updated" or
    "unchanged". Raises ConfigError ("path: message" lines) having changed nothing."""
    model = Provider if section == "providers" else Route
    name = entry.get("name")
    if create and isinstance(name, str) and model.objects.filter(name=name).exists():
        kind = section.rstrip("s")
        raise ConfigError([f"{section}[0].name: a {kind} named {name!r} exists already"])
    if not create and not model.objects.filter(name=name).exists():
        raise ConfigError([f"{section}[0].name: no {section.rstrip('s')} named {name!r}"])
    summary = apply_config({section: [entry]}, actor=actor, prune=False)
    if summary.created:
        return "created"
    return "updated" if summary.updated else "unchanged"


def delete_provider(name: str, actor: str) -> None:
    """Delete a provider no route uses (ConfigError naming them otherwise: deleting it would
    silently shorten their chains)."""
    with transaction.atomic():
        provider = Provider.objects.select_for_update().filter(name=name).first()
        if provider is None:
            raise ConfigError([f"providers[0].name: no provider named {name!r}"])
        if routes := routes_using(name):
            raise ConfigError(
                [
                    f"{name} is a target of the route{'s' if len(routes) > 1 else ''} {', '.join(routes)}: remove it there first"
                ]
            )
        provider.delete()
        AuditLog.objects.create(actor=actor, action="delete", object_type="provider", object_name=name)


def delete_route(name: str, actor: str) -> None:
    with transaction.atomic():
        deleted, _ = Route.objects.filter(name=name).delete()
        if not deleted:
            raise ConfigError([f"routes[0].name: no route named {name!r}"])
        AuditLog.objects.create(actor=actor, action="delete", object_type="route", object_name=name)

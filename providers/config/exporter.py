"""Exporting the configuration as a document `apply_config` accepts: export → import is a no-op.

Secrets come out as `env:NAME` references or masked (`sk-…abcd`); never in clear.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import yaml

from providers.models import Provider, ProviderModel, Route

from .schema import PRICE_KEYS, PROVIDER_KEYS, ROUTE_KEYS, TARGET_KEYS, Key
from .sections import sections


def _put(doc: dict[str, Any], key: Key, value: Any) -> None:
    if isinstance(value, Decimal):
        value = float(value)
    container = doc
    for part in key.path[:-1]:
        container = container.setdefault(part, {})
    container[key.path[-1]] = value


def fields_of(obj: Any, keys: tuple[Key, ...], *, skip_empty: bool = True) -> dict[str, Any]:
    """The entry keys of `obj`'s fields (empty ones left out), through the same map the
    importer assigns with (schema.py): for every section's export."""
    out: dict[str, Any] = {}
    for key in keys:
        value = getattr(obj, key.field)
        if skip_empty and value in (None, "", [], {}):
            continue
        _put(out, key, value)
    return out


def price_spec(model: ProviderModel) -> dict[str, Any]:
    """A catalog row as its `prices` entry: the operator's prices that are known, a 0 (free)
    included; an unknown one (NULL) is left out, which imports as unknown again. What the
    provider published (`details`) is not the operator's and stays out."""
    return fields_of(model, PRICE_KEYS)


def export_config() -> dict[str, Any]:
    providers = []
    for provider in Provider.objects.prefetch_related("secrets", "catalog").order_by("priority", "name"):
        entry: dict[str, Any] = {"name": provider.name, **fields_of(provider, PROVIDER_KEYS)}
        secrets = [s.display for s in provider.secrets.all()]
        if len(secrets) == 1:
            entry["api_key"] = secrets[0]
        elif secrets:
            entry["api_keys"] = secrets
        prices = {}
        for model in provider.catalog.all():
            spec = price_spec(model)
            # a row the configuration made is named (if only as `{}`), or importing this deletes it
            made = model.source == ProviderModel.Source.CONFIG and model.name not in provider.configured_models
            if spec or made:
                prices[model.name] = spec
        if prices:
            entry["prices"] = prices
        providers.append(entry)
    routes = []
    for route in Route.objects.with_targets().order_by("name"):
        entry = {"name": route.name, **fields_of(route, ROUTE_KEYS)}
        entry["targets"] = [
            {"provider": t.provider.name, "model": t.model, **fields_of(t, TARGET_KEYS)} for t in route.targets.all()
        ]
        routes.append(entry)
    doc: dict[str, Any] = {"providers": providers, "routes": routes}
    for section in sections():
        doc[section.name] = section.export()
    return doc


def dump_yaml(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, default_flow_style=False)

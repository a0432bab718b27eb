"""The model catalog: what each provider serves, discovered through its adapter and kept in
the database (`ProviderModel`, source "discovered"), refreshed on a schedule by the monitor
and on demand; `DELETE /api/cache` forgets it.

Prices an operator set (the price columns) are never touched. What a provider publishes in
its model list (OpenRouter, Together: providers/adapters/published_prices.py) is kept apart,
in `details["published_prices"]`, on every row of the provider, whatever its source, and
refreshed with each listing; it prices only what the operator left unknown."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from django.db import transaction
from django.utils import timezone

from project.database import db_call

from .adapters import ModelInfo
from .adapters.published_prices import PUBLISHED, published_prices
from .models import Capability, Provider, ProviderModel
from .runtime import Runtime

log = logging.getLogger(__name__)


def store_models(provider_name: str, infos: Sequence[ModelInfo]) -> int:
    """Upsert discovered models; returns how many rows changed (0: nothing to reload)."""
    provider = Provider.objects.get(name=provider_name)
    existing = {m.name: m for m in provider.catalog.all()}
    changed = 0
    now = timezone.now()
    with transaction.atomic():
        for info in infos:
            capabilities = sorted(c for c in info.capabilities if c in Capability.values)
            published = {k: str(v) for k, v in published_prices(info.details).items()}
            row = existing.get(info.name)
            if row is None:
                details = dict(info.details)
                if published:
                    details[PUBLISHED] = published
                ProviderModel.objects.create(
                    provider=provider,
                    name=info.name,
                    capabilities=capabilities,
                    context_window=info.context_window,
                    details=details,
                    source=ProviderModel.Source.DISCOVERED,
                    discovered_at=now,
                )
                changed += 1
                continue
            fields = {
                "capabilities": row.capabilities or capabilities,
                "context_window": info.context_window or row.context_window,
                "details": _with_published(row.details, published),
            }
            if any(getattr(row, k) != v for k, v in fields.items()):
                for key, value in fields.items():
                    setattr(row, key, value)
                row.discovered_at = now
                row.save(update_fields=[*fields, "discovered_at"])
                changed += 1
    return changed


def _with_published(details: Any, published: dict[str, str]) -> dict[str, Any]:
    """`details` with the prices the provider publishes now (none: the key goes)."""
    out = dict(details) if isinstance(details, dict) else {}
    if published:
        out[PUBLISHED] = published
    else:
        out.pop(PUBLISHED, None)
    return out


def forget_discovered() -> int:
    deleted, _ = ProviderModel.objects.filter(source=ProviderModel.Source.DISCOVERED).delete()
    return deleted


async def refresh_catalog(rt: Runtime, provider_name: str, *, timeout_s: float = 10.0) -> list[ModelInfo]:
    """List a provider's models through its adapter and store them."""
    snapshot = await rt.current()
    entry = snapshot.providers[provider_name]
    credential = entry.credentials[0][0] if entry.credentials else None
    infos = await rt.adapter(entry, credential).list_models(timeout=timeout_s)
    if await db_call(store_models, provider_name, infos):
        await rt.refresh(force=True)
    return infos


async def model_pulled(rt: Runtime, provider_name: str, model: str) -> None:
    """After a pull of `model` to `provider_name` worked (from the console or the API): routes
    that found the model missing use it again at once (every worker, through the shared store),
    not when the model_missing cooldown runs out; and the catalog lists it."""
    try:
        await rt.engine.clear_model_missing(provider_name, model)
    except Exception:
        log.warning("could not clear %s's model_missing mark for %s", provider_name, model, exc_info=True)
    try:
        await refresh_catalog(rt, provider_name)
    except Exception:  # the model is there; the catalog lists it on its next refresh
        log.warning("could not refresh the catalog of %s after a pull", provider_name, exc_info=True)

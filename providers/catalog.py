"""The model catalog: what each provider serves, discovered through its adapter and kept in
the database (`ProviderModel`, source "discovered"), refreshed on a schedule by the monitor
and on demand; `DELETE /api/cache` forgets it. Prices an operator set are never touched."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.db import transaction
from django.utils import timezone

from project.database import db_call

from .adapters import ModelInfo
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
            row = existing.get(info.name)
            if row is None:
                ProviderModel.objects.create(
                    provider=provider,
                    name=info.name,
                    capabilities=capabilities,
                    context_window=info.context_window,
                    details=dict(info.details),
                    source=ProviderModel.Source.DISCOVERED,
                    discovered_at=now,
                )
                changed += 1
                continue
            fields = {
                "capabilities": row.capabilities or capabilities,
                "context_window": info.context_window or row.context_window,
            }
            if any(getattr(row, k) != v for k, v in fields.items()):
                for key, value in fields.items():
                    setattr(row, key, value)
                row.discovered_at = now
                row.save(update_fields=[*fields, "discovered_at"])
                changed += 1
    return changed


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

"""Every configuration change bumps ConfigState, so running processes reload within seconds;
and the signals that tell later apps about an operator's action on a provider and about an
API key passing a threshold of its budget.

The providers app watches its own models; a later app whose models are part of the
configuration (health's alert channels) calls `watch` for them in its AppConfig.ready.
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import Signal

from .models import (
    ApiKey,
    ConfigState,
    MaintenanceWindow,
    Provider,
    ProviderModel,
    Route,
    RouteTarget,
    Secret,
)

CONFIG_MODELS = (Provider, Secret, ProviderModel, MaintenanceWindow, Route, RouteTarget, ApiKey)

# Sent (synchronously, from a database thread) when an operator changes a provider through the
# operations API (reset or force-open a breaker), with `provider`, `action`, `actor` and
# `detail`; health puts it in the provider's event history. Not on any hot path.
operator_acted = Signal()

# Sent (synchronously, from a database thread) when an API key's spend passes a threshold of its
# budget (providers/keys.py), once per threshold, period and budget across every worker, with
# `key_name`, `prefix`, `threshold` (80 or 100, percent), `spend` and `budget` (Decimal, in the
# prices' currency), `period` (day | week | month) and `period_start` (a UTC datetime). The
# health app connects its alert channels to it.
key_budget_crossed = Signal()


def _bump(sender: Any, **kwargs: Any) -> None:
    if kwargs.get("raw"):  # loaddata
        return
    ConfigState.bump()


def watch(*models: type[Any], m2m: tuple[Any, ...] = ()) -> None:
    """Bump the configuration version whenever a row of `models` (or a link of the `m2m`
    through tables) is saved or deleted."""
    for model in models:
        post_save.connect(_bump, sender=model, dispatch_uid=f"config-bump-save-{model.__name__}")
        post_delete.connect(_bump, sender=model, dispatch_uid=f"config-bump-delete-{model.__name__}")
    for through in m2m:
        m2m_changed.connect(_bump, sender=through, dispatch_uid=f"config-bump-m2m-{through.__name__}")


def connect() -> None:
    watch(*CONFIG_MODELS)

"""Every configuration change bumps ConfigState, so running processes reload within seconds."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import m2m_changed, post_delete, post_save

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


def _bump(sender: Any, **kwargs: Any) -> None:
    if kwargs.get("raw"):  # loaddata
        return
    ConfigState.bump()


def connect() -> None:
    from health.models import AlertChannel

    for model in (*CONFIG_MODELS, AlertChannel):
        post_save.connect(_bump, sender=model, dispatch_uid=f"config-bump-save-{model.__name__}")
        post_delete.connect(_bump, sender=model, dispatch_uid=f"config-bump-delete-{model.__name__}")
    m2m_changed.connect(_bump, sender=AlertChannel.providers.through, dispatch_uid="config-bump-m2m")


"""The event history: every change of status or breaker state, cooldown, alert and operator
action, with its reason; each is also published to the channel layer (group `health`) so
open consoles update at once."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils import timezone

from providers.models import Provider

from .models import HealthEvent

log = logging.getLogger(__name__)

GROUP = "health"


def record_event(
    provider_name: str,
    kind: str,
    old: str = "",
    new: str = "",
    reason: str = "",
    actor: str = "",
    at: datetime | None = None,
) -> HealthEvent:
    provider = Provider.objects.filter(name=provider_name).first() if provider_name else None
    return HealthEvent.objects.create(
        provider=provider,
        provider_name=provider_name,
        at=at or timezone.now(),
        kind=kind,
        old=old[:40],
        new=new[:40],
        reason=reason,
        actor=actor,
    )


def record_action(provider_name: str, action: str, actor: str, detail: str = "") -> HealthEvent:
    """An operator's action (reset, force-open, check now, ...), published like any change."""
    event = record_event(provider_name, HealthEvent.Kind.ACTION, new=action, reason=detail, actor=actor)
    publish_sync({"type": "health.event", "provider": provider_name, "event_id": event.pk})
    return event


def note_operator_action(
    sender: Any, *, provider: str, action: str, actor: str, detail: str = "", **kwargs: Any
) -> None:
    """Receiver of `providers.signals.operator_acted` (connected in HealthConfig.ready): an
    action taken through the operations API goes in the history like one from the console."""
    record_action(provider, action, actor, detail)


async def publish(message: dict[str, object]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(GROUP, message)
    except Exception:  # a console that misses one push resynchronises on its next poll
        log.exception("could not publish %s", message.get("type"))


def publish_sync(message: dict[str, object]) -> None:
    async_to_sync(publish)(message)

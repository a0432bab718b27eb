"""Alert channels as configuration: the `alert_channels` section of the configuration
document, and their targets as secrets no upstream answer may show.

Both are plugged into the providers app in HealthConfig.ready. The section
(providers/config/sections.py) is imported and exported with the rest of the document,
pruned with it, and its errors are reported at their paths (`alert_channels[0].url: ...`).
An entry is validated with `AlertChannelConfig`, built like the providers app's entry models
(providers/config/schema.py), which cannot name it: health depends on providers, not back.
The target (a webhook URL or an address) is a secret: it comes out masked or as `env:NAME`,
like a provider's key, and webhook URLs join the secrets every upstream answer is scrubbed of
(`alert_targets`, a `providers.runtime.secret_sources` entry).
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ValidationError
from pydantic import Field

from providers.config import (
    ConfigEntry,
    Importer,
    Name,
    Section,
    Staged,
    WholeNumber,
    columns,
    fields_of,
    stored,
)
from providers.models import Provider, Secret
from providers.runtime import url_secrets

from .models import AlertChannel

log = logging.getLogger(__name__)

TARGET = "a literal (stored encrypted, exported masked) or env:NAME; required for a new channel"


class AlertChannelConfig(ConfigEntry):
    """One alert channel; its target is `url` (webhook, slack) or `to` (email), a secret."""

    name: Name
    kind: str = stored(AlertChannel, "kind")
    url: str | None = Field(default=None, description=f"webhook, slack: the URL, {TARGET}.")
    to: str | None = Field(default=None, description=f"email: the addresses, comma-separated, {TARGET}.")
    enabled: bool = stored(AlertChannel, "enabled")
    failure_threshold: WholeNumber = stored(AlertChannel, "failure_threshold")
    success_threshold: WholeNumber = stored(AlertChannel, "success_threshold")
    reminder_interval_s: WholeNumber | None = stored(AlertChannel, "reminder_interval_s")
    notify_recovery: bool = stored(AlertChannel, "notify_recovery")
    providers: list[Name] = Field(default_factory=list, description="Provider names; empty: every provider.")
    events: list[str] = stored(AlertChannel, "events")


ALERT_KEYS = columns(AlertChannelConfig)


def stage_channels(importer: Importer, provider_names: set[str]) -> dict[str, Staged]:
    staged: dict[str, Staged] = {}
    existing = {a.name: a for a in AlertChannel.objects.prefetch_related("providers")}
    for path, entry in importer.named_entries("alert_channels", "alert channel", AlertChannelConfig):
        obj = existing.get(entry.name) or AlertChannel(name=entry.name)
        item = Staged(obj, obj.pk is None, importer.assign(obj, entry, ALERT_KEYS))
        importer.validate(path, obj, ALERT_KEYS)
        _stage_target(importer, path, entry, obj, item)
        names = entry.providers
        for i, name in enumerate(names):
            if name not in provider_names:
                importer.error(f"{path}.providers[{i}]", f"unknown provider {name!r}")
        before = sorted(p.name for p in obj.providers.all()) if obj.pk else []
        if sorted(names) != before:
            item.changes["providers"] = [before, sorted(names)]
        item.after_save.append(
            lambda channel=obj, names=names: channel.providers.set(Provider.objects.filter(name__in=names))
        )
        staged[entry.name] = item
    return staged


def _stage_target(importer: Importer, path: str, entry: AlertChannelConfig, obj: AlertChannel, item: Staged) -> None:
    """The channel's target (`url`, or `to` for email): required for a new channel; a masked
    value keeps the stored one."""
    created = item.created
    target_key = "to" if obj.kind == AlertChannel.Kind.EMAIL else "url"
    raw = getattr(entry, target_key)
    if raw is None:
        if created or not obj.display_target:
            importer.error(f"{path}.{target_key}", "is required")
        return
    hints = [obj.target_hint] if obj.pk else []
    parsed = importer.secret_value(f"{path}.{target_key}", raw, [Secret(hint=h) for h in hints])
    if parsed and parsed[0] == "literal":
        try:
            obj.validate_target(parsed[1])
        except ValidationError as exc:
            importer.error(f"{path}.{target_key}", "; ".join(exc.messages))
            parsed = None
    if parsed and parsed[0] == "env" and obj.target_env != parsed[1]:
        item.changes[target_key] = [obj.display_target, f"env:{parsed[1]}"]
        obj.set_target_env(parsed[1])
    elif parsed and parsed[0] == "literal":
        old = obj.display_target
        obj.set_target(parsed[1])
        if old != obj.display_target or created:
            item.changes[target_key] = [old, obj.display_target]


def export_channels() -> list[dict[str, Any]]:
    channels = []
    for channel in AlertChannel.objects.prefetch_related("providers").order_by("name"):
        entry = {"name": channel.name, **fields_of(channel, ALERT_KEYS)}
        entry["to" if channel.kind == AlertChannel.Kind.EMAIL else "url"] = channel.display_target
        names = sorted(p.name for p in channel.providers.all())
        if names:
            entry["providers"] = names
        channels.append(entry)
    return channels


SECTION = Section(
    name="alert_channels", kind="alert_channel", model=AlertChannel, stage=stage_channels, export=export_channels
)


def alert_targets() -> list[str]:
    """The webhook channels' URLs and the tokens in them (email addresses are no secrets)."""
    values: list[str] = []
    for channel in AlertChannel.objects.exclude(kind=AlertChannel.Kind.EMAIL):
        try:
            target = channel.target()
        except Exception as exc:  # an unreadable target is the alert sender's error to report
            log.warning("alert channel %s: target unreadable for scrubbing: %s", channel.name, exc)
            continue
        if target:
            values += url_secrets(target)
    return values

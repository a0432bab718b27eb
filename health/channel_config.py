"""Alert channels as configuration: the `alert_channels` section of the configuration
document, and their targets as secrets no upstream answer may show.

Both are plugged into the providers app in HealthConfig.ready. The section
(providers/config/sections.py) is imported and exported with the rest of the document,
pruned with it, and its errors are reported at their paths (`alert_channels[0].url: ...`).
The target (a webhook URL or an address) is a secret: it comes out masked or as `env:NAME`,
like a provider's key, and webhook URLs join the secrets every upstream answer is scrubbed of
(`alert_targets`, a `providers.runtime.secret_sources` entry).
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ValidationError

from providers.config import Importer, Key, Section, Staged, fields_of
from providers.models import Provider, Secret
from providers.runtime import url_secrets

from .models import AlertChannel

log = logging.getLogger(__name__)

ALERT_KEYS: tuple[Key, ...] = (
    Key(("kind",), "kind", "str"),
    Key(("enabled",), "enabled", "bool"),
    Key(("failure_threshold",), "failure_threshold", "int"),
    Key(("success_threshold",), "success_threshold", "int"),
    Key(("reminder_interval_s",), "reminder_interval_s", "int", nullable=True),
    Key(("notify_recovery",), "notify_recovery", "bool"),
)
# url (webhook, slack) or to (email): the target, a secret; providers: names
ALERT_SPECIAL = ("name", "url", "to", "providers")


def stage_channels(importer: Importer, provider_names: set[str]) -> dict[str, Staged]:
    staged: dict[str, Staged] = {}
    existing = {a.name: a for a in AlertChannel.objects.prefetch_related("providers")}
    for path, entry in importer.entries("alert_channels"):
        importer.check_unknown(path, entry, ALERT_KEYS, ALERT_SPECIAL)
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            importer.error(f"{path}.name", "is required")
            continue
        obj = existing.get(name) or AlertChannel(name=name)
        created = obj.pk is None
        changes = importer.assign(path, obj, entry, ALERT_KEYS)
        importer.validate(path, obj, ALERT_KEYS)
        item = Staged(obj, created, changes)
        _stage_target(importer, path, entry, obj, item)
        names = entry.get("providers") or []
        if not isinstance(names, list) or any(n not in provider_names for n in names):
            importer.error(f"{path}.providers", "must be a list of known provider names")
            names = []
        before = sorted(p.name for p in obj.providers.all()) if obj.pk else []
        if sorted(names) != before:
            item.changes["providers"] = [before, sorted(names)]
        item.after_save.append(
            lambda channel=obj, names=names: channel.providers.set(Provider.objects.filter(name__in=names))
        )
        staged[name] = item
    return staged


def _stage_target(importer: Importer, path: str, entry: dict[str, Any], obj: AlertChannel, item: Staged) -> None:
    """The channel's target (`url`, or `to` for email): required for a new channel; a masked
    value keeps the stored one."""
    created = item.created
    target_key = "to" if obj.kind == AlertChannel.Kind.EMAIL else "url"
    raw = entry.get(target_key)
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


SECTION = Section(name="alert_channels", kind="alert_channel", model=AlertChannel,
                  stage=stage_channels, export=export_channels)


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

"""Configuration changes as chart annotations: the audit log's entries that change how a
provider or route behaves (saves, enable/disable, maintenance, breaker overrides), read
for a window so the charts can mark the moment and a history can list it.

Read-only actions (a manual check, a statistics reset) are left out: they change nothing a
chart would show a step in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from providers.models import AuditLog

from .charts import Annotation

__all__ = ["CHANGE_ACTIONS", "Change", "config_changes"]

# action -> how a sentence says it
CHANGE_ACTIONS: dict[str, str] = {
    "create": "created",
    "update": "changed",
    "delete": "deleted",
    "enable": "enabled",
    "disable": "disabled",
    "maintenance_start": "put in maintenance",
    "maintenance_end": "taken out of maintenance",
    "force_open": "forced its breaker open",
    "reset_breaker": "reset its breaker",
    "switch_model": "switched model",
}
OBJECT_TYPES = ("provider", "route", "routetarget", "secret")
LIMIT = 200  # markers per chart: beyond this a chart is all lines


@dataclass(frozen=True)
class Change:
    """One audited configuration change, ready for a chart marker and a history row."""

    at: datetime
    actor: str
    action: str
    object_type: str
    object_name: str
    changes: dict[str, Any]

    @property
    def summary(self) -> str:
        what = CHANGE_ACTIONS.get(self.action, self.action.replace("_", " "))
        fields = ", ".join(sorted(self.changes)) if self.action in ("update", "create") and self.changes else ""
        return f"{self.actor or 'someone'} {what} {self.object_type} {self.object_name}" + (
            f" ({fields})" if fields else ""
        )

    @property
    def annotation(self) -> Annotation:
        css = "note-maintenance" if self.action.startswith("maintenance") else "note-config"
        return Annotation(self.at.timestamp(), self.summary, css)


def config_changes(start: datetime, end: datetime, provider: str | None = None) -> list[Change]:
    """Configuration changes in [start, end], oldest first: of one provider (its own rows)
    or, without `provider`, of every provider and route."""
    rows = AuditLog.objects.filter(at__gte=start, at__lte=end, action__in=list(CHANGE_ACTIONS))
    if provider is not None:
        rows = rows.filter(object_type="provider", object_name=provider)
    else:
        rows = rows.filter(object_type__in=OBJECT_TYPES)
    newest = rows.order_by("-at", "-id").values_list("at", "actor", "action", "object_type", "object_name", "changes")
    return [Change(*row) for row in reversed(newest[:LIMIT])]

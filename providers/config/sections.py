"""Sections of the configuration document that later apps own.

`providers` and `routes` are this app's. An app built on top of it (health's
`alert_channels`) registers its section in its `AppConfig.ready`: how to stage its entries
for import (validated with the importer's helpers, so errors read `alert_channels[0].url: ...`
like any other), how to export them, and the model whose rows `prune` deletes when the
document no longer names them. Sections are imported and exported after the built-in ones,
in the order they were registered, inside the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .schema import BUILT_IN

if TYPE_CHECKING:
    from .importer import Importer, Staged


@dataclass(frozen=True)
class Section:
    name: str  # the document's key, e.g. "alert_channels"
    kind: str  # the noun in the summary and the audit log's object_type, e.g. "alert_channel"
    model: type[Any]  # a model with a unique `name`: its unnamed rows go on `prune`
    # Validate the section's entries (errors through `importer.error`), given the provider
    # names the document may refer to; returns what to save, by name.
    stage: Callable[[Importer, set[str]], dict[str, Staged]]
    export: Callable[[], list[dict[str, Any]]]  # the entries, as `stage` takes them back


_sections: dict[str, Section] = {}


def register_section(section: Section) -> Section:
    """Add `section` to the document (again under the same name: replaced)."""
    if section.name in BUILT_IN:
        raise ValueError(f"{section.name!r} is a built-in section")
    _sections[section.name] = section
    return section


def sections() -> tuple[Section, ...]:
    return tuple(_sections.values())


def top_level() -> tuple[str, ...]:
    """Every section a document may have, in the order they are applied."""
    return (*BUILT_IN, *_sections)

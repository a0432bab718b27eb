"""Configuration as code: `import_config`, `export_config` and `/api/config` share this.

Later apps add their own sections (`register_section`, sections.py) in their AppConfig.ready,
with an entry model built like this app's (schema.py: `ConfigEntry`, `stored`).
"""

from .exporter import dump_yaml, export_config, fields_of
from .importer import ConfigError, Importer, Staged, Summary, apply_config, load_document
from .schema import (
    ConfigEntry,
    Key,
    Name,
    Number,
    PriceConfig,
    ProviderConfig,
    RouteConfig,
    TargetConfig,
    WholeNumber,
    columns,
    stored,
)
from .sections import Section, register_section

__all__ = [
    "ConfigEntry",
    "ConfigError",
    "Importer",
    "Key",
    "Name",
    "Number",
    "PriceConfig",
    "ProviderConfig",
    "RouteConfig",
    "Section",
    "Staged",
    "Summary",
    "TargetConfig",
    "WholeNumber",
    "apply_config",
    "columns",
    "dump_yaml",
    "export_config",
    "fields_of",
    "load_document",
    "register_section",
    "stored",
]

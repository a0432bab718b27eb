"""Configuration as code: `import_config`, `export_config` and `/api/config` share this."""

from .exporter import dump_yaml, export_config
from .importer import ConfigError, Summary, apply_config, load_document

__all__ = ["ConfigError", "Summary", "apply_config", "dump_yaml", "export_config", "load_document"]

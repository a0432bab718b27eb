"""Configuration as code: `import_config`, `export_config` and `/api/config` share this.

Later apps add their own sections (`register_section`, sections.py) in their AppConfig.ready.
"""

from .exporter import dump_yaml, export_config, fields_of
from .importer import ConfigError, Importer, Staged, Summary, apply_config, load_document
from .schema import Key
from .sections import Section, register_section

__all__ = ["ConfigError", "Importer", "Key", "Section", "Staged", "Summary", "apply_config", "dump_yaml",
           "export_config", "fields_of", "load_document", "register_section"]

"""The README stays true: every environment variable the settings read is documented."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_environment_variable_in_settings_is_in_the_readme():
    settings_text = (ROOT / "project" / "settings.py").read_text()
    names = set(re.findall(r'env\.[a-z]+\("([A-Z_]+)"', settings_text))
    assert len(names) > 10
    readme = (ROOT / "README.md").read_text()
    missing = sorted(n for n in names if f"`{n}`" not in readme)
    assert missing == []

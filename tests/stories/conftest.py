"""The five reference stories, end to end against the real server: each module starts one server
(`stage`: `manage.py serve` with its monitor, the story's example file imported, the providers
pointed at fake servers) and drives it as an application and an operator would: the official
SDKs, the HTTP APIs, the events stream, the console's websocket and the CLI. See stage.py."""

from __future__ import annotations

import pytest

from .stage import Template


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """`make run`'s migrate and ensure_admin, once: every story starts from a copy."""
    return Template.make(tmp_path_factory.mktemp("stories"))

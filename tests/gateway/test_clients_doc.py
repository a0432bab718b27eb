"""docs/clients.md runs: every Python block in it is run, as a user would run it (a fresh
interpreter, the URL and key in the environment), against the real server (`manage.py serve`)
routing to a fake OpenAI upstream. A block whose client library is not installed is skipped,
saying which (litellm is not in the test extras)."""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e import server as srv
from tests.fakes.openai import API_KEY as OPENAI_KEY
from tests.fakes.openai import FakeOpenAI

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "clients.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
CLIENTS = {"openai", "anthropic", "langchain_openai", "litellm"}


def imported(code: str) -> list[str]:
    """The top-level modules a block imports."""
    names = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names += [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module.split(".")[0])
    return names


def block_id(code: str) -> str:
    client = next(name for name in imported(code) if name in CLIENTS)
    return f"{client}:{code.strip().splitlines()[-1][:40]}"


@pytest.fixture(scope="module")
def running(tmp_path_factory) -> Iterator[dict[str, str]]:
    tmp = tmp_path_factory.mktemp("clients-doc")
    with FakeOpenAI() as upstream:
        server = srv.prepare(tmp)
        srv.start(server, tmp)
        try:
            key = server.manage("create_api_key", "docs", "--scopes", "gateway,admin").stdout.strip().splitlines()[-1]
            configured = httpx.put(
                server.url + "/api/config",
                headers={"Authorization": f"Bearer {key}"},
                json={
                    "providers": [
                        {"name": "up", "kind": "openai", "base_url": upstream.url + "/v1", "api_key": OPENAI_KEY}
                    ],
                    "routes": [
                        {"name": "chat", "capability": "chat", "targets": [{"provider": "up", "model": "gpt-4o-mini"}]}
                    ],
                },
                timeout=30,
            )
            assert configured.status_code == 200, configured.text
            yield {
                "GATEWAY_URL": server.url,
                "GATEWAY_KEY": key,
                "ANTHROPIC_BASE_URL": server.url,
                "ANTHROPIC_API_KEY": key,
            }
        finally:
            server.stop()


def test_the_doc_has_a_runnable_line_for_every_client_it_names():
    text = DOC.read_text()

    assert {name for code in BLOCKS for name in imported(code)} >= CLIENTS
    assert "ANTHROPIC_BASE_URL=" in text and "claude" in text  # Claude Code's line (a shell one)


@pytest.mark.parametrize("code", BLOCKS, ids=[block_id(code) for code in BLOCKS])
def test_the_block_runs_against_the_real_server(running, code):
    missing = [name for name in imported(code) if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (not in the test extras)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "DJANGO_"))}
    env.update(running)

    ran = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT / "docs"
    )

    assert ran.returncode == 0, ran.stderr[-3000:]
    assert ran.stdout.strip() == "Echo: Hello", ran.stdout

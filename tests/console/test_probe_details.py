"""The provider page's "Server" section: what the latest probe said about the server (Ollama's
version and models, SD WebUI's free RAM and VRAM, loaded models), in human units, and no
section when the probe said nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from health.access import Role
from health.models import ProbeResult
from health.pages import render_provider_push
from health.probe_details import server_rows, size
from providers.models import Provider
from tests.fakes.ollama import FakeOllama
from tests.fakes.sdwebui import FakeSDWebUI

from .conftest import htmx

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ollama() -> Iterator[FakeOllama]:
    with FakeOllama(version="0.12.6") as server:
        yield server


@pytest.fixture
def sdwebui() -> Iterator[FakeSDWebUI]:
    with FakeSDWebUI() as server:
        yield server


@pytest.fixture
async def servers(configure, rt, settings, ollama, sdwebui):
    settings.PROVIDER_URL_ALLOW = ["127.0.0.1"]
    await configure(
        {
            "providers": [
                {"name": "local-llm", "kind": "ollama", "base_url": ollama.url, "models": ["llama3.2:latest"]},
                {"name": "local-sd", "kind": "sdwebui", "base_url": sdwebui.url, "models": ["sd_xl_base_1.0"]},
                {"name": "sim-a", "kind": "simulated", "models": ["sim-small"], "options": {"latency_ms": 5}},
            ]
        }
    )
    await rt.refresh(force=True)
    return rt


@sync_to_async
def probed(name: str, detail: dict[str, Any], *, ok: bool = True, ago_s: int = 0) -> None:
    ProbeResult.objects.create(
        provider=Provider.objects.get(name=name),
        at=timezone.now() - timedelta(seconds=ago_s),
        ok=ok,
        latency_ms=12.0,
        error="" if ok else "failure: HTTP 503",
        detail=detail,
    )


def section(html: str) -> str:
    """The Server section's markup (the test fails if the page has none)."""
    start = html.index('id="server-title"')
    return html[start : html.index("</section>", start)]


async def test_a_check_of_ollama_shows_its_version_and_models_on_the_page(servers, login, users, ollama):
    client = await login(users["operator"])
    checked = await client.post("/providers/local-llm/check", **htmx())
    assert checked.status_code == 200

    page = (await client.get("/providers/local-llm")).content.decode()

    server = section(page)
    assert "<dt>Version</dt><dd>0.12.6</dd>" in server
    assert "<dt>Models available</dt><dd>3</dd>" in server
    assert "<dt>Loaded models</dt><dd>none</dd>" in server  # Ollama has loaded none yet
    assert "As its check reported" in server

    ollama.loaded["llama3.2:latest"] = ollama.models["llama3.2:latest"]  # as a chat would load it
    assert (await client.post("/providers/local-llm/check", **htmx())).status_code == 200
    server = section((await client.get("/providers/local-llm")).content.decode())
    assert "<dt>Loaded models</dt><dd>llama3.2:latest (" in server and " VRAM)</dd>" in server


async def test_a_check_of_sd_webui_shows_free_ram_and_vram_in_gib(servers, login, users):
    client = await login(users["operator"])
    assert (await client.post("/providers/local-sd/check", **htmx())).status_code == 200

    server = section((await client.get("/providers/local-sd")).content.decode())

    assert "<dt>Memory (RAM)</dt><dd>22.4 GiB free</dd>" in server
    assert "<dt>VRAM</dt><dd>6.1 GiB free</dd>" in server


async def test_loaded_models_show_with_their_vram(servers, login, users):
    loaded = [{"name": "llama3.2:1b", "size_vram": 2 * 1024**3}, {"name": "nomic-embed-text", "size_vram": 0}]
    await probed("local-llm", {"version": "0.12.6", "models": 3, "loaded": loaded})
    client = await login(users["staff"])

    server = section((await client.get("/providers/local-llm")).content.decode())

    assert "<dt>Loaded models</dt><dd>llama3.2:1b (2.0 GiB VRAM), nomic-embed-text</dd>" in server


async def test_there_is_no_server_section_when_the_probe_reported_nothing(servers, login, users):
    await probed("sim-a", {})
    await probed("sim-a", {"models": 2}, ok=False)  # a failed check's details do not count
    client = await login(users["staff"])

    page = (await client.get("/providers/sim-a")).content.decode()

    assert 'id="server-sim-a"' in page  # the place a later push fills
    assert 'id="server-title"' not in page


async def test_a_failed_check_keeps_the_last_reported_details(servers, login, users):
    await probed("local-sd", {"ram_free_gb": 20.0, "vram_free_gb": 0.5}, ago_s=60)
    await probed("local-sd", {}, ok=False)
    client = await login(users["staff"])

    server = section((await client.get("/providers/local-sd")).content.decode())

    assert "<dt>VRAM</dt><dd>512 MiB free</dd>" in server


async def test_the_live_push_replaces_the_section_out_of_band(servers):
    await probed("local-llm", {"version": "0.13.0"})

    pushed = await render_provider_push("local-llm", Role(can_view=True))

    assert '<div id="server-local-llm" hx-swap-oob="true">' in pushed
    assert "<dd>0.13.0</dd>" in pushed


def test_rows_are_labelled_in_human_units_and_unknown_scalars_in_words():
    rows = server_rows(
        {
            "version": "1.2",
            "ram_free_gb": 1.5,
            "ram_total_gb": 2048.0,
            "characters_left": 12500,
            "detected_language": "en",
            "nested": {"ignored": True},
            "speech": True,
        }
    )

    assert [(r.label, r.value) for r in rows] == [
        ("Version", "1.2"),
        ("Characters left", "12,500"),
        ("Memory (RAM)", "1.5 GiB free of 2.0 TiB"),
        ("Detected language", "en"),
    ]
    assert server_rows(None) == [] and server_rows({"speech": True, "audio_bytes": 10}) == []
    assert (size(0.25), size(3.0)) == ("256 MiB", "3.0 GiB")

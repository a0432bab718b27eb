"""Discovery of local servers on explicit ports, model listing through adapters, and a pull."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from providers.adapters.ollama import OllamaAdapter
from providers.discovery import DiscoveredServer, discover, list_provider_models
from tests.fakes.base import FakeServer, free_port
from tests.fakes.ollama import FakeOllama
from tests.fakes.sdwebui import FakeSDWebUI


class HtmlEverywhere(FakeServer):
    """A web app that answers 200 with an HTML page on every path."""

    kind = "html"

    def add_routes(self, app: web.Application) -> None:
        async def page(request: web.Request) -> web.Response:
            return web.Response(text="<html><body>Welcome</body></html>", content_type="text/html")

        app.router.add_route("*", "/{tail:.*}", page)


@pytest.fixture(scope="module")
def ollama_server():
    with FakeOllama() as server:
        yield server


@pytest.fixture(scope="module")
def sd_server():
    with FakeSDWebUI() as server:
        yield server


@pytest.fixture(scope="module")
def html_server():
    with HtmlEverywhere() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(ollama_server, sd_server):
    ollama_server.reset()
    sd_server.reset()


async def test_an_ollama_on_a_free_port_is_found_with_its_version_and_models(ollama_server):
    found = await discover(ollama_ports=[ollama_server.port], sdwebui_ports=[], openai_ports=[])

    assert found == [
        DiscoveredServer(
            "ollama", ollama_server.url, "0.12.6", ("llama3.2:latest", "nomic-embed-text:latest", "llava:latest")
        )
    ]
    assert found[0].provider_config().kind == "ollama"
    assert found[0].provider_config().base_url == ollama_server.url
    assert found[0].suggested_name == f"local-ollama-{ollama_server.port}"


async def test_every_kind_is_found_on_its_ports_and_nothing_else_is_mistaken(ollama_server, sd_server, html_server):
    closed = free_port()
    ports = [ollama_server.port, sd_server.port, html_server.port, closed]

    found = await discover(ollama_ports=ports, sdwebui_ports=ports, openai_ports=ports)

    assert [(s.kind, s.base_url) for s in found] == [
        ("ollama", ollama_server.url),
        ("sdwebui", sd_server.url),
    ]
    assert found[1].models == ("v1-5-pruned-emaonly", "sd_xl_base_1.0")
    assert found[1].details["current_model"].startswith("v1-5-pruned-emaonly.safetensors")


async def test_an_ollama_seen_only_on_an_openai_port_is_offered_as_openai_compatible(ollama_server):
    found = await discover(ollama_ports=[], sdwebui_ports=[], openai_ports=[ollama_server.port])

    assert [(s.kind, s.base_url) for s in found] == [("openai", f"{ollama_server.url}/v1")]
    assert "llama3.2:latest" in found[0].models
    assert found[0].details["owned_by"] == ["library"]


async def test_a_hanging_port_is_given_up_after_the_short_timeout(ollama_server):
    ollama_server.fault(path="/api/version", hang=True)
    # the hang never ends: discover returns only because it gave up on the port
    found = await asyncio.wait_for(
        discover(ollama_ports=[ollama_server.port], sdwebui_ports=[], openai_ports=[], timeout_s=0.2), 60
    )

    assert found == []


async def test_a_server_answering_errors_is_not_found(ollama_server):
    ollama_server.fault(path="/api/version", status=500)

    assert await discover(ollama_ports=[ollama_server.port], sdwebui_ports=[], openai_ports=[]) == []


async def test_the_found_servers_models_are_listed_with_capabilities_and_context_window(ollama_server, client):
    [server] = await discover(ollama_ports=[ollama_server.port], sdwebui_ports=[], openai_ports=[])

    models = {m.name: m for m in await list_provider_models(server.provider_config(), client)}

    assert models["llama3.2:latest"].context_window == 131072
    assert models["llama3.2:latest"].capabilities == frozenset({"chat"})
    assert models["nomic-embed-text:latest"].capabilities == frozenset({"embeddings"})
    assert models["nomic-embed-text:latest"].context_window == 2048


async def test_sd_webui_models_are_listed_through_its_adapter(sd_server, client):
    [server] = await discover(ollama_ports=[], sdwebui_ports=[sd_server.port], openai_ports=[])

    models = await list_provider_models(server.provider_config(), client)

    assert [(m.name, m.capabilities) for m in models] == [
        ("v1-5-pruned-emaonly", frozenset({"image"})),
        ("sd_xl_base_1.0", frozenset({"image"})),
    ]


async def test_a_pull_on_the_found_server_streams_progress_to_completion(ollama_server, client):
    [server] = await discover(ollama_ports=[ollama_server.port], sdwebui_ports=[], openai_ports=[])
    adapter = OllamaAdapter(server.provider_config(), client)

    progress = [p async for p in adapter.pull("qwen2.5:0.5b", timeout=5)]

    assert progress[-1] == {"status": "success", "digest": None, "total": None, "completed": None, "percent": 100.0}
    downloading = [p for p in progress if p["digest"]]
    assert downloading[-1]["completed"] == downloading[-1]["total"]
    assert max(p["percent"] for p in downloading) == 100.0
    [again] = await discover(ollama_ports=[ollama_server.port], sdwebui_ports=[], openai_ports=[])
    assert "qwen2.5:0.5b" in again.models

"""Finding AI servers that run nearby, and listing the models a provider offers.

Pure Python and httpx, no Django: the settings layer passes hosts and ports in. `discover()`
probes every (host, port) concurrently with a short timeout and recognises

- Ollama by `GET /api/version` answering `{"version": ...}` (models from `/api/tags`);
- Stable Diffusion WebUI by `GET /sdapi/v1/options` answering an object with
  `sd_model_checkpoint` (models from `/sdapi/v1/sd-models`);
- OpenAI-compatible servers (llama.cpp, vLLM, LM Studio, ...) by `GET /v1/models` answering
  `{"data": [{"id": ...}]}`.

Only an answer with the right JSON shape counts: a port that serves an HTML page, a 404 or
a login wall is not mistaken for a provider. A server found as Ollama or SD WebUI is not
listed again as OpenAI-compatible on the same address. Results are frozen `DiscoveredServer`s
that a caller can offer to register (`provider_config()`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from providers.adapters import ModelInfo, ProviderConfig, adapter_class, urlguard
from providers.adapters.client import build_client

logger = logging.getLogger(__name__)

DEFAULT_HOSTS: tuple[str, ...] = ("127.0.0.1",)
OLLAMA_PORTS: tuple[int, ...] = (11434,)
SDWEBUI_PORTS: tuple[int, ...] = (7860,)
OPENAI_PORTS: tuple[int, ...] = (8080, 8000, 1234)
_DEFAULT_PORT = {"ollama": 11434, "sdwebui": 7860}
_ORDER = {"ollama": 0, "sdwebui": 1, "openai": 2}


@dataclass(frozen=True, slots=True)
class DiscoveredServer:
    """A server that answered like a provider of `kind` ("ollama", "sdwebui" or "openai")."""

    kind: str
    base_url: str  # what the adapter takes: OpenAI-compatible servers end in /v1
    version: str | None = None
    models: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def address(self) -> str:
        parts = urlsplit(self.base_url)
        return f"{parts.hostname}:{parts.port}"

    @property
    def suggested_name(self) -> str:
        """A provider slug: "local-ollama", or "local-openai-8080" when the port says more."""
        parts = urlsplit(self.base_url)
        name = f"local-{self.kind}"
        if parts.port != _DEFAULT_PORT.get(self.kind):
            name += f"-{parts.port}"
        if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            name += "-" + str(parts.hostname).replace(".", "-").replace(":", "-")
        return name

    def provider_config(self, name: str | None = None) -> ProviderConfig:
        return ProviderConfig(name=name or self.suggested_name, kind=self.kind, base_url=self.base_url)


async def discover(
    *,
    hosts: Iterable[str] = DEFAULT_HOSTS,
    ollama_ports: Iterable[int] = OLLAMA_PORTS,
    sdwebui_ports: Iterable[int] = SDWEBUI_PORTS,
    openai_ports: Iterable[int] = OPENAI_PORTS,
    timeout_s: float = 0.5,
    client: httpx.AsyncClient | None = None,
) -> list[DiscoveredServer]:
    """Probe every host on every port list at once; what answered like a provider, sorted."""
    own = client is None
    # The URL guard's provider policy: loopback and private hosts are what discovery is for,
    # metadata and link-local addresses are refused however a host list spells them.
    # Loopback probes must not go via a proxy.
    http = client or build_client("httpx", policy=urlguard.PROVIDER, trust_env=False)
    wait = httpx.Timeout(timeout_s)
    try:
        probes: list[Awaitable[DiscoveredServer | None]] = []
        for host in _allowed_hosts(hosts):
            for port in ollama_ports:
                probes.append(_probe_ollama(http, _origin(host, port), wait))
            for port in sdwebui_ports:
                probes.append(_probe_sdwebui(http, _origin(host, port), wait))
            for port in openai_ports:
                probes.append(_probe_openai(http, _origin(host, port), wait))
        found = [server for server in await asyncio.gather(*probes) if server is not None]
    finally:
        if own:
            await http.aclose()
    specific = {s.address for s in found if s.kind != "openai"}
    unique = {(s.kind, s.base_url): s for s in found if s.kind != "openai" or s.address not in specific}
    return sorted(unique.values(), key=lambda s: (_ORDER.get(s.kind, 9), s.base_url))


async def list_provider_models(
    config: ProviderConfig, client: httpx.AsyncClient, *, timeout_s: float = 10.0
) -> list[ModelInfo]:
    """A provider's models through its own adapter: names, capabilities, context windows."""
    adapter = adapter_class(config.kind)(config, client)
    return await adapter.list_models(timeout=timeout_s)


def _allowed_hosts(hosts: Iterable[str]) -> list[str]:
    """The hosts the guard lets discovery probe, normalised; a refused one is logged and skipped."""
    allowed = []
    for host in hosts:
        try:
            allowed.append(urlguard.current(urlguard.PROVIDER).check_host(str(host)))
        except urlguard.URLRefused as exc:
            logger.warning("discovery: not probing %r: %s", str(host)[:100], exc.message)
    return list(dict.fromkeys(allowed))


def _origin(host: str, port: int) -> str:
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{host}:{port}"


async def _get_json(http: httpx.AsyncClient, url: str, wait: httpx.Timeout) -> Any:
    """The JSON answer of a 200, or None for anything else (refused, timeout, HTML, 4xx)."""
    try:
        response = await http.get(url, timeout=wait, follow_redirects=False)
    except urlguard.URLRefused as exc:  # the name resolved to a refused address
        logger.warning("discovery: %s refused: %s", url, exc.message)
        return None
    except httpx.HTTPError as exc:
        logger.debug("discovery: %s did not answer: %r", url, exc)
        return None
    if response.status_code != 200:
        logger.debug("discovery: %s answered %s", url, response.status_code)
        return None
    try:
        return response.json()
    except ValueError:
        logger.debug("discovery: %s answered something that is not JSON", url)
        return None


async def _probe_ollama(http: httpx.AsyncClient, origin: str, wait: httpx.Timeout) -> DiscoveredServer | None:
    version = await _get_json(http, f"{origin}/api/version", wait)
    if not isinstance(version, dict) or not isinstance(version.get("version"), str):
        return None
    tags = await _get_json(http, f"{origin}/api/tags", wait)
    entries = tags.get("models") if isinstance(tags, dict) else None
    models = tuple(str(m.get("model") or m.get("name")) for m in entries or [] if isinstance(m, dict))
    return DiscoveredServer("ollama", origin, version["version"], models)


async def _probe_sdwebui(http: httpx.AsyncClient, origin: str, wait: httpx.Timeout) -> DiscoveredServer | None:
    options = await _get_json(http, f"{origin}/sdapi/v1/options", wait)
    if not isinstance(options, dict) or "sd_model_checkpoint" not in options:
        return None
    checkpoints = await _get_json(http, f"{origin}/sdapi/v1/sd-models", wait)
    models = (
        tuple(str(c.get("model_name") or c.get("title")) for c in checkpoints or [] if isinstance(c, dict))
        if isinstance(checkpoints, list)
        else ()
    )
    return DiscoveredServer("sdwebui", origin, None, models, {"current_model": options.get("sd_model_checkpoint")})


async def _probe_openai(http: httpx.AsyncClient, origin: str, wait: httpx.Timeout) -> DiscoveredServer | None:
    listed = await _get_json(http, f"{origin}/v1/models", wait)
    data = listed.get("data") if isinstance(listed, dict) else None
    if not isinstance(data, list) or not all(isinstance(m, dict) and isinstance(m.get("id"), str) for m in data):
        return None
    owners = sorted({str(m["owned_by"]) for m in data if m.get("owned_by")})
    return DiscoveredServer("openai", f"{origin}/v1", None, tuple(m["id"] for m in data), {"owned_by": owners})


async def discover_configured(timeout_s: float = 0.5) -> list[DiscoveredServer]:
    """`discover` on the hosts and ports of the DISCOVERY_* settings (needs Django)."""
    from django.conf import settings

    return await discover(
        hosts=settings.DISCOVERY_HOSTS,
        ollama_ports=settings.DISCOVERY_OLLAMA_PORTS,
        sdwebui_ports=settings.DISCOVERY_SDWEBUI_PORTS,
        openai_ports=settings.DISCOVERY_OPENAI_PORTS,
        timeout_s=timeout_s,
    )


def register(server: DiscoveredServer, *, actor: str, name: str | None = None) -> tuple[str, bool]:
    """Create a provider for a discovered server (unless one has its URL); returns (name, created)."""
    from providers.models import AuditLog, Provider

    existing = Provider.objects.filter(base_url=server.base_url).first()
    if existing is not None:
        return existing.name, False
    name = name or server.suggested_name
    provider = Provider(
        name=name, kind=server.kind, base_url=server.base_url, discovered=True, configured_models=list(server.models)
    )
    provider.full_clean()
    provider.save()
    AuditLog.objects.create(
        actor=actor,
        action="create",
        object_type="provider",
        object_name=name,
        changes={"discovered": server.base_url, "models": list(server.models)},
    )
    return name, True

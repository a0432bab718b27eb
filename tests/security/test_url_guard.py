"""The one outbound-URL guard (providers/adapters/urlguard.py), spelling class by spelling class:
a host is judged as the HTTP client and the resolver read it, and what a name resolves to is
judged at connect time, on both transports, for provider URLs, alert webhooks and discovery."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import httpx
import pytest
from aiohttp import web
from django.core.exceptions import ValidationError

from health.transports import DeliveryError, Notice, webhook
from providers.adapters import urlguard
from providers.adapters.client import build_client
from providers.discovery import discover
from providers.validation import validate_provider_url
from tests.fakes.base import FakeServer
from tests.fakes.ollama import FakeOllama
from tests.fakes.webhook import FakeWebhook

# 169.254.169.254 (the metadata address) in every spelling a client or a resolver accepts.
METADATA_SPELLINGS = {
    "ideographic full stops": "http://169。254。169。254/latest/meta-data/",
    "fullwidth full stops": "http://169．254．169．254/",
    "halfwidth ideographic full stops": "http://169｡254｡169｡254/",
    "fullwidth digits": "http://１６９．２５４．１６９．２５４/",
    "decimal": "http://2852039166/",
    "hex": "http://0xa9fea9fe/",
    "dotted hex": "http://0xa9.0xfe.0xa9.0xfe/",
    "octal": "http://0251.0376.0251.0376/",
    "short form": "http://169.254.43518/",
    "trailing dot": "http://169.254.169.254./",
    "two trailing dots": "http://169.254.169.254../",
    "percent-encoded host": "http://%31%36%39.254.169.254/",
    "percent-encoded dots": "http://169%2e254%2e169%2e254/",
    "ipv4-mapped ipv6": "http://[::ffff:169.254.169.254]/",
    "ipv4-mapped ipv6 in hex": "http://[::ffff:a9fe:a9fe]/",
    "nat64": "http://[64:ff9b::a9fe:a9fe]/",
    "ipv4-compatible ipv6": "http://[::169.254.169.254]/",
    "userinfo in front": "http://user:pw@169.254.169.254/",
    "uppercase name": "http://METADATA.Google.Internal/",
    "name with trailing dot": "http://metadata.google.internal./",
    "circled letter name": "http://ⓜetadata.google.internal/",
    "zero-width space in name": "http://metadata\u200b.google.internal/",
    "fullwidth name": "http://ｍｅｔａｄａｔａ.google.internal/",
    "link-local ipv6 with zone id": "http://[fe80::a9fe:a9fe%25eth0]/",
    "aws ipv6 metadata": "http://[FD00:EC2::254]/",
}


@pytest.mark.parametrize("url", METADATA_SPELLINGS.values(), ids=METADATA_SPELLINGS.keys())
def test_every_spelling_of_the_metadata_address_is_refused_as_a_provider_url(url):
    with pytest.raises(ValidationError):
        validate_provider_url(url)
    with pytest.raises(urlguard.URLRefused):
        urlguard.Policy.provider().check_url(url)


@pytest.mark.parametrize("url", METADATA_SPELLINGS.values(), ids=METADATA_SPELLINGS.keys())
def test_every_spelling_of_the_metadata_address_is_refused_as_a_fetched_url(url):
    with pytest.raises(urlguard.URLRefused):
        urlguard.Policy.fetch().check_url(url)


@pytest.mark.parametrize(
    "host, normal",
    [
        ("169。254。169。254", "169.254.169.254"),
        ("１２７．０．０．１", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("LOCALHOST.", "localhost"),
        ("[::FFFF:7F00:1]", "::ffff:7f00:1"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("%6c%6f%63%61%6c%68%6f%73%74", "localhost"),
        ("my_service", "my_service"),
    ],
)
def test_a_host_is_normalised_the_way_the_resolver_reads_it(host, normal):
    assert urlguard.normalise_host(host) == normal


@pytest.mark.parametrize("host", ["a..b", "%zz", "x%2541", "[::zz]", "exa mple.com", "", "ex/ample"])
def test_a_host_that_cannot_be_normalised_is_refused(host):
    with pytest.raises(urlguard.URLRefused):
        urlguard.normalise_host(host)


LOOPBACK_AND_PRIVATE = [
    "http://127.0.0.1:11434",
    "http://localhost:8080/v1",
    "http://[::1]:8000/v1",
    "http://127.1:8080",
    "http://0x7f000001/",
    "http://[::ffff:127.0.0.1]/",
    "http://10.0.0.5:8000/v1",
    "http://192.168.1.20:7860",
    "http://172.16.0.1/",
    "http://[fd12::5]/",
    "http://100.64.0.1/",
    "http://127。0。0。1:11434/",
]


@pytest.mark.parametrize("url", LOOPBACK_AND_PRIVATE)
def test_loopback_and_private_hosts_are_fine_for_providers_and_refused_for_fetching(url):
    urlguard.Policy.provider().check_url(url)
    with pytest.raises(urlguard.URLRefused, match="FETCH_URL_ALLOW"):
        urlguard.Policy.fetch().check_url(url)


def test_fetch_url_allow_opens_chosen_hosts_names_and_networks_from_the_settings(settings):
    assert urlguard.current("fetch").allow == ()
    settings.FETCH_URL_ALLOW = ["10.1.0.0/16", "images.internal", "127.0.0.1"]
    fetch = urlguard.current("fetch")
    for url in ("http://10.1.2.3/a.png", "http://cdn.images.internal/a.png", "http://2130706433/a.png"):
        fetch.check_url(url)
    with pytest.raises(urlguard.URLRefused):
        fetch.check_url("http://10.2.0.1/a.png")
    fetch.check_resolved("cdn.images.internal", ["10.9.9.9"])  # a name opened covers its addresses
    with pytest.raises(urlguard.URLRefused):
        fetch.check_resolved("elsewhere.example", ["10.9.9.9"])


def test_provider_url_deny_and_allow_reach_the_running_guard(settings):
    settings.PROVIDER_URL_DENY = ["10.0.0.0/8"]
    with pytest.raises(urlguard.URLRefused, match="not allowed"):
        urlguard.current("provider").check_resolved("gpu.lan", ["10.0.0.7"])
    settings.PROVIDER_URL_ALLOW = ["169.254.170.2"]
    urlguard.current("provider").check_url("http://169.254.170.2/v2/credentials")


def test_a_verdict_is_the_same_every_time_it_is_asked_and_follows_the_settings(settings):
    hosts = ("gpu.lan", "10.0.0.7", "api.example.com", "169.254.169.254", "metadata.google.internal")
    first = urlguard.current("provider")

    def verdicts(policy):
        found = []
        for host in hosts:
            try:
                found.append(policy.check_host(host))
            except urlguard.URLRefused as refused:
                found.append(f"refused: {refused}")
        return found

    before = verdicts(first)
    assert before == verdicts(first) == verdicts(first)  # asked again: remembered passes, refusals anew
    assert before[:3] == ["gpu.lan", "10.0.0.7", "api.example.com"] and before[3].startswith("refused")
    settings.PROVIDER_URL_DENY = ["gpu.lan", "10.0.0.0/8"]  # a new configuration: nothing passed is kept
    after = verdicts(urlguard.current("provider"))
    assert after[0].startswith("refused") and after[1].startswith("refused") and after[2] == "api.example.com"
    assert verdicts(first) == before  # the old policy still judges as it did


# -- at connect time: what a name resolves to -----------------------------------------------------

DNS = {
    "rebind.test": ["169.254.169.254"],
    "mixed.test": ["127.0.0.1", "169.254.169.254"],
    "v6-metadata.test": ["fd00:ec2::254"],
    "mapped.test": ["::ffff:169.254.169.254"],
    "home.test": ["127.0.0.1"],
}


async def fake_dns(host: str, port: int) -> list[str]:
    try:
        return DNS[host]
    except KeyError:
        raise socket.gaierror(socket.EAI_NONAME, "unknown name") from None


@pytest.fixture(scope="module")
def ollama():
    with FakeOllama() as server:
        yield server


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
@pytest.mark.parametrize("name", ["rebind.test", "mixed.test", "v6-metadata.test", "mapped.test"])
async def test_a_name_that_resolves_to_a_refused_address_is_refused_before_connecting(transport, name, ollama):
    async with build_client(transport, resolve=fake_dns) as client:
        with pytest.raises(urlguard.URLRefused, match="resolves to"):
            await client.get(f"http://{name}:{ollama.port}/api/version", timeout=5)


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_a_provider_on_a_name_that_resolves_to_loopback_still_works(transport, ollama):
    async with build_client(transport, resolve=fake_dns) as client:
        response = await client.get(f"http://home.test:{ollama.port}/api/version", timeout=5)
        assert response.status_code == 200 and "version" in response.json()
        # ... while the same name is refused to the sibling that fetches callers' URLs
        with pytest.raises(urlguard.URLRefused, match="resolves to a loopback"):
            await client.fetcher().get(f"http://home.test:{ollama.port}/api/version", timeout=5)


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
@pytest.mark.parametrize(
    "url", ["http://[::ffff:169.254.169.254]/", "http://0xa9fea9fe/", "http://169。254。169。254/"]
)
async def test_the_client_refuses_a_literal_refused_address_in_any_spelling(transport, url):
    async with build_client(transport, resolve=fake_dns) as client:
        with pytest.raises(urlguard.URLRefused):
            await client.get(url, timeout=5)


class Redirector(FakeServer):
    """Answers every GET with a redirect to the metadata address."""

    kind = "redirector"

    def add_routes(self, app: web.Application) -> None:
        async def bounce(request: web.Request) -> web.Response:
            raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")

        app.router.add_get("/{tail:.*}", bounce)


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_a_followed_redirect_to_a_refused_address_is_refused(transport):
    with Redirector() as server:
        async with build_client(transport) as client:
            with pytest.raises(urlguard.URLRefused):
                await client.get(f"{server.url}/start", timeout=5, follow_redirects=True)
    assert [r.path for r in server.requests] == ["/start"]


# -- alerts and discovery --------------------------------------------------------------------------

NOTICE = Notice(
    event="test",
    channel="ops",
    provider="",
    status="",
    breaker="",
    reason="a test",
    at=datetime(2026, 3, 1, tzinfo=UTC),
)


@pytest.fixture
def resolver(monkeypatch):
    """The system resolver, answering for the names in DNS."""
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if isinstance(host, str) and host in DNS:
            return [
                (
                    socket.AF_INET6 if ":" in a else socket.AF_INET,
                    socket.SOCK_STREAM,
                    6,
                    "",
                    (a, int(port or 0)) if ":" not in a else (a, int(port or 0), 0, 0),
                )
                for a in DNS[host]
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def receiver():
    with FakeWebhook() as server:
        yield server


async def test_an_alert_webhook_on_a_name_that_resolves_to_metadata_is_a_permanent_failure(resolver, receiver):
    async with httpx.AsyncClient() as client:
        with pytest.raises(DeliveryError) as info:
            await webhook.send(NOTICE, f"http://rebind.test:{receiver.port}/hook", client)
    assert info.value.permanent and "invalid address" in info.value.message
    assert receiver.requests == []


@pytest.mark.parametrize("url", ["http://169。254。169。254/hook", "http://[::ffff:a9fe:a9fe]/hook"])
async def test_an_alert_webhook_spelling_the_metadata_address_is_refused(url):
    async with httpx.AsyncClient() as client:
        with pytest.raises(DeliveryError) as info:
            await webhook.send(NOTICE, url, client)
    assert info.value.permanent


async def test_an_alert_webhook_on_a_name_goes_to_the_address_that_was_checked(resolver, receiver):
    async with httpx.AsyncClient() as client:
        summary = await webhook.send(NOTICE, f"http://home.test:{receiver.port}/hook", client)
    assert "HTTP 200" in summary
    [request] = receiver.requests
    assert request.path == "/hook" and request.headers["Host"] == f"home.test:{receiver.port}"


async def test_discovery_never_probes_hosts_the_guard_refuses():
    probed: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        probed.append(request.url.host)
        return httpx.Response(404)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        await discover(
            hosts=["169。254。169。254", "0xa9fea9fe", "[::ffff:a9fe:a9fe]", "127.0.0.1"],
            ollama_ports=[11434],
            sdwebui_ports=[],
            openai_ports=[],
            timeout_s=2,
            client=client,
        )
    assert set(probed) == {"127.0.0.1"}


async def test_discovery_through_a_name_that_resolves_to_metadata_finds_nothing(ollama):
    async with build_client("httpx", resolve=fake_dns) as client:
        found = await discover(
            hosts=["rebind.test", "home.test"],
            ollama_ports=[ollama.port],
            sdwebui_ports=[],
            openai_ports=[],
            timeout_s=2,
            client=client,
        )
    assert [server.base_url for server in found] == [f"http://home.test:{ollama.port}"]

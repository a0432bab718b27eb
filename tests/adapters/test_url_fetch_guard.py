"""URLs the gateway downloads for someone else and identifiers it puts into paths.

A caller's image_url (fetched for an Ollama target) is refused for loopback, private,
link-local and metadata addresses however spelt, and when its name resolves to one; the
caller gets a 400 and the provider's breaker never hears of it, not even for a closed port.
An upstream's output URL (Replicate, stock photos) goes through the same guard, and a refused
one is that provider's failure. Voice ids, model owners and prompts cannot change the path.
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator

import httpx
import pytest
from aiohttp import web
from asgiref.sync import sync_to_async

from providers.adapters.base import ProviderConfig
from providers.adapters.client import build_client
from providers.adapters.elevenlabs import ElevenLabsAdapter
from providers.adapters.ollama import OllamaAdapter
from providers.adapters.pollinations import PollinationsAdapter
from providers.adapters.replicate import ReplicateAdapter
from providers.adapters.stock import StockPhotoAdapter
from providers.config import apply_config
from providers.engine.errors import UpstreamError
from providers.engine.outcome import Outcome
from tests.conftest import auth
from tests.fakes.base import FakeServer, free_port
from tests.fakes.elevenlabs import FakeElevenLabs
from tests.fakes.ollama import FakeOllama
from tests.fakes.pollinations import FakePollinations
from tests.fakes.replicate import API_TOKEN, FakeReplicate
from tests.fakes.stock import API_KEY as PEXELS_KEY
from tests.fakes.stock import FakeStockPhotos

from .expect import raised

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGBgAAAABQABpfZFQAAAAABJRU5ErkJggg=="
)


class ImageHost(FakeServer):
    """Serves one PNG at /cat.png and never answers at /hang."""

    kind = "images"

    def add_routes(self, app: web.Application) -> None:
        async def cat(request: web.Request) -> web.Response:
            return web.Response(body=PNG, content_type="image/png")

        async def hang(request: web.Request) -> web.Response:
            await __import__("asyncio").Event().wait()
            raise AssertionError("unreachable")

        app.router.add_get("/cat.png", cat)
        app.router.add_get("/hang", hang)


@pytest.fixture(scope="module")
def images() -> Iterator[ImageHost]:
    with ImageHost() as server:
        yield server


@pytest.fixture(scope="module")
def ollama() -> Iterator[FakeOllama]:
    with FakeOllama() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_fakes(images, ollama):
    images.reset()
    ollama.reset()


def looking_at(url: str) -> dict:
    return {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": url}},
                ],
            }
        ]
    }


def error_of(exc: BaseException) -> dict:
    assert isinstance(exc, UpstreamError), exc
    return json.loads(exc.body)["error"]


def chats(ollama: FakeOllama) -> list:
    return ollama.requests_to("/api/chat")


# -- caller URLs, at the adapter --------------------------------------------------------------------

REFUSED_CALLER_URLS = {
    "loopback": "http://127.0.0.1:{port}/cat.png",
    "localhost": "http://localhost:{port}/cat.png",
    "loopback in decimal": "http://2130706433:{port}/cat.png",
    "loopback in hex": "http://0x7f000001:{port}/cat.png",
    "loopback short form": "http://127.1:{port}/cat.png",
    "loopback with ideographic dots": "http://127。0。0。1:{port}/cat.png",
    "loopback with fullwidth digits": "http://１２７．０．０．１:{port}/cat.png",
    "loopback uppercase localhost with trailing dot": "http://LOCALHOST.:{port}/cat.png",
    "loopback percent-encoded": "http://%31%32%37.0.0.1:{port}/cat.png",
    "ipv6 loopback": "http://[::1]:{port}/cat.png",
    "ipv4-mapped loopback": "http://[::ffff:127.0.0.1]:{port}/cat.png",
    "nat64 loopback": "http://[64:ff9b::7f00:1]:{port}/cat.png",
    "rfc1918": "http://10.0.0.1/cat.png",
    "rfc1918 192.168": "http://192.168.1.1/cat.png",
    "cgnat": "http://100.64.0.1/cat.png",
    "unique local ipv6": "http://[fd00::1]/cat.png",
    "link-local with zone id": "http://[fe80::1%25lo]/cat.png",
    "metadata": "http://169.254.169.254/latest/meta-data/",
    "metadata by name": "http://metadata.google.internal/computeMetadata/v1/",
    "unspecified": "http://0.0.0.0:{port}/cat.png",
}


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
@pytest.mark.parametrize("url", REFUSED_CALLER_URLS.values(), ids=REFUSED_CALLER_URLS.keys())
async def test_a_caller_image_url_on_an_internal_address_is_a_400_and_never_fetched(transport, url, images, ollama):
    async with build_client(transport) as http:
        adapter = OllamaAdapter(ProviderConfig(name="o", kind="ollama", base_url=ollama.url), http)
        error = await raised(adapter.chat(looking_at(url.format(port=images.port)), model="llava", timeout=5))
    assert error.outcome is Outcome.CALLER_ERROR and error.status == 400
    assert error_of(error)["type"] == "invalid_request_error" and error_of(error)["code"] == "url_refused"
    assert images.requests == [] and chats(ollama) == []


async def fake_dns(host: str, port: int) -> list[str]:
    if host == "rebind.test":
        return ["127.0.0.1"]
    raise socket.gaierror(socket.EAI_NONAME, "unknown name")


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_refused_by_dns_closed_and_silent_all_get_one_message(transport, images, ollama, settings):
    """No port or DNS oracle: a name resolving to loopback, a closed port and a host that never
    answers cannot be told apart by the caller."""
    async with build_client(transport, resolve=fake_dns) as http:
        adapter = OllamaAdapter(ProviderConfig(name="o", kind="ollama", base_url=ollama.url), http)
        by_dns = await raised(
            adapter.chat(looking_at(f"http://rebind.test:{images.port}/cat.png"), model="llava", timeout=5)
        )
        settings.FETCH_URL_ALLOW = ["127.0.0.1"]
        closed = await raised(
            adapter.chat(looking_at(f"http://127.0.0.1:{free_port()}/cat.png"), model="llava", timeout=5)
        )
        silent = await raised(adapter.chat(looking_at(f"{images.url}/hang"), model="llava", timeout=0.4))
    for error in (by_dns, closed, silent):
        assert error.outcome is Outcome.CALLER_ERROR and error.status == 400
    assert error_of(by_dns) == error_of(closed) == error_of(silent)
    assert error_of(by_dns)["code"] == "url_not_fetched"
    assert [r.path for r in images.requests] == ["/hang"] and chats(ollama) == []


async def test_fetch_url_allow_opens_a_refused_image_host_and_a_data_url_still_works(images, ollama, settings):
    async with build_client("aiohttp") as http:
        adapter = OllamaAdapter(ProviderConfig(name="o", kind="ollama", base_url=ollama.url), http)
        refused = await raised(adapter.chat(looking_at(f"{images.url}/cat.png"), model="llava", timeout=5))
        assert error_of(refused)["code"] == "url_refused" and images.requests == []
        settings.FETCH_URL_ALLOW = ["127.0.0.1"]
        await adapter.chat(looking_at(f"{images.url}/cat.png"), model="llava", timeout=5)
        data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
        await adapter.chat(looking_at(data_url), model="llava", timeout=5)
    sent = [r.json()["messages"][0]["images"] for r in chats(ollama)]
    assert sent == [[base64.b64encode(PNG).decode()]] * 2


async def test_with_a_plain_client_a_caller_url_is_still_judged(client, images, ollama):
    adapter = OllamaAdapter(ProviderConfig(name="o", kind="ollama", base_url=ollama.url), client)
    error = await raised(adapter.chat(looking_at(f"{images.url}/cat.png"), model="llava", timeout=5))
    assert error.outcome is Outcome.CALLER_ERROR and error_of(error)["code"] == "url_refused"
    assert images.requests == []


# -- caller URLs, through the gateway --------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_through_the_gateway_a_refused_or_dead_image_url_is_a_400_and_the_breaker_stays_closed(
    gateway, key, ollama, images, settings
):
    await sync_to_async(apply_config)(
        {
            "providers": [
                {
                    "name": "local-ollama",
                    "kind": "ollama",
                    "base_url": ollama.url,
                    "timeout_s": 2,
                    "breaker": {"consecutive_failures": 2, "min_calls": 2},
                }
            ],
            "routes": [
                {"name": "vision", "capability": "chat", "targets": [{"provider": "local-ollama", "model": "llava"}]}
            ],
        },
        actor="test",
        prune=True,
    )
    urls = [f"{images.url}/cat.png", "http://169。254。169。254/latest/meta-data/", "http://[::ffff:7f00:1]/"]
    for url in urls * 2:
        response = await gateway.post(
            "/v1/chat/completions", json={"model": "vision", **looking_at(url)}, headers=auth(key)
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "url_refused"
    settings.FETCH_URL_ALLOW = ["127.0.0.1"]  # now a closed port is reachable in principle
    for _ in range(4):
        response = await gateway.post(
            "/v1/chat/completions",
            headers=auth(key),
            json={"model": "vision", **looking_at(f"http://127.0.0.1:{free_port()}/cat.png")},
        )
        assert response.status_code == 400 and response.json()["error"]["code"] == "url_not_fetched"
    breaker = next(
        b
        for b in (await gateway.get("/api/breakers", headers=auth(key))).json()["breakers"]
        if b["name"] == "local-ollama"
    )
    assert breaker["state"] == "closed"
    assert images.requests == [] and chats(ollama) == []
    ok = await gateway.post(
        "/v1/chat/completions", json={"model": "vision", **looking_at(f"{images.url}/cat.png")}, headers=auth(key)
    )
    assert ok.status_code == 200 and len(chats(ollama)) == 1


# -- upstream URLs ---------------------------------------------------------------------------------


@pytest.fixture
def replicate() -> Iterator[FakeReplicate]:
    with FakeReplicate() as server:
        yield server


def replicate_at(base_url: str, http: httpx.AsyncClient) -> ReplicateAdapter:
    return ReplicateAdapter(
        ProviderConfig(
            name="r",
            kind="replicate",
            base_url=base_url,
            api_key=API_TOKEN,
            options={"poll_interval_s": 0.01, "prefer_wait": False},
        ),
        http,
    )


B64 = {"prompt": "a cat", "response_format": "b64_json"}
FLUX = "black-forest-labs/flux-schnell"


async def test_an_output_on_the_providers_own_origin_is_downloaded(client, replicate):
    result = await replicate_at(replicate.url, client).images(B64, model=FLUX, timeout=10)
    assert base64.b64decode(result.data["data"][0]["b64_json"])[:4] == b"\x89PNG"


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_an_output_url_on_an_internal_address_elsewhere_is_the_providers_failure(transport, replicate):
    # The provider is reached as "localhost", its outputs name 127.0.0.1: another origin, on loopback.
    async with build_client(transport) as http:
        error = await raised(
            replicate_at(f"http://localhost:{replicate.port}", http).images(B64, model=FLUX, timeout=10)
        )
    assert isinstance(error, UpstreamError)
    assert error.outcome is Outcome.FAILURE and error.classification.reason == "unsafe_output_url"
    assert replicate.requests_to("/delivery") == []


async def test_fetch_url_allow_opens_an_upstream_output_host(client, replicate, settings):
    adapter = replicate_at(f"http://localhost:{replicate.port}", client)
    assert (await raised(adapter.images(B64, model=FLUX, timeout=10))).classification.reason == "unsafe_output_url"
    settings.FETCH_URL_ALLOW = ["127.0.0.1"]
    result = await adapter.images(B64, model=FLUX, timeout=10)
    assert base64.b64decode(result.data["data"][0]["b64_json"])[:4] == b"\x89PNG"


async def test_a_prediction_answering_a_metadata_url_is_a_failure_and_it_is_never_fetched():
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(
            201, json={"id": "p1", "status": "succeeded", "output": ["http://169。254。169。254/latest/meta-data/iam"]}
        )

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        error = await raised(replicate_at("https://api.replicate.com", http).images(B64, model=FLUX, timeout=10))
    assert isinstance(error, UpstreamError) and error.outcome is Outcome.FAILURE
    assert error.classification.reason == "unsafe_output_url"
    assert seen == ["https://api.replicate.com/v1/models/black-forest-labs/flux-schnell/predictions"]


async def test_a_prediction_id_that_would_change_the_poll_path_is_a_failure():
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(201, json={"id": "../../account", "status": "starting"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        error = await raised(
            replicate_at("https://api.replicate.com", http).images({"prompt": "x"}, model=FLUX, timeout=10)
        )
    assert isinstance(error, UpstreamError) and error.outcome is Outcome.FAILURE
    assert seen == ["/v1/models/black-forest-labs/flux-schnell/predictions"]


async def test_a_stock_photo_url_on_an_internal_address_elsewhere_is_the_providers_failure(client):
    with FakeStockPhotos() as stock:
        adapter = StockPhotoAdapter(
            ProviderConfig(name="s", kind="stock", base_url=f"http://localhost:{stock.port}", api_key=PEXELS_KEY),
            client,
        )
        error = await raised(adapter.images({"prompt": "lake", "response_format": "b64_json"}, model="", timeout=5))
        photos = [r for r in stock.requests if r.path.startswith("/photos/")]
    assert isinstance(error, UpstreamError) and error.classification.reason == "unsafe_output_url"
    assert photos == []


# -- identifiers in paths --------------------------------------------------------------------------

BAD_SEGMENTS = ["../../v1/user", "..", ".", "a/b", "x?y=1", "x#y", "%2e%2e", "..%2Fv1%2Fuser", "a\\b", " "]


@pytest.mark.parametrize("voice", BAD_SEGMENTS)
async def test_an_elevenlabs_voice_that_is_not_an_identifier_is_a_400_and_sends_nothing(client, voice):
    with FakeElevenLabs() as fake:
        adapter = ElevenLabsAdapter(
            ProviderConfig(name="e", kind="elevenlabs", base_url=fake.url, api_key="el-test-key"), client
        )
        error = await raised(adapter.speech({"input": "hello", "voice": voice}, model="", timeout=5))
        sent = list(fake.requests)
    assert isinstance(error, UpstreamError) and error.outcome is Outcome.CALLER_ERROR and error.status == 400
    assert error_of(error)["code"] == "invalid_identifier"
    assert sent == []


async def test_a_voice_mapped_by_the_operator_is_checked_too(client):
    with FakeElevenLabs() as fake:
        adapter = ElevenLabsAdapter(
            ProviderConfig(
                name="e", kind="elevenlabs", base_url=fake.url, api_key="k", options={"voices": {"alloy": "../v1/user"}}
            ),
            client,
        )
        error = await raised(adapter.speech({"input": "hello", "voice": "alloy"}, model="", timeout=5))
        assert fake.requests == []
    assert error_of(error)["code"] == "invalid_identifier"


@pytest.mark.parametrize(
    "model", ["../black-forest-labs", "owner/..", "owner/x?y", "owner/x#y", "owner/%2e%2e", "./flux", "owner/x%2F..%2F"]
)
async def test_a_replicate_model_that_would_change_the_path_is_a_400(model):
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(500)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        error = await raised(
            replicate_at("https://api.replicate.com", http).images({"prompt": "x"}, model=model, timeout=5)
        )
    assert isinstance(error, UpstreamError) and error.outcome is Outcome.CALLER_ERROR and error.status == 400
    assert seen == []


@pytest.mark.parametrize("prompt", ["..", ".", " .. "])
async def test_a_pollinations_prompt_that_is_a_dot_segment_is_a_400(client, prompt):
    with FakePollinations() as fake:
        adapter = PollinationsAdapter(ProviderConfig(name="p", kind="pollinations", base_url=fake.url), client)
        error = await raised(adapter.images({"prompt": prompt}, model="", timeout=5))
        assert fake.requests == []
    assert isinstance(error, UpstreamError) and error.outcome is Outcome.CALLER_ERROR and error.status == 400

"""Every way the shared client reads an answer applies the same guards: decoded, within the size
limit (on the wire and decoded), scrubbed. The ways are the direct path (a whole answer on the
aiohttp transport, whole or streamed: `providers/adapters/answer.py`), and httpx's own
machinery on either transport, whole or streamed (`send(stream=True)`). A real server sends
the answers."""

from __future__ import annotations

import gzip
import secrets
import socket
import tracemalloc
import zlib

import httpx
import pytest
import zstandard
from aiohttp import web
from aiohttp.test_utils import TestServer

from providers.adapters import scrub
from providers.adapters.answer import DirectResponse
from providers.adapters.client import build_client
from providers.adapters.scrub import REDACTED
from providers.engine import UpstreamError, classify_exception

TAG = secrets.token_hex(4)
KEY = f"sk-{TAG}answerkey0123456789"
LIMIT = 256 * 1024

COMPRESS = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
}

# transport, how the answer is read: whole (`post`), streamed the httpx way (`send(stream=True)`),
# streamed as the adapters open a stream (`open`: the direct path on the aiohttp transport)
WAYS = [(transport, way) for transport in ("aiohttp", "httpx") for way in ("whole", "stream", "open")]


@pytest.fixture
async def upstream():
    """A server that answers each path with what the test put under it:
    (status, headers, body, reason); a body given as a list is sent chunked, piece by piece."""
    answers: dict[str, tuple[int, dict[str, str], bytes | list[bytes], str | None]] = {}

    async def answer(request: web.Request) -> web.StreamResponse:
        status, headers, body, reason = answers[request.path]
        if isinstance(body, list):
            response = web.StreamResponse(status=status, reason=reason, headers=headers)
            response.enable_chunked_encoding()
            await response.prepare(request)
            for piece in body:
                await response.write(piece)
            await response.write_eof()
            return response
        return web.Response(status=status, reason=reason, headers=headers, body=body)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    async with TestServer(app, host="127.0.0.1") as server:
        server.answers = answers  # type: ignore[attr-defined]
        yield server


def serve(server, path: str, body, *, status: int = 200, headers=None, reason: str | None = None) -> str:
    server.answers[path] = (status, headers or {}, body, reason)
    return str(server.make_url(path))


async def read(transport: str, way: str, url: str) -> httpx.Response:
    async with build_client(transport, max_response_bytes=LIMIT) as client:
        if way == "whole":
            # an httpx.URL, as the adapters give it (the request-equivalence test gives a str)
            response = await client.post(httpx.URL(url), json={"q": 1}, timeout=10)
            # the direct path takes exactly the aiohttp transport's whole answers
            assert isinstance(response, DirectResponse) == (transport == "aiohttp")
            return response
        if way == "open":
            response = await client.open("POST", httpx.URL(url), json={"q": 1}, timeout=10)
            assert isinstance(response, DirectResponse) == (transport == "aiohttp")
        else:
            response = await client.send(client.build_request("POST", url, json={"q": 1}, timeout=10), stream=True)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response


@pytest.fixture
def held():
    scrub.use_secrets("tests-answer", [KEY])
    yield
    scrub.forget_secrets("tests-answer")


@pytest.mark.parametrize(("transport", "way"), WAYS)
@pytest.mark.parametrize("coding", list(COMPRESS))
async def test_a_compressed_answer_arrives_decoded_and_framed_by_its_end(upstream, transport, way, coding):
    body = b'{"text": "' + b"hello " * 500 + b'"}'
    url = serve(upstream, "/c", COMPRESS[coding](body), headers={"Content-Encoding": coding})
    response = await read(transport, way, url)
    assert response.content == body
    assert "content-encoding" not in response.headers
    assert response.headers.get("content-length") in (None, str(len(body)))


@pytest.mark.parametrize(("transport", "way"), WAYS)
@pytest.mark.parametrize("coding", list(COMPRESS))
async def test_an_answer_that_inflates_past_the_limit_is_cut_before_it_fills_memory(upstream, transport, way, coding):
    inflated = 128 * 1024 * 1024  # 512 times the limit, from a body of a few hundred KB at most
    wire = COMPRESS[coding](bytes(inflated))
    assert len(wire) < LIMIT
    url = serve(upstream, "/bomb", wire, headers={"Content-Encoding": coding})
    tracemalloc.start()
    try:
        with pytest.raises(UpstreamError) as info:
            await read(transport, way, url)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.classification.reason == "response_too_large"
    assert peak < 48 * 1024 * 1024  # a few slices past the limit, never the whole inflated body


@pytest.mark.parametrize(("transport", "way"), WAYS)
@pytest.mark.parametrize("sent", ["with a Content-Length", "chunked"])
async def test_an_answer_larger_than_the_limit_is_refused(upstream, transport, way, sent):
    body = b"x" * (LIMIT + 1)
    url = serve(upstream, "/big", body if sent == "with a Content-Length" else [body[: LIMIT // 2], body[LIMIT // 2 :]])
    with pytest.raises(UpstreamError) as info:
        await read(transport, way, url)
    assert info.value.classification.reason == "response_too_large"


@pytest.mark.parametrize(("transport", "way"), WAYS)
async def test_a_secret_in_headers_reason_and_a_compressed_body_is_scrubbed(upstream, held, transport, way):
    body = f'{{"error": "bad header Authorization: Bearer {KEY}"}}'.encode()
    url = serve(
        upstream,
        "/echo",
        gzip.compress(body),
        status=401,
        reason=f"Bad key {KEY}",
        headers={"Content-Encoding": "gzip", "X-Echo": f"Bearer {KEY}", KEY: "named after it", "X-Plain": "kept"},
    )
    response = await read(transport, way, url)
    assert response.status_code == 401
    assert response.json() == {"error": f"bad header Authorization: Bearer {REDACTED}"}
    assert response.headers["x-echo"] == f"Bearer {REDACTED}" and response.headers["x-plain"] == "kept"
    assert KEY.lower() not in response.headers
    assert KEY not in response.reason_phrase
    assert response.headers.get("content-length") in (None, str(len(response.content)))


@pytest.mark.parametrize(("transport", "way"), WAYS)
async def test_a_body_in_a_coding_no_one_can_decode_is_passed_on_as_it_is(upstream, held, transport, way):
    url = serve(upstream, "/odd", b"\x01\x02\x03", headers={"Content-Encoding": "x-unknown", "X-Echo": KEY})
    response = await read(transport, way, url)
    assert response.content == b"\x01\x02\x03"
    assert response.headers["content-encoding"] == "x-unknown" and response.headers["x-echo"] == REDACTED


@pytest.mark.parametrize(("transport", "way"), WAYS)
async def test_a_secret_cut_across_two_reads_is_scrubbed(upstream, held, transport, way):
    event = f'data: {{"error": "key {KEY} refused"}}\n\n'.encode()
    cut = event.index(KEY.encode()) + 6  # the key arrives in two pieces, read one at a time
    url = serve(upstream, "/cut", [event[:cut], event[cut:]], headers={"Content-Type": "text/event-stream"})
    response = await read(transport, way, url)
    assert response.content == event.replace(KEY.encode(), REDACTED.encode())


async def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_a_refused_connection_is_a_connect_error_with_secrets_scrubbed(held):
    async def to_loopback(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    port = await _closed_port()
    async with build_client("aiohttp", resolve=to_loopback) as client:  # aiohttp's message names the host
        with pytest.raises(httpx.TransportError) as info:
            await client.post(f"http://{KEY}.test:{port}/x", json={}, timeout=5)
    assert classify_exception(info.value).reason == "connect_error"
    assert KEY not in str(info.value) and REDACTED in str(info.value)


async def test_what_the_direct_path_sends_is_what_httpx_would_send(upstream):
    seen: list[tuple[str, dict[str, str], bytes]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append((request.method, dict(request.headers), await request.read()))
        return web.json_response({})

    upstream.app.router._frozen = False  # one more route on the running test server
    upstream.app.router.add_post("/record/{tail:.*}", record)
    url = str(upstream.make_url("/record/x"))
    for transport in ("aiohttp", "httpx"):
        async with build_client(transport) as client:
            await client.post(url, json={"model": "m", "text": "héllo"}, headers={"Authorization": "Bearer t"})
    (_, direct, direct_body), (_, via_httpx, httpx_body) = seen
    assert direct_body == httpx_body == '{"model":"m","text":"héllo"}'.encode()
    for name in ("Authorization", "Content-Type", "Accept", "Accept-Encoding", "User-Agent", "Content-Length"):
        assert direct.get(name) == via_httpx.get(name), name


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_the_clients_response_hooks_see_every_answer(upstream, transport):
    url = serve(upstream, "/hooked", b"{}", headers={"x-ratelimit-remaining-requests": "7"})
    seen: list[str] = []

    async def note(response: httpx.Response) -> None:
        seen.append(response.headers["x-ratelimit-remaining-requests"])

    async with build_client(transport) as client:
        client.event_hooks["response"].append(note)
        await client.post(url, json={"q": 1})
        await client.get(url)
    assert seen == ["7", "7"]


async def test_a_request_hook_takes_the_request_the_httpx_way(upstream):
    url = serve(upstream, "/hooked", b"{}")
    sent: list[httpx.Request] = []

    async def note(request: httpx.Request) -> None:
        sent.append(request)

    async with build_client("aiohttp") as client:
        client.event_hooks["request"].append(note)
        response = await client.post(url, json={"q": 1})
    assert not isinstance(response, DirectResponse)
    assert [str(r.url) for r in sent] == [url]

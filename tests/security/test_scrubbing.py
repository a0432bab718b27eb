"""No credential the gateway holds comes back out of what a provider sends: every spelling an
upstream can echo it in is scrubbed at the HTTP transport (providers/adapters/scrub.py),
before the answer is relayed, logged, stored or pushed.

The unit tests register secrets under a source of their own; the end-to-end tests configure
a provider whose upstream echoes our Authorization header and then look everywhere the
answer goes: the caller's answer, the request log, the provider's health and the API.
"""

from __future__ import annotations

import base64
import gzip
import html
import json
import secrets
import urllib.parse
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from asgiref.sync import sync_to_async

from providers.adapters import scrub
from providers.adapters.scrub import REDACTED, ScrubbingTransport, scrub_bytes, scrub_text

TAG = secrets.token_hex(4)
KEY = f"sk-proj-{TAG}Scrub/Check+0123456789"  # `/` and `+` have escapes of their own
PLAIN = f"{TAG}plainsecret0001"  # no shape any pattern could know


@pytest.fixture
def held() -> Iterator[None]:
    scrub.use_secrets("tests", [KEY, PLAIN, f"admin:{TAG}-basic-password"])
    yield
    scrub.forget_secrets("tests")


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


SPELLINGS = {
    "as is": f"Authorization: Bearer {KEY}",
    "JSON": json.dumps({"error": {"message": f"bad header Bearer {KEY}"}}),
    "JSON with escaped slashes": json.dumps({"h": KEY}).replace("/", "\\/"),
    "JSON, every character \\u-escaped": '"' + "".join(f"\\u{ord(c):04x}" for c in KEY) + '"',
    "JSON, \\u-escaped in capitals": '"' + "".join(f"\\u{ord(c):04X}" for c in KEY) + '"',
    "JSON inside a JSON string": json.dumps({"upstream": json.dumps({"h": KEY}).replace("/", "\\/")}),
    "percent-encoded (quote)": "https://x.example/?echo=" + urllib.parse.quote(KEY, safe=""),
    "percent-encoded (quote_plus)": "a=" + urllib.parse.quote_plus(f"Bearer {KEY}"),
    "percent-encoded in lower case": "".join(f"%{b:02x}" for b in KEY.encode()),
    "HTML references": html.escape(KEY).replace("+", "&#43;").replace("/", "&#x2F;"),
    "HTML references, every character": "".join(f"&#{ord(c)};" for c in KEY),
    "base64 alone": b64(KEY),
    "base64, Basic with a user": "Basic " + b64(f"user:{KEY}"),
    "base64, second alignment": b64(f"u:{KEY}"),
    "base64, third alignment": b64(f"us:{KEY}"),
    "URL-safe base64 without padding": base64.urlsafe_b64encode(f"xy{KEY}z".encode()).decode().rstrip("="),
    "base64 in JSON with escaped slashes": json.dumps({"auth": b64(f"xx{KEY}")}).replace("/", "\\/"),
    "hex": KEY.encode().hex(),
    "hex in capitals, odd position": "0" + KEY.encode().hex().upper(),
    "a secret of no known shape": f"echo: {PLAIN}.",
    "the password of a user:password credential": f"password was {TAG}-basic-password",
}


@pytest.mark.parametrize("spelling", list(SPELLINGS))
def test_a_secret_is_scrubbed_in_every_spelling_an_upstream_can_echo(held, spelling):
    echoed = SPELLINGS[spelling]
    cleaned = scrub_text(echoed)
    assert REDACTED in cleaned
    for form in (KEY, PLAIN, TAG + "Scrub", TAG + "plain", f"{TAG}-basic"):
        assert form not in cleaned
    assert scrub_bytes(echoed.encode()) == cleaned.encode()


def test_a_base64_value_is_redacted_with_no_more_than_its_edges_left(held):
    cleaned = scrub_text("Basic " + b64(f"user:{KEY}"))
    kept = cleaned.removeprefix("Basic ").split(REDACTED)
    assert len(kept) == 2 and all(len(part) <= 8 for part in kept)  # "user:" and a last quantum at most


NORMAL = [
    json.dumps(
        {
            "id": "chatcmpl-9x",
            "object": "chat.completion",
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"message": {"role": "assistant", "content": "Caf\u00e9 \u2603 100% & <b>\n"}}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 40},
        }
    ),
    "A plain sentence about passwords, keys and tokens, 50% off &amp; more \\n as text.",
    "data: " + json.dumps({"b64_json": base64.b64encode(bytes(range(256)) * 40).decode()}) + "\n\n",
]


@pytest.mark.parametrize("body", NORMAL, ids=["json", "text", "base64 payload"])
def test_a_normal_body_is_left_byte_for_byte(held, body):
    assert scrub_text(body) == body
    assert scrub_bytes(body.encode()) == body.encode()


def test_binary_content_is_left_byte_for_byte(held):
    audio = bytes(range(256)) * 200 + b"\\u0041%41&#65;\x00"
    assert scrub_bytes(audio) == audio


def test_values_shorter_than_the_minimum_are_not_scrubbed():
    scrub.use_secrets("tests-short", ["abc1234", "pass", "x" * (scrub.MIN_SECRET_LENGTH - 1), "abcd:12345678"])
    try:
        text = "the code abc1234, the word pass, abcd: and xxxxxxx"
        assert scrub_text(text) == text
        assert scrub_text("abcd:12345678 and 12345678") == f"{REDACTED} and {REDACTED}"
    finally:
        scrub.forget_secrets("tests-short")


def test_the_longer_of_two_values_sharing_a_start_is_redacted_whole():
    scrub.use_secrets("tests-prefix", [f"{TAG}-shared-start", f"{TAG}-shared-start-and-more"])
    try:
        assert scrub_text(f"[{TAG}-shared-start-and-more]") == f"[{REDACTED}]"
        assert scrub_text(f"[{TAG}-shared-start-other]") == f"[{REDACTED}-other]"
    finally:
        scrub.forget_secrets("tests-prefix")


# -- the transport -----------------------------------------------------------------------------


class Chunks(httpx.AsyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk


def client_for(handler) -> httpx.AsyncClient:  # type: ignore[no-untyped-def]
    return httpx.AsyncClient(transport=ScrubbingTransport(httpx.MockTransport(handler)))


async def read_streamed(chunks: list[bytes], headers: dict[str, str] | None = None) -> tuple[bytes, httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=headers, stream=Chunks(chunks))

    async with client_for(handler) as client, client.stream("GET", "http://upstream.test/") as response:
        return b"".join([c async for c in response.aiter_raw()]), response


@pytest.mark.parametrize(
    "spelling",
    ["as is", "JSON, every character \\u-escaped", "percent-encoded (quote)", "base64, Basic with a user", "hex"],
)
async def test_a_secret_split_across_chunks_is_redacted_wherever_the_cut_falls(held, spelling):
    body = f'{{"echo": "{SPELLINGS[spelling]}", "more": "text"}}\n'.encode()
    expected = scrub_bytes(body)
    assert expected != body
    for cut in range(1, len(body)):
        received, _ = await read_streamed([body[:cut], body[cut:]])
        assert received == expected, cut
    received, _ = await read_streamed([bytes((b,)) for b in body])
    assert received == expected


async def test_a_stream_is_not_held_back_at_the_end_of_an_event(held):
    event = b'data: {"choices": [{"delta": {"content": "hello"}}]}\n\n'
    redactor = scrub.current()
    assert redactor is not None
    assert redactor.split(event) == (event, b"")


async def test_header_values_and_the_reason_phrase_are_scrubbed(held):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            401,
            headers={
                "X-Echo-Authorization": f"Bearer {KEY}",
                "WWW-Authenticate": f'Basic realm="{b64("u:" + KEY)}"',
                "X-Plain": "nothing to see",
            },
            content=b"{}",
            extensions={"reason_phrase": f"Bad key {PLAIN}".encode()},
        )

    async with client_for(handler) as client:
        response = await client.get("http://upstream.test/")
    assert response.headers["x-echo-authorization"] == f"Bearer {REDACTED}"
    assert KEY not in response.headers["www-authenticate"] and REDACTED in response.headers["www-authenticate"]
    assert response.headers["x-plain"] == "nothing to see"
    assert PLAIN not in response.reason_phrase


async def test_a_compressed_body_is_scrubbed_and_its_length_stays_right(held):
    body = json.dumps({"error": f"invalid header Authorization: Bearer {KEY}"}).encode()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            400, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}, content=gzip.compress(body)
        )

    async with client_for(handler) as client:
        response = await client.get("http://upstream.test/")
    assert response.json() == {"error": f"invalid header Authorization: Bearer {REDACTED}"}
    assert "content-encoding" not in response.headers
    length = response.headers.get("content-length")
    assert length is None or int(length) == len(response.content)


async def test_a_body_in_a_coding_no_one_can_decode_is_passed_on_as_it_is(held):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            headers={"Content-Encoding": "x-unknown", "Content-Length": "5", "X-Echo": KEY},
            content=b"\x01\x02\x03\x04\x05",
        )

    async with client_for(handler) as client:
        response = await client.get("http://upstream.test/")
    assert response.content == b"\x01\x02\x03\x04\x05"
    assert response.headers["content-encoding"] == "x-unknown" and response.headers["x-echo"] == REDACTED


async def test_a_transport_error_that_quotes_a_secret_is_scrubbed(held):
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot connect to https://x.test/?key={KEY}", request=request)

    async with client_for(handler) as client:
        with pytest.raises(httpx.ConnectError) as info:
            await client.get("http://upstream.test/")
    assert KEY not in str(info.value) and REDACTED in str(info.value)


async def test_with_no_secret_held_an_answer_passes_through_untouched():
    body = b'{"ok": true}'

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Length": str(len(body))}, content=body)

    with scrub.holding_nothing():  # other tests' runtimes may hold some
        async with client_for(handler) as client:
            response = await client.get("http://upstream.test/")
    assert response.content == body and response.headers["content-length"] == str(len(body))


# -- what the runtime holds ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_the_set_holds_every_credential_of_the_configuration_and_follows_it(settings):
    from providers.config import apply_config
    from providers.runtime import Runtime

    hook = f"http://127.0.0.1:9/services/T000/B000/{TAG}WebhookTokenValue"
    doc = {
        "providers": [
            {"name": "held", "kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_keys": [KEY, PLAIN]}
        ],
        "alert_channels": [{"name": "held-hook", "kind": "webhook", "url": hook}],
    }
    await sync_to_async(apply_config)(doc, actor="test", prune=True)
    rt = Runtime(client=httpx.AsyncClient())
    try:
        await rt.refresh(force=True)
        for value in (KEY, PLAIN, hook, settings.SECRET_KEY, *settings.ENCRYPTION_KEYS):
            assert scrub_text(f"<{value}>") == f"<{REDACTED}>", value
        assert REDACTED in scrub_text(f"token {TAG}WebhookTokenValue")

        doc["providers"][0]["api_keys"] = [PLAIN]
        await sync_to_async(apply_config)(doc, actor="test", prune=True)
        await rt.refresh(force=True)
        assert KEY not in scrub.current().secrets  # a removed key is no longer looked for
        assert scrub_text(PLAIN) == REDACTED
    finally:
        await rt.close()
    assert PLAIN not in (scrub.current().secrets if scrub.current() else ())


# -- end to end: a provider that echoes our Authorization header ----------------------------------


@pytest.fixture
def echoing():
    from tests.fakes.openai import FakeOpenAI

    with FakeOpenAI(api_key=KEY) as server:
        yield server


def echo_body(status: int) -> str:
    # What a careless proxy sends: the header it got, as is, JSON-escaped and in base64.
    return json.dumps(
        {
            "error": {
                "message": f"HTTP {status}: request headers: Authorization: Bearer {KEY}",
                "type": "server_error" if status >= 500 else "invalid_request_error",
                "debug": {
                    "authorization_b64": b64(f"Bearer {KEY}"),
                    "escaped": "".join(f"\\u{ord(c):04x}" for c in KEY),
                },
            }
        }
    )


def assert_no_key(text: str, where: str) -> None:
    for form in (KEY, KEY.replace("/", "\\/"), b64(f"Bearer {KEY}"), TAG + "Scrub"):
        assert form not in text, f"{where} carries the key: {text[:500]}"


@pytest.mark.django_db(transaction=True)
async def test_an_upstream_that_echoes_our_key_leaks_it_nowhere(gateway, key, echoing):
    from analytics.models import RequestLog
    from analytics.recorder import flush_all
    from health.models import ProbeResult, ProviderHealth
    from providers.config import apply_config
    from tests.conftest import auth

    await sync_to_async(apply_config)(
        {
            "providers": [
                {
                    "name": "echoing",
                    "kind": "openai",
                    "base_url": echoing.url + "/v1",
                    "api_key": KEY,
                    "models": ["gpt-4o-mini"],
                    "timeout_s": 2,
                    "retry": {"max_attempts": 1},
                    "breaker": {"consecutive_failures": 50},
                }
            ],
            "routes": [
                {
                    "name": "echo-route",
                    "capability": "chat",
                    "targets": [{"provider": "echoing", "model": "gpt-4o-mini"}],
                }
            ],
        },
        actor="test",
        prune=True,
    )
    chat = {"model": "echo-route", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"X-Echo-Authorization": f"Bearer {KEY}"}

    # A 400 is the caller's: relayed as is, but without our key.
    echoing.fault(status=400, body=echo_body(400), headers=headers, times=1)
    answer = await gateway.post("/v1/chat/completions", json=chat, headers=auth(key))
    assert answer.status_code == 400
    assert REDACTED in answer.text
    assert_no_key(answer.text + json.dumps(dict(answer.headers)), "the 400 relayed to the caller")

    # A 500 ends in a 502 whose attempt list quotes the provider's message.
    echoing.fault(status=500, body=echo_body(500), headers=headers, times=1)
    answer = await gateway.post("/v1/chat/completions", json=chat, headers=auth(key))
    assert answer.status_code == 502
    assert_no_key(answer.text + json.dumps(dict(answer.headers)), "the 502 answered to the caller")

    # Streamed, the same.
    echoing.fault(status=500, body=echo_body(500), headers=headers, times=1)
    answer = await gateway.post("/v1/chat/completions", json={**chat, "stream": True}, headers=auth(key))
    assert_no_key(answer.text, "the streamed answer")

    # A probe of the provider, answered with the echo, leaves it in no health row.
    echoing.fault(status=500, body=echo_body(500), headers=headers, path="/v1/models", times=1)
    checked = await gateway.post("/api/health/echoing/check", headers=auth(key))
    assert checked.status_code == 200
    assert_no_key(checked.text, "the check's answer")
    health = await gateway.get("/api/health", headers=auth(key))
    assert_no_key(health.text, "/api/health")

    await flush_all()

    @sync_to_async
    def stored() -> tuple[list[str], str, list[str]]:
        logs = [json.dumps(row.attempts) + row.error for row in RequestLog.objects.all()]
        row = ProviderHealth.objects.filter(provider__name="echoing").first()
        probes = [p.error + json.dumps(getattr(p, "detail", {}) or {}) for p in ProbeResult.objects.all()]
        return logs, (row.last_error + json.dumps(row.detail)) if row else "", probes

    logs, last_error, probes = await stored()
    assert len(logs) >= 3
    for text in logs:
        assert_no_key(text, "the request log")
    assert last_error, "the probe's failure is recorded"
    assert_no_key(last_error, "the provider's last_error")
    for text in probes:
        assert_no_key(text, "a probe result")

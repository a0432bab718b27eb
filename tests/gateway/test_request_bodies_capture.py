"""The gateway keeps request and response bodies only when REQUEST_BODY_RETENTION_DAYS says so:
scrubbed of every credential it holds and of gateway-key-shaped text, bounded by
REQUEST_BODY_MAX_BYTES with a marker, binary answers and uploads described, streams kept as
relayed (providers/gateway/kept_bodies.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from asgiref.sync import sync_to_async
from django.test import RequestFactory

from analytics.models import RequestBody, RequestLog
from analytics.recorder import flush_all
from providers.adapters import scrub
from providers.gateway.exchange import Exchange
from providers.gateway.kept_bodies import Transcript, kept_text, marker, request_text
from tests.fakes.openai import FakeOpenAI

from .conftest import auth, provider

pytestmark = pytest.mark.django_db(transaction=True)

# A provider credential that no shape matches: only the scrubber, which knows it, can find it.
SECRET = "Pr0viderCredential-7f3a9c"
CUT = re.compile(r"\n\[… ([0-9,]+) more bytes cut: bodies are kept up to REQUEST_BODY_MAX_BYTES \(([0-9,]+) bytes\)\]$")


@pytest.fixture
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=SECRET) as server:
        yield server


@pytest.fixture
async def routed(configure, upstream, settings):
    settings.ANALYTICS_FLUSH_INTERVAL_S = 60  # the explicit flush writes everything
    await configure(
        {
            "providers": [
                provider(
                    "up",
                    upstream.url + "/v1",
                    key=SECRET,
                    models=["gpt-4o-mini", "tts-1", "whisper-1"],
                    capabilities=["chat", "tts", "stt"],
                )
            ],
            "routes": [
                {"name": "chat", "capability": "chat", "targets": ["up/gpt-4o-mini"]},
                {"name": "speak", "capability": "tts", "targets": ["up/tts-1"]},
                {"name": "hear", "capability": "stt", "targets": ["up/whisper-1"]},
            ],
        }
    )


@pytest.fixture
def keeping(settings):
    settings.REQUEST_BODY_RETENTION_DAYS = 3


@sync_to_async
def kept(request_id: str) -> RequestBody:
    log = RequestLog.objects.get(request_id=request_id)
    return RequestBody.objects.get(request_id=request_id, at=log.at)


def chat(text: str, **extra: object) -> dict:
    return {"model": "chat", "messages": [{"role": "user", "content": text}], **extra}


# -- through the gateway -------------------------------------------------------------------------


async def test_by_default_no_body_is_kept_and_the_record_carries_none(gateway, routed, key):
    answer = await gateway.post("/v1/chat/completions", json=chat("hello there"), headers=auth(key))
    assert answer.status_code == 200
    await flush_all()

    @sync_to_async
    def rows() -> tuple[int, int]:
        return RequestLog.objects.count(), RequestBody.objects.count()

    assert await rows() == (1, 0)


async def test_kept_bodies_hold_the_callers_body_and_the_answer_it_got(gateway, routed, key, keeping):
    sent = json.dumps(chat("hello there")).encode()
    answer = await gateway.post(
        "/v1/chat/completions", content=sent, headers={**auth(key), "Content-Type": "application/json"}
    )
    assert answer.status_code == 200
    await flush_all()

    row = await kept(answer.headers["X-Request-Id"])
    assert row.request_body == sent.decode()
    assert row.response_body == answer.text
    assert json.loads(row.response_body)["choices"][0]["message"]["content"] == "Echo: hello there"


async def test_a_provider_secret_and_a_gateway_key_in_a_prompt_are_never_stored(gateway, routed, key, keeping):
    # The secret as is and JSON-escaped (\u0050 is "P"), and the caller's own gateway key.
    escaped = "\\u0050" + SECRET[1:]
    prompt = f"use {SECRET} or {escaped} with {key}"
    sent = '{"model": "chat", "messages": [{"role": "user", "content": "' + prompt + '"}]}'
    answer = await gateway.post(
        "/v1/chat/completions", content=sent.encode(), headers={**auth(key), "Content-Type": "application/json"}
    )
    assert answer.status_code == 200
    assert SECRET not in answer.text  # the upstream echoed it; the transport scrubbed it
    await flush_all()

    row = await kept(answer.headers["X-Request-Id"])
    for body in (row.request_body, row.response_body):
        assert SECRET not in body and SECRET not in repr(json.loads(body))  # nor behind an escape
        assert key not in body and key[:20] not in body
        assert scrub.REDACTED in body
    content = json.loads(row.request_body)["messages"][0]["content"]
    assert content == f"use {scrub.REDACTED} or {scrub.REDACTED} with {scrub.REDACTED}"


async def test_a_body_over_the_limit_is_cut_with_a_marker_saying_how_much_went(gateway, routed, key, settings):
    settings.REQUEST_BODY_RETENTION_DAYS = 1
    settings.REQUEST_BODY_MAX_BYTES = 300
    sent = json.dumps(chat("word " * 400)).encode()
    answer = await gateway.post(
        "/v1/chat/completions", content=sent, headers={**auth(key), "Content-Type": "application/json"}
    )
    assert answer.status_code == 200
    await flush_all()

    row = await kept(answer.headers["X-Request-Id"])
    found = CUT.search(row.request_body)
    assert found is not None, row.request_body[-200:]
    assert row.request_body[: found.start()] == sent[:300].decode()
    assert int(found.group(1).replace(",", "")) == len(sent) - 300
    assert found.group(2) == "300"
    assert len(row.response_body.encode()) < 300 + 120  # the answer too: cut, with its marker
    assert CUT.search(row.response_body) is not None


async def test_a_streamed_answer_is_kept_as_relayed(gateway, routed, key, keeping):
    answer = await gateway.post("/v1/chat/completions", json=chat("stream me please", stream=True), headers=auth(key))
    assert answer.status_code == 200
    assert "data: [DONE]" in answer.text
    await flush_all()

    row = await kept(answer.headers["X-Request-Id"])
    assert row.response_body == answer.text
    pieces = [
        json.loads(line[6:])["choices"][0]["delta"].get("content", "")
        for line in row.response_body.splitlines()
        if line.startswith("data: {") and json.loads(line[6:])["choices"]
    ]
    assert "".join(pieces) == "Echo: stream me please"
    assert json.loads(row.request_body)["stream"] is True


async def test_a_long_stream_is_kept_up_to_the_limit_with_the_marker(gateway, routed, key, settings):
    settings.REQUEST_BODY_RETENTION_DAYS = 1
    settings.REQUEST_BODY_MAX_BYTES = 400
    answer = await gateway.post("/v1/chat/completions", json=chat("many words " * 50, stream=True), headers=auth(key))
    assert answer.status_code == 200
    await flush_all()

    row = await kept(answer.headers["X-Request-Id"])
    found = CUT.search(row.response_body)
    assert found is not None
    head = row.response_body[: found.start()]
    assert answer.text.startswith(head) and len(head.encode()) == 400
    assert int(found.group(1).replace(",", "")) == len(answer.content) - 400


async def test_a_binary_answer_is_described_not_kept(gateway, routed, key, keeping):
    answer = await gateway.post(
        "/v1/audio/speech",
        json={"model": "speak", "input": "say it", "voice": "alloy", "response_format": "mp3"},
        headers=auth(key),
    )
    assert answer.status_code == 200 and answer.headers["content-type"] == "audio/mpeg"
    await flush_all()

    row = await kept(answer.headers["X-Request-Id"])
    assert row.response_body == f"[audio/mpeg, {len(answer.content):,} bytes: not text, not kept]"
    assert json.loads(row.request_body)["input"] == "say it"


async def test_an_upload_is_described_with_its_fields_never_its_bytes(gateway, routed, key, keeping):
    audio = b"RIFF\x00\x01\x02binary-audio" * 10
    answer = await gateway.post(
        "/v1/audio/transcriptions",
        files={"file": ("talk.wav", audio, "audio/wav")},
        data={"model": "hear", "language": "en"},
        headers=auth(key),
    )
    assert answer.status_code == 200, answer.text
    await flush_all()

    row = await kept(answer.headers["X-Request-Id"])
    assert row.request_body.startswith("[multipart/form-data, ")
    assert f"file file: 'talk.wav' (audio/wav, {len(audio)} bytes)" in row.request_body
    assert "model='hear'" in row.request_body and "language='en'" in row.request_body
    assert "binary-audio" not in row.request_body
    assert row.response_body == answer.text


async def test_a_failed_request_keeps_the_error_the_caller_got(gateway, routed, key, keeping, upstream):
    upstream.fault(status=503)
    answer = await gateway.post("/v1/chat/completions", json=chat("anyone?"), headers=auth(key))
    assert answer.status_code == 502
    await flush_all()

    row = await kept(answer.headers["X-Request-Id"])
    assert row.response_body == answer.text
    assert json.loads(row.response_body)["error"]["type"] == "all_targets_failed"


# -- the pieces ----------------------------------------------------------------------------------


async def test_with_bodies_off_an_exchange_does_no_body_work(rt, settings):
    request = RequestFactory().post("/v1/chat/completions", data=b"{}", content_type="application/json")
    exchange = Exchange(request, rt, await rt.current(), "chat")
    assert exchange.body_limit is None and exchange.transcript() is None
    settings.REQUEST_BODY_RETENTION_DAYS = 0.5
    settings.REQUEST_BODY_MAX_BYTES = 1000
    exchange = Exchange(request, rt, await rt.current(), "chat")
    assert exchange.body_limit == 1000 and isinstance(exchange.transcript(), Transcript)


def test_a_secret_across_the_cut_is_masked_whole_not_kept_in_part():
    scrub.use_secrets("tests-kept-bodies", [SECRET])
    try:
        data = b"a" * 95 + SECRET.encode() + b"b" * 100
        kept_body = kept_text(data, "text/plain", 100)
    finally:
        scrub.forget_secrets("tests-kept-bodies")
    assert kept_body.startswith("a" * 95 + scrub.REDACTED[:5])
    assert SECRET[:4] not in kept_body
    assert kept_body.endswith(marker(len(data) - len(SECRET) + len(scrub.REDACTED) - 100, 100))


def test_gateway_key_shapes_are_masked_without_being_configured():
    key = "gw_0123abcd_" + "K" * 43
    assert kept_text(f'{{"note": "{key}"}}'.encode(), "application/json", 1000) == f'{{"note": "{scrub.REDACTED}"}}'


def test_binary_bodies_and_text_with_a_nul_are_described():
    assert kept_text(b"\x89PNG....", "image/png", 100) == "[image/png, 8 bytes: not text, not kept]"
    assert kept_text(b"abc\x00def", "text/plain; charset=utf-8", 100) == "[text/plain, 7 bytes: not text, not kept]"
    assert kept_text(b'{"a": 1}', "application/vnd.api+json", 100) == '{"a": 1}'


def test_a_cut_never_splits_a_character():
    kept_body = kept_text("é".encode() * 100, "text/plain", 101)
    assert kept_body == "é" * 50 + marker(100, 101)


def test_a_request_body_read_as_a_stream_is_described_by_its_length():
    request = RequestFactory().post("/x", data=b"x" * 50, content_type="application/octet-stream")
    request.read()  # read as a stream: `request.body` is gone
    assert request_text(request, 100) == "[application/octet-stream, 50 bytes: not text, not kept]"

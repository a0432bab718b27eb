"""The test pages: a sample request per provider and per route, sent through the gateway's
serving path, shown with its answer, attempts and timings, logged as a console request,
audited; refused or failed tests are shown in place, never a 500."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async

from analytics.models import RequestLog
from analytics.recorder import flush_all
from health.models import HealthEvent
from providers.models import AuditLog

from .conftest import htmx, settle

pytestmark = pytest.mark.django_db(transaction=True)

MEDIA = {
    "providers": [
        {
            "name": "sim-chat",
            "kind": "simulated",
            "models": ["sim-small"],
            "priority": 1,
            "capabilities": ["chat"],
            "options": {"latency_ms": 5, "seed": 1},
        },
        {
            "name": "sim-media",
            "kind": "simulated",
            "models": ["sim-embed", "sim-image", "sim-voice"],
            "priority": 2,
            "capabilities": ["embeddings", "image", "tts"],
            "options": {"latency_ms": 5, "seed": 2},
        },
        {
            "name": "sim-down",
            "kind": "simulated",
            "models": ["sim-small"],
            "priority": 3,
            "capabilities": ["chat"],
            "retry": {"max_attempts": 1},
            "options": {"latency_ms": 5, "seed": 3, "error_rate": 1.0},
        },
    ],
    "routes": [
        {
            "name": "chat-fallback",
            "capability": "chat",
            "max_attempts": 2,
            "targets": [{"provider": "sim-down", "model": "sim-small"}, {"provider": "sim-chat", "model": "sim-small"}],
        },
        {
            "name": "chat-off",
            "capability": "chat",
            "enabled": False,
            "targets": [{"provider": "sim-chat", "model": "sim-small"}],
        },
    ],
}


@pytest.fixture
async def media(configure, rt):
    await configure(MEDIA)
    await rt.refresh(force=True)
    return rt


@sync_to_async
def audit_rows() -> list[tuple[str, str, str, dict[str, Any]]]:
    return list(
        AuditLog.objects.filter(action="test_request").values_list("actor", "object_type", "object_name", "changes")
    )


@sync_to_async
def logged(request_id: str) -> RequestLog | None:
    return RequestLog.objects.filter(request_id=request_id).first()


def request_id_in(html: str) -> str:
    start = html.index('data-field="request-id"><a href="/requests/') + len(
        'data-field="request-id"><a href="/requests/'
    )
    return html[start : html.index('"', start)]


async def test_viewers_see_the_page_but_only_operators_send(media, login, users, async_client):
    assert (await async_client.get("/providers/sim-chat/test")).status_code == 302  # to the login page
    await async_client.aforce_login(users["plain"])
    assert (await async_client.get("/providers/sim-chat/test")).status_code == 403
    client = await login(users["staff"])
    page = await client.get("/providers/sim-chat/test")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="test-form"' in html and "Members of the <strong>operators</strong> group" in html
    refused = await client.post("/providers/sim-chat/test", {"modality": "chat", "text": "hi", "model": "sim-small"})
    assert refused.status_code == 403 and "needs the operator level" in refused.content.decode()
    assert await audit_rows() == []


async def test_a_provider_chat_test_shows_the_answer_the_attempt_and_is_logged_as_from_the_console(media, login, users):
    client = await login(users["operator"])
    response = await client.post("/providers/sim-chat/test", {"modality": "chat", "text": "hello", "model": ""})
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-field="outcome">success</span>' in html
    assert 'class="answer-text"' in html
    assert '<table id="test-attempts">' in html and html.count('class="attempt-ok"') == 1
    request_id = request_id_in(html)
    assert request_id.startswith("console-")
    await flush_all()
    row = await logged(request_id)
    assert row is not None and row.provider == "sim-chat" and row.route == "sim-chat/sim-small"
    assert row.api_key_id is None and row.outcome == "success" and row.calls == 1
    await settle(media)
    [(actor, kind, name, changes)] = await audit_rows()
    assert (actor, kind, name) == ("oper", "provider", "sim-chat")
    assert changes == {"capability": "chat", "request_id": request_id, "status": 200}
    events = await sync_to_async(
        lambda: list(HealthEvent.objects.filter(kind="action", provider_name="sim-chat").values_list("new", "actor"))
    )()
    assert events == [("test_request", "oper")]


async def test_a_provider_test_goes_to_that_provider_alone(media, login, users):
    client = await login(users["operator"])
    response = await client.post(
        "/providers/sim-down/test", {"modality": "chat", "text": "hello", "model": "sim-small"}
    )
    html = response.content.decode()
    assert response.status_code == 200  # the page answered; the test failed, shown inline
    assert 'data-field="outcome">failure</span>' in html and "status 502" in html
    assert html.count('class="attempt-failed"') == 1 and "sim-chat" not in html.split('id="test-attempts"')[1]


async def test_a_route_test_takes_its_fallback_chain(media, login, users):
    client = await login(users["operator"])
    response = await client.post("/routes/chat-fallback/test", {"modality": "chat", "text": "hello"})
    html = response.content.decode()
    attempts = html.split('id="test-attempts"')[1]
    assert 'data-field="outcome">success</span>' in html
    assert attempts.index("sim-down") < attempts.index("sim-chat")
    assert 'class="attempt-failed"' in attempts and 'class="attempt-ok"' in attempts
    [(_, kind, name, _)] = await audit_rows()
    assert (kind, name) == ("route", "chat-fallback")


async def test_an_embedding_test_shows_the_vector_size(media, login, users):
    client = await login(users["operator"])
    response = await client.post(
        "/providers/sim-media/test", {"modality": "embeddings", "text": "a fox", "model": "sim-embed"}
    )
    html = response.content.decode()
    assert "A vector of <strong>" in html and "dimensions" in html


async def test_an_image_test_shows_the_image_inline(media, login, users):
    client = await login(users["operator"])
    response = await client.post(
        "/providers/sim-media/test", {"modality": "image", "text": "a lighthouse", "model": "sim-image"}
    )
    html = response.content.decode()
    assert '<img class="answer-image" src="data:image/png;base64,' in html


async def test_a_speech_test_plays_the_audio_from_the_console(media, login, users):
    client = await login(users["operator"])
    response = await client.post(
        "/providers/sim-media/test", {"modality": "tts", "text": "hello there", "model": "sim-voice"}
    )
    html = response.content.decode()
    start = html.index('<audio class="answer-audio" controls preload="auto" src="') + len(
        '<audio class="answer-audio" controls preload="auto" src="'
    )
    src = html[start : html.index('"', start)]
    assert src.startswith("/test-audio/")
    audio = await client.get(src)
    assert audio.status_code == 200 and audio["Content-Type"] == "audio/wav" and audio.content[:4] == b"RIFF"
    assert (await client.get("/test-audio/not-a-kept-token")).status_code == 404


async def test_the_form_offers_only_what_the_provider_takes(media, login, users):
    client = await login(users["operator"])
    html = (await client.get("/providers/sim-media/test")).content.decode()
    assert "?modality=embeddings" in html and "?modality=image" in html and "?modality=tts" in html
    assert "?modality=chat" not in html
    refused = await client.post("/providers/sim-media/test", {"modality": "chat", "text": "hi", "model": "sim-embed"})
    assert refused.status_code == 400 and "does not take chat requests here" in refused.content.decode()
    image_tab = (await client.get("/providers/sim-media/test?modality=image")).content.decode()
    assert 'value="sim-image"' in image_tab or 'value="sim-embed"' in image_tab  # a model is filled in


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"modality": "chat", "text": "   ", "model": "sim-small"}, "Write the prompt to send."),
        ({"modality": "chat", "text": "x" * 4001, "model": "sim-small"}, "Keep the text under 4,000 characters."),
        ({"modality": "video", "text": "hi"}, "does not take video requests here"),
        ({"modality": "chat", "text": "hi", "model": "m" * 201}, "That model name is too long."),
    ],
)
async def test_bad_input_is_shown_in_place_never_a_500(media, login, users, data, message):
    client = await login(users["operator"])
    response = await client.post("/providers/sim-chat/test", data)
    assert response.status_code == 400 and message in response.content.decode()
    swapped = await client.post("/providers/sim-chat/test", data, headers=htmx("test-result"))
    html = swapped.content.decode()
    assert swapped.status_code == 200 and html.lstrip().startswith('<section id="test-result"') and message in html
    assert await audit_rows() == []


async def test_a_request_the_gateway_refuses_is_shown_inline_and_not_logged(media, login, users):
    client = await login(users["operator"])
    response = await client.post("/routes/chat-off/test", {"modality": "chat", "text": "hi"})
    html = response.content.decode()
    assert response.status_code == 200  # the page worked: the gateway's refusal is its answer
    assert 'data-field="outcome">refused</span>' in html and "status 404" in html
    assert "route &#x27;chat-off&#x27; is disabled" in html and "refused before routing: not logged" in html


async def test_the_htmx_form_gets_the_result_partial_alone(media, login, users):
    client = await login(users["operator"])
    response = await client.post(
        "/providers/sim-chat/test", {"modality": "chat", "text": "hello", "model": ""}, headers=htmx("test-result")
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="test-result"') and "<nav" not in html
    assert 'data-field="outcome">success</span>' in html


async def test_unknown_providers_and_routes_are_404(media, login, users):
    client = await login(users["operator"])
    assert (await client.get("/providers/nobody/test")).status_code == 404
    assert (await client.get("/routes/nothing/test")).status_code == 404
    assert (await client.post("/routes/nothing/test", {"modality": "chat", "text": "hi"})).status_code == 404

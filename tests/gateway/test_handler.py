"""The lean gateway handler: unknown paths, server errors, client disconnects."""

from __future__ import annotations

import asyncio

import pytest

from .conftest import CHAT, auth

pytestmark = pytest.mark.django_db(transaction=True)


async def test_an_unknown_gateway_path_is_a_json_404(gateway, key):
    response = await gateway.post("/v1/nothing/here", headers=auth(key), json={})
    assert response.status_code == 404 and response.json()["error"]["type"] == "not_found"


async def test_an_unknown_operations_path_is_a_json_404_and_an_unknown_page_is_html(gateway, key):
    """/api/ goes through Django's full stack (not the lean handler): its handler404 answers
    JSON under /api/ and /v1/, Django's HTML page elsewhere."""
    response = await gateway.get("/api/nothing/here", headers=auth(key))
    assert response.status_code == 404 and response.json()["error"]["type"] == "not_found"
    page = await gateway.get("/nothing/here")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")


async def test_a_view_that_raises_is_a_json_500_not_a_crash(gateway, key, monkeypatch, two_openai):
    from providers.gateway import views

    await two_openai()

    async def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(views, "_serve", explode)
    response = await gateway.post("/v1/chat/completions", headers=auth(key), json=CHAT)
    assert response.status_code == 500 and response.json()["error"]["type"] == "internal_error"


async def test_a_client_that_disconnects_cancels_the_upstream_call(two_openai, key, upstream_a):
    """Drive the ASGI app directly: the client disconnects while the upstream is slow."""
    from project.asgi import application
    from providers.runtime import runtime

    await two_openai()
    upstream_a.fault(delay_s=120)  # far longer than the bound below: only a cancel ends it
    await runtime().current()
    body = b'{"model": "chain", "messages": [{"role": "user", "content": "hi"}]}'
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    disconnect = asyncio.Event()
    sent: list[dict] = []

    async def receive():
        if messages:
            return messages.pop(0)
        await disconnect.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "scheme": "http",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 5000),
        "http_version": "1.1",
        "asgi": {"version": "3.0"},
        "headers": [(b"authorization", f"Bearer {key}".encode()), (b"content-type", b"application/json")],
    }
    app = asyncio.ensure_future(application(scope, receive, send))
    for _ in range(100):  # until the upstream has the request
        await asyncio.sleep(0.02)
        if upstream_a.requests_to("/v1/chat/completions"):
            break
    disconnect.set()
    await asyncio.wait_for(app, 60)  # it returns: the upstream's 120 s answer was not waited for
    assert not app.cancelled() and app.exception() is None
    assert sent == []  # nothing was answered to a client that left
    assert len(upstream_a.requests_to("/v1/chat/completions")) == 1  # and it was not retried elsewhere

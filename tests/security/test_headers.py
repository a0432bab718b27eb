"""What API answers carry (issue 14 §7): `nosniff` and a policy that loads and frames nothing on
every /v1 and /api answer, whichever handler made it; a provider's HTML error never served as a
page of ours; a Retry-After on a 503 that knows when to come back; a new API key shown once
without passing through a cookie."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiohttp import web

from tests.conftest import auth
from tests.fakes.base import FakeServer
from tests.gateway.conftest import provider

pytestmark = pytest.mark.django_db(transaction=True)

API_POLICY = "default-src 'none'; frame-ancestors 'none'"


class HtmlErrors(FakeServer):
    """An OpenAI-compatible server behind a proxy that answers bad requests with a web page."""

    kind = "openai"
    page = b"<html><body><script>alert(document.cookie)</script>Bad Request</body></html>"

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self.chat)

    async def chat(self, request: web.Request) -> web.Response:
        status = 422 if "422" in (await request.text()) else 400
        return web.Response(status=status, body=self.page, content_type="text/html")


@pytest.fixture
def html_upstream() -> Iterator[HtmlErrors]:
    with HtmlErrors() as server:
        yield server


@pytest.fixture
async def simulated(configure):
    await configure(
        {
            "providers": [{"name": "sim", "kind": "simulated", "options": {"seed": 1}}],
            "routes": [{"name": "chat", "capability": "chat", "targets": [{"provider": "sim", "model": "sim-chat"}]}],
        }
    )


async def test_every_api_answer_carries_nosniff_and_a_policy_that_allows_nothing(gateway, key, simulated):
    chat = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    answers = {
        "gateway success": await gateway.post("/v1/chat/completions", json=chat, headers=auth(key)),
        "gateway stream": await gateway.post("/v1/chat/completions", json={**chat, "stream": True}, headers=auth(key)),
        "gateway refusal": await gateway.post("/v1/chat/completions", json={}, headers=auth(key)),
        "gateway 401": await gateway.post("/v1/embeddings", json={}),
        "gateway 404": await gateway.get("/v1/nothing"),
        "gateway 405": await gateway.get("/v1/chat/completions", headers=auth(key)),
        "gateway 413": await gateway.post("/v1/chat/completions", content=b"x" * 30_000_000, headers=auth(key)),
        "execute": await gateway.post(
            "/api/execute", json={"capability": "chat", "route": "chat", "input": "hi"}, headers=auth(key)
        ),
        "operations": await gateway.get("/api/providers", headers=auth(key)),
        "operations 401": await gateway.get("/api/providers"),
        "operations 404": await gateway.get("/api/nothing/here"),
        "operations 405": await gateway.get("/api/breakers/sim/reset", headers=auth(key)),
        "config yaml": await gateway.get("/api/config?format=yaml", headers=auth(key)),
        "schema": await gateway.get("/api/schema"),
    }
    wrong = {
        name: (r.status_code, r.headers.get("x-content-type-options"), r.headers.get("content-security-policy"))
        for name, r in answers.items()
        if r.headers.get("x-content-type-options") != "nosniff"
        or r.headers.get("content-security-policy") != API_POLICY
    }
    assert not wrong, wrong
    page = await gateway.get("/login/")  # the console keeps its own policy
    assert "script-src 'self'" in page.headers["content-security-policy"]


@pytest.mark.parametrize("status", [400, 422])
async def test_a_providers_html_error_is_relayed_as_our_json_error(gateway, configure, key, html_upstream, status):
    await configure(
        {
            "providers": [provider("proxy", html_upstream.url + "/v1", models=["m"])],
            "routes": [{"name": "chat", "capability": "chat", "targets": [{"provider": "proxy", "model": "m"}]}],
        }
    )
    response = await gateway.post(
        "/v1/chat/completions",
        headers=auth(key),
        json={"model": "chat", "messages": [{"role": "user", "content": f"make it {status}"}]},
    )
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-security-policy"] == API_POLICY
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "upstream_error"
    assert response.headers["x-gateway-provider"] == "proxy"


async def test_a_503_from_cooldowns_says_when_to_come_back():
    from django.test import RequestFactory

    from providers.engine import AllTargetsFailed
    from providers.gateway.views import Exchange
    from providers.runtime import runtime

    rt = runtime()
    snapshot = await rt.current()
    for retry_after, header in [(12.2, "13"), (0.2, "1"), (3600.0, "3600"), (None, None)]:
        exchange = Exchange(RequestFactory().post("/v1/chat/completions"), rt, snapshot, "chat")
        exc = AllTargetsFailed("every target is cooling down", [], all_skipped=True, retry_after=retry_after)
        response = exchange.failure_response(exc)
        assert response.status_code == 503 and response.get("Retry-After") == header, retry_after


def test_a_new_api_key_is_shown_once_and_never_put_in_a_cookie(admin_client_logged):
    from providers.models import ApiKey, hash_key

    response = admin_client_logged.post(
        "/admin/providers/apikey/add/", {"name": "app", "scopes": ["gateway"], "rate_limit_per_minute": ""}
    )
    assert response.status_code == 200  # the save's own answer shows it: no redirect, no message
    body = response.content.decode()
    start = body.index('id="new-api-key">') + len('id="new-api-key">')
    key = body[start : body.index("<", start)]
    assert ApiKey.objects.get(name="app").key_hash == hash_key(key)
    assert "no-store" in response["Cache-Control"]
    for cookie in response.cookies.values():
        assert key not in cookie.value and key[-20:] not in cookie.value, cookie.key
    assert "messages" not in response.cookies or not response.cookies["messages"].value
    following = admin_client_logged.get("/admin/providers/apikey/").content.decode()
    assert key not in following

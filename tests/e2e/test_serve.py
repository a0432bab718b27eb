"""The `make run` sequence (migrate, ensure_admin, demo, serve) against the real server, under
uvicorn (the default) and daphne: pages, the admin, the console's websocket, and a SIGTERM
that flushes the request log."""

from __future__ import annotations

import asyncio
import re
import signal

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.e2e import server as srv

pytestmark = pytest.mark.e2e

SERVERS = ["uvicorn", "daphne"]
HANG_S = 30  # a guard against a hang, not a timing expectation


@pytest.fixture(scope="module", params=SERVERS)
def running(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(request.param)
    server = srv.prepare(tmp, {"NO_DEMO": "0"})
    assert "loaded the demo" in server.manage("demo").stdout
    srv.start(server, tmp, server_kind=request.param)
    server.extra["kind"] = request.param
    server.extra["key"] = api_key(server)
    yield server
    server.stop()


def api_key(server: srv.ServerProcess) -> str:
    return server.manage("create_api_key", "e2e", "--scopes", "gateway,admin").stdout.strip().splitlines()[-1]


def login(client: httpx.Client, url: str) -> None:
    page = client.get(url + "/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = client.post(
        url + "/login/",
        data={"username": "operator", "password": "operator-pass-123", "csrfmiddlewaretoken": token, "next": "/admin/"},
        headers={"Referer": url + "/login/"},
    )
    assert response.status_code == 302, response.text[:500]


def staff_session(url: str) -> str:
    with httpx.Client() as client:
        login(client, url)
        return client.cookies["sessionid"]


def test_the_server_answers_healthz_and_the_login_page_and_the_admin_lists_the_demo(running):
    health = httpx.get(running.url + "/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok", "database": "ok"}
    assert health.headers["server"] == running.extra["kind"]
    with httpx.Client() as client:
        page = client.get(running.url + "/login/")
        assert page.status_code == 200 and 'name="password"' in page.text
        login(client, running.url)
        providers = client.get(running.url + "/admin/providers/provider/")
        assert providers.status_code == 200
        for name in ("demo-fast", "demo-flaky", "demo-slow"):
            assert name in providers.text
        assert providers.text.count("(demo)") == 3


def test_a_staff_websocket_hears_an_operator_action_on_the_console(running):
    session = staff_session(running.url)
    headers = {"Authorization": f"Bearer {running.extra['key']}"}

    async def listen() -> str:
        uri = running.url.replace("http://", "ws://") + "/ws/health/"
        async with websockets.connect(
            uri, additional_headers={"Cookie": f"sessionid={session}", "Origin": running.url}
        ) as socket:
            # the socket joined its groups before the handshake completed: nothing is missed
            response = await asyncio.to_thread(
                httpx.post, running.url + "/api/breakers/demo-fast/force-open", headers=headers, json={"minutes": 1}
            )
            assert response.status_code == 200, response.text
            while True:
                message = await socket.recv()
                if 'id="card-demo-fast"' in message and "forced" in message.lower():
                    return str(message)

    try:
        message = asyncio.run(asyncio.wait_for(listen(), HANG_S))
    finally:
        httpx.post(running.url + "/api/breakers/demo-fast/reset", headers=headers)
    assert 'id="card-demo-fast"' in message


def test_the_websocket_refuses_a_page_of_another_origin(running):
    session = staff_session(running.url)

    async def attempt() -> int:
        uri = running.url.replace("http://", "ws://") + "/ws/health/"
        try:
            async with websockets.connect(
                uri, additional_headers={"Cookie": f"sessionid={session}", "Origin": "http://evil.example"}
            ):
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code

    assert asyncio.run(asyncio.wait_for(attempt(), HANG_S)) == 403


@pytest.mark.parametrize("kind", SERVERS)
def test_asgi_server_picks_the_server_and_sigterm_flushes_every_request_to_the_log(tmp_path, kind):
    # a flush interval of an hour: only the shutdown hook can write these rows
    server = srv.prepare(tmp_path, {"NO_DEMO": "0", "ASGI_SERVER": kind, "ANALYTICS_FLUSH_INTERVAL_S": "3600"})
    server.manage("demo")
    key = api_key(server)
    srv.start(server, tmp_path, server_kind=None)
    try:
        assert httpx.get(server.url + "/healthz").headers["server"] == kind
        statuses = [
            httpx.post(
                server.url + "/v1/chat/completions",
                headers={"Authorization": f"Bearer {key}"},
                json={"model": "demo", "messages": [{"role": "user", "content": "hi"}]},
                timeout=HANG_S,
            ).status_code
            for _ in range(5)
        ]
        assert set(statuses) <= {200, 502, 503}  # answers (demo-flaky fails now and then), each logged
        server.proc.send_signal(signal.SIGTERM)
        # uvicorn re-raises the SIGTERM it handled once it has shut down: the exit says so
        assert server.proc.wait(HANG_S) in (0, -signal.SIGTERM), server.log()
    finally:
        server.stop()
    count = (
        server.manage("shell", "-c", "from analytics.models import RequestLog;print(RequestLog.objects.count())")
        .stdout.strip()
        .splitlines()[-1]
    )
    assert count == "5", server.log()


def test_without_asgi_server_it_serves_under_uvicorn(tmp_path):
    server = srv.prepare(tmp_path)
    server.env.pop("ASGI_SERVER", None)
    srv.start(server, tmp_path, server_kind=None)
    try:
        assert httpx.get(server.url + "/healthz").headers["server"] == "uvicorn"
    finally:
        server.stop()


def test_the_demo_is_not_loaded_twice_or_with_no_demo(tmp_path):
    server = srv.prepare(tmp_path, {"NO_DEMO": "1"})
    assert "NO_DEMO is set" in server.manage("demo").stdout
    server.env["NO_DEMO"] = "0"
    assert "loaded the demo" in server.manage("demo").stdout
    assert "not empty" in server.manage("demo").stdout

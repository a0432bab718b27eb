"""The `make run` sequence (migrate, ensure_admin, demo, serve) against a real daphne."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.e2e import server as srv

pytestmark = pytest.mark.e2e


@pytest.fixture
def running(tmp_path):
    server = srv.prepare(tmp_path, {"NO_DEMO": "0"})
    out = server.manage("demo").stdout
    assert "loaded the demo" in out
    srv.start(server, tmp_path)
    yield server
    server.stop()


def login(client: httpx.Client, url: str) -> None:
    page = client.get(url + "/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = client.post(url + "/login/", data={"username": "operator", "password": "operator-pass-123",
                                                  "csrfmiddlewaretoken": token, "next": "/admin/"},
                           headers={"Referer": url + "/login/"})
    assert response.status_code == 302, response.text[:500]


def test_the_server_answers_healthz_and_the_login_page_and_the_admin_lists_the_demo(running):
    health = httpx.get(running.url + "/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok", "database": "ok"}
    assert health.headers["server"] == "daphne"
    with httpx.Client() as client:
        page = client.get(running.url + "/login/")
        assert page.status_code == 200 and 'name="password"' in page.text
        login(client, running.url)
        providers = client.get(running.url + "/admin/providers/provider/")
        assert providers.status_code == 200
        for name in ("demo-fast", "demo-flaky", "demo-slow"):
            assert name in providers.text
        assert providers.text.count("(demo)") == 3


def test_the_demo_is_not_loaded_twice_or_with_no_demo(tmp_path):
    server = srv.prepare(tmp_path, {"NO_DEMO": "1"})
    assert "NO_DEMO is set" in server.manage("demo").stdout
    server.env["NO_DEMO"] = "0"
    assert "loaded the demo" in server.manage("demo").stdout
    assert "not empty" in server.manage("demo").stdout

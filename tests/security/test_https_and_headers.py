"""Behind an HTTPS proxy (BEHIND_HTTPS_PROXY=1, the real server): Secure cookies, HSTS, the
proxy's X-Forwarded-Proto and X-Forwarded-For trusted. Without it: neither header trusted, so a
client can neither pose as HTTPS nor dodge a lockout by inventing an address. Security headers
on every kind of answer; console pages that a strict CSP does not break; lockouts that cover the
admin's login too and end after LOGIN_LOCKOUT_MINUTES."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import auth
from tests.reliability.live import LiveGateway

PASSWORD = "operator-pass-123"  # tests/e2e/server.py's admin


# -- behind an HTTPS proxy: the real server ------------------------------------------------------


@pytest.fixture(scope="module")
def proxied(tmp_path_factory) -> Iterator[LiveGateway]:
    gateway = LiveGateway.start(
        tmp_path_factory.mktemp("https"), {"BEHIND_HTTPS_PROXY": "1", "LOGIN_FAILURE_LIMIT": "3"}
    )
    yield gateway
    gateway.stop()


def cookie_flags(response: httpx.Response, name: str) -> set[str]:
    """The flags of cookie `name` as sent: secure, httponly, samesite=lax."""
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(name + "="):
            parts = (part.strip().lower() for part in header.split(";")[1:])
            return {part for part in parts if "=" not in part or part.startswith("samesite")}
    raise AssertionError(f"no {name} cookie in {response.headers.get_list('set-cookie')}")


def cookie_value(response: httpx.Response, name: str) -> str:
    return next(
        h.split(";")[0].split("=", 1)[1] for h in response.headers.get_list("set-cookie") if h.startswith(name + "=")
    )


def sign_in(url: str, *, forwarded_for: str, password: str = PASSWORD) -> httpx.Response:
    """Sign in as a browser behind the HTTPS proxy would: the proxy adds X-Forwarded-*; the
    browser sends the Secure cookies back (httpx would not, over plain http to the server)."""
    headers = {"X-Forwarded-For": forwarded_for, "X-Forwarded-Proto": "https"}
    page = httpx.get(url + "/login/", headers=headers)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    origin = url.replace("http://", "https://")
    return httpx.post(
        url + "/login/",
        data={"username": "operator", "password": password, "csrfmiddlewaretoken": token, "next": "/"},
        headers={
            **headers,
            "Referer": origin + "/login/",
            "Origin": origin,
            "Cookie": f"csrftoken={cookie_value(page, 'csrftoken')}",
        },
    )


@pytest.mark.e2e
def test_over_https_the_cookies_are_secure_and_hsts_is_sent(proxied):
    page = httpx.get(proxied.url + "/login/", headers={"X-Forwarded-Proto": "https"})
    assert page.headers["strict-transport-security"] == "max-age=31536000"
    assert {"secure", "samesite=lax"} <= cookie_flags(page, "csrftoken")
    response = sign_in(proxied.url, forwarded_for="203.0.113.10")
    assert response.status_code == 302 and response.headers["location"] == "/"
    assert {"secure", "httponly", "samesite=lax"} <= cookie_flags(response, "sessionid")
    console = httpx.get(
        proxied.url + "/",
        headers={"X-Forwarded-Proto": "https", "Cookie": f"sessionid={cookie_value(response, 'sessionid')}"},
    )
    assert console.status_code == 200 and 'action="/logout/"' in console.text


@pytest.mark.e2e
def test_over_plain_http_behind_the_proxy_no_hsts_is_sent(proxied):
    page = httpx.get(proxied.url + "/login/")
    assert "strict-transport-security" not in page.headers


@pytest.mark.e2e
def test_the_proxy_s_forwarded_address_keys_the_lockout(proxied):
    statuses = [sign_in(proxied.url, forwarded_for="203.0.113.66", password="wrong").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]  # the third failure (LOGIN_FAILURE_LIMIT) locks out
    assert sign_in(proxied.url, forwarded_for="203.0.113.66").status_code == 429
    # the same account from another address: not locked out
    assert sign_in(proxied.url, forwarded_for="198.51.100.7").status_code == 302


@pytest.mark.e2e
def test_a_forged_forwarded_entry_does_not_dodge_the_lockout(proxied):
    """The proxy appends the address it saw; what the client wrote to the left of it is ignored."""
    statuses = [
        sign_in(proxied.url, forwarded_for=f"10.0.0.{n}, 203.0.113.77", password="wrong").status_code for n in range(3)
    ]
    assert statuses == [200, 200, 429]
    assert sign_in(proxied.url, forwarded_for="10.9.9.9, 203.0.113.77").status_code == 429


# -- not behind a proxy: the default, in process ---------------------------------------------------


@pytest.fixture(autouse=True)
def _quick_hashing(settings):  # type: ignore[no-untyped-def]
    """Lockout tests sign in a dozen times; the real hasher takes half a second each time."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.mark.django_db
def test_without_the_proxy_setting_x_forwarded_proto_is_not_trusted(client):
    response = client.get("/login/", headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == 200
    assert "Strict-Transport-Security" not in response.headers
    assert not response.cookies["csrftoken"]["secure"]


@pytest.mark.django_db
def test_without_the_proxy_setting_an_invented_forwarded_address_does_not_escape_a_lockout(client, django_user_model):
    django_user_model.objects.create_user("ops", password="right-password-123", is_staff=True)
    for n in range(5):
        client.post("/login/", {"username": "ops", "password": "wrong"}, headers={"X-Forwarded-For": f"198.51.100.{n}"})
    response = client.post(
        "/login/", {"username": "ops", "password": "right-password-123"}, headers={"X-Forwarded-For": "192.0.2.99"}
    )
    assert response.status_code == 429


@pytest.mark.django_db
def test_a_lockout_from_the_console_s_login_covers_the_admin_s_login(client, django_user_model):
    django_user_model.objects.create_user("ops", password="right-password-123", is_staff=True)
    for _ in range(5):
        client.post("/login/", {"username": "ops", "password": "wrong"})
    response = client.post("/admin/login/", {"username": "ops", "password": "right-password-123", "next": "/admin/"})
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_a_lockout_ends_after_the_lockout_time(client, django_user_model, settings):
    settings.AXES_COOLOFF_TIME = 1 / 3600  # hours: one second
    django_user_model.objects.create_user("ops", password="right-password-123", is_staff=True)
    for _ in range(5):
        client.post("/login/", {"username": "ops", "password": "wrong"})
    assert client.post("/login/", {"username": "ops", "password": "right-password-123"}).status_code == 429
    time.sleep(1.2)
    assert client.post("/login/", {"username": "ops", "password": "right-password-123"}).status_code == 302


@pytest.mark.django_db
def test_the_session_and_csrf_cookies_are_http_only_and_same_site_on_the_wire(client, django_user_model):
    django_user_model.objects.create_user("ops", password="right-password-123", is_staff=True)
    page = client.get("/login/")
    assert page.cookies["csrftoken"]["samesite"] == "Lax"
    response = client.post("/login/", {"username": "ops", "password": "right-password-123"})
    session = response.cookies["sessionid"]
    assert session["httponly"] and session["samesite"] == "Lax" and not session["secure"]


# -- headers on every kind of answer ---------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_every_kind_of_answer_carries_nosniff_and_html_carries_the_policy(gateway, key, admin_user, async_client):
    await async_client.aforce_login(admin_user)
    gateway.cookies.set("sessionid", async_client.cookies["sessionid"].value)
    answers = {
        "console page": await gateway.get("/"),
        "console 404": await gateway.get("/providers/nope"),
        "admin page": await gateway.get("/admin/providers/provider/"),
        "login page": await gateway.get("/login/"),
        "operations API": await gateway.get("/api/providers", headers=auth(key)),
        "operations API error": await gateway.get("/api/providers", headers=auth("nope")),
        "gateway": await gateway.get("/v1/models", headers=auth(key)),
        "gateway error": await gateway.post("/v1/chat/completions", json={}, headers=auth(key)),
        "gateway 401": await gateway.post("/api/execute", json={}),
    }
    missing = {
        name: r.status_code for name, r in answers.items() if r.headers.get("x-content-type-options") != "nosniff"
    }
    assert not missing, missing
    for name, response in answers.items():
        if response.headers["content-type"].startswith("text/html"):
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"], name
            assert response.headers["x-frame-options"] == "DENY", name


INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I)
INLINE_HANDLER = re.compile(r"\son[a-z]+\s*=", re.I)


@pytest.mark.django_db(transaction=True)
async def test_console_pages_have_no_inline_script_or_handler_the_policy_would_block(async_client, admin_user):
    from asgiref.sync import sync_to_async

    from providers.config import apply_config
    from tests.console.conftest import SIMULATED

    await sync_to_async(apply_config)(SIMULATED, actor="test", prune=True)
    await async_client.aforce_login(admin_user)
    for path in ("/", "/providers/sim-a", "/events", "/analytics", "/login/"):
        html = (await async_client.get(path)).content.decode()
        assert not INLINE_SCRIPT.findall(html), (path, INLINE_SCRIPT.findall(html))
        assert not INLINE_HANDLER.findall(html), (path, INLINE_HANDLER.findall(html))

"""Who may do what, over every URL the project serves.

The URLs come from the URL resolver (and the admin's registry), not from a list kept here, so a
new console page, action or API endpoint is in the matrix the moment it exists: a pattern this
test cannot classify fails it. What each may do comes from product.md:

- console: anonymous → the login page; signed in but not staff → 403; staff view; the group
  `operators` (and superusers) act; superusers change the configuration;
- /admin/: staff reach the index; only superusers (here nobody else has model permissions)
  reach the model pages; anonymous and non-staff are sent to the admin's login;
- API: no key → 401, a key without the scope → 403 (`admin` includes `read`); gateway endpoints
  need `gateway`, reads need `read`, writes `admin`; a console session is no API key;
- the websocket: staff sessions only, from our own Origin.

Requests go through the real ASGI application (the gateway's own handler included).
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from channels.testing import WebsocketCommunicator
from django.contrib import admin
from django.urls import URLPattern, URLResolver, get_resolver

from project.asgi import application
from tests.console.conftest import SIMULATED

pytestmark = pytest.mark.django_db(transaction=True)

USERS = ["anonymous", "plain", "staff", "operator", "admin"]
RANK = {"anonymous": 0, "plain": 0, "staff": 1, "operator": 2, "admin": 3}
NEEDS = {"view": 1, "act": 2, "configure": 3}

# Console views by URL name, and the level each needs (health/access.py, product.md).
CONSOLE = {
    "health-dashboard": "view",
    "health-events": "view",
    "analytics-page": "view",
    "health-provider": "view",
    "health-requests": "view",
    "health-request": "view",
    "health-keys": "view",
    "health-incidents": "view",
    "health-incident-acknowledge": "act",
    "health-incident-mute": "act",
    "health-check-provider": "act",
    "health-reset-breaker": "act",
    "health-force-open": "act",
    "health-pull-model": "act",
    "health-switch-sd-model": "act",
    "health-enable-provider": "configure",
    "health-disable-provider": "configure",
    "health-start-maintenance": "configure",
    "health-end-maintenance": "configure",
    "health-discover": "configure",
    "health-register-discovered": "configure",
    "health-remove-demo": "configure",
    # configuration pages: anybody on staff reads them; the forms that change it are superusers'
    "health-config-providers": "view",
    "health-config-provider": "view",
    "health-config-routes": "view",
    "health-config-route": "view",
    "health-config-provider-new": "configure",
    "health-config-provider-delete": "configure",
    "health-config-route-new": "configure",
    "health-config-route-delete": "configure",
    "health-config-provider-test": "act",
    # test pages: the form is shown to staff, sending it is an operator's (checked below)
    "health-provider-test": "view",
    "health-route-test": "view",
    "health-test-audio": "view",
}
# Reads that need `admin` (the contract: keys, their limits and spend are the admin's).
ADMIN_READS = ("/api/keys",)
GET_PAGES = {
    "health-dashboard",
    "health-events",
    "analytics-page",
    "health-provider",
    "health-discover",
    "health-requests",
    "health-request",
    "health-keys",
    "health-incidents",
    "health-config-providers",
    "health-config-provider",
    "health-config-routes",
    "health-config-route",
    "health-config-provider-new",
    "health-config-provider-delete",
    "health-config-route-new",
    "health-config-route-delete",
    "health-provider-test",
    "health-route-test",
    "health-test-audio",
}
PUBLIC = {"health-healthz", "login", "logout", "providers-schema"}


def walk(patterns: list[Any], prefix: str = "") -> list[tuple[str, str]]:
    """(route, name) of every URL pattern, the admin's excepted."""
    found = []
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            if route.startswith("admin/"):
                continue
            found += walk(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            found.append((route, pattern.name or ""))
    return found


def concrete(route: str) -> str:
    """A path for a route pattern: provider `sim-a` (configured), model `m`."""
    path = re.sub(r"<(?:\w+:)?name>", "sim-a", route)
    path = re.sub(r"<int:(?:pk|id)>", "1", path)  # an incident that does not exist: 404 / back to the list
    return "/" + re.sub(r"<(?:\w+:)?model>", "m", path)


def openapi_path(route: str) -> str:
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)


PATTERNS = walk(get_resolver().url_patterns)


def api_operations() -> list[tuple[str, str, str | None]]:
    """(method, OpenAPI path, scope the product contract gives it) of every API operation."""
    from providers.openapi import REGISTRY

    documented = {(ep.method.upper(), ep.path): ep.scope for ep in REGISTRY}
    operations = []
    for route, name in PATTERNS:
        if name in CONSOLE or name in PUBLIC:
            continue
        path = openapi_path(route)
        methods = [m for (m, p) in documented if p == path]
        assert methods, f"{route} ({name}) is neither a console page nor a documented API endpoint"
        for method in methods:
            if path.startswith(("/v1/", "/api/execute")):
                scope = "gateway"
            elif method == "GET" and not path.startswith(ADMIN_READS):
                scope = "read"
            else:
                scope = "admin"
            assert documented[(method, path)] == scope, (method, path, documented[(method, path)])
            operations.append((method, path, scope))
    return operations


API = api_operations()


@pytest.fixture
async def simulated(configure, rt):  # type: ignore[no-untyped-def]
    """Two simulated providers, and a runtime of this test's loop that knows them."""
    await configure(SIMULATED)
    await rt.refresh(force=True)
    return rt


def test_every_url_pattern_is_in_the_matrix():
    names = {name for _, name in PATTERNS}
    assert set(CONSOLE) <= names, set(CONSOLE) - names
    assert len(API) >= 25
    assert {
        ("POST", "/v1/chat/completions", "gateway"),
        ("PUT", "/api/config", "admin"),
        ("GET", "/metrics", "read"),
    } <= set(API)


# -- sessions -------------------------------------------------------------------------------


async def session_for(async_client: Any, users: dict[str, Any], who: str) -> dict[str, str]:
    if who == "anonymous":
        return {}
    await async_client.aforce_login(users[who])
    return {"sessionid": async_client.cookies["sessionid"].value}


def asgi_client(cookies: dict[str, str] | None = None, **headers: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=application),
        base_url="http://testserver",
        cookies=cookies or {},
        headers=headers,
        follow_redirects=False,
        timeout=30,
    )


CSRF = "c" * 32  # a CSRF secret of our own: the cookie and the form field agree, as a browser's would


async def csrf_post(client: httpx.AsyncClient, path: str, data: dict[str, str]) -> httpx.Response:
    """A form POST as the console sends it, past the CSRF check (which is not what is tested)."""
    client.cookies.delete("csrftoken")  # the one a page set, if any: ours alone must be sent
    client.cookies.set("csrftoken", CSRF)
    return await client.post(path, data={**data, "csrfmiddlewaretoken": CSRF})


def refused(response: httpx.Response, who: str) -> bool:
    if who == "anonymous":
        return response.status_code == 302 and response.headers["location"].startswith("/login/?next=")
    return response.status_code == 403 and "Not allowed" in response.text  # the console's page, not CSRF's


# -- the console ------------------------------------------------------------------------------


@pytest.mark.parametrize("who", USERS)
async def test_each_user_reaches_exactly_the_console_urls_of_their_level(simulated, users, async_client, who):
    cookies = await session_for(async_client, users, who)
    outcomes = []
    async with asgi_client(cookies) as client:
        for route, name in PATTERNS:
            if name not in CONSOLE:
                continue
            path = concrete(route)
            if name in GET_PAGES:
                response = await client.get(path)
            else:
                response = await csrf_post(client, path, {"minutes": "5", "model": "m", "reason": "drill"})
            allowed = RANK[who] >= NEEDS[CONSOLE[name]]
            if allowed:
                ok = not refused(response, who) and response.status_code < 500 and response.status_code != 401
            else:
                ok = refused(response, who)
            outcomes.append((name, response.status_code, allowed, ok))
    assert all(ok for *_, ok in outcomes), [o for o in outcomes if not o[3]]
    # one sanity check per level that "allowed" means really served
    if who in ("staff", "operator", "admin"):
        assert ("health-dashboard", 200, True, True) in outcomes


@pytest.mark.parametrize("who", USERS)
async def test_the_admin_lets_in_staff_and_only_superusers_reach_the_models(simulated, users, async_client, who):
    cookies = await session_for(async_client, users, who)
    model_pages = []
    for model, model_admin in admin.site._registry.items():
        info = (model._meta.app_label, model._meta.model_name)
        model_pages.append(f"/admin/{info[0]}/{info[1]}/")
        if model_admin.has_add_permission.__func__ is not admin.ModelAdmin.has_add_permission:
            continue  # a read-only admin (the audit log): no add page for anybody
        model_pages.append(f"/admin/{info[0]}/{info[1]}/add/")
    async with asgi_client(cookies) as client:
        index = await client.get("/admin/")
        pages = {path: (await client.get(path)).status_code for path in model_pages}
    if RANK[who] == 0:
        assert index.status_code == 302 and index.headers["location"].startswith("/admin/login/")
        assert set(pages.values()) == {302}
    elif who == "admin":
        assert index.status_code == 200 and all(status == 200 for status in pages.values()), pages
    else:
        assert index.status_code == 200 and "permission" in index.text
        assert set(pages.values()) == {403}, pages


# -- the API ----------------------------------------------------------------------------------


def path_of(path: str) -> str:
    return path.replace("{name}", "sim-a").replace("{model}", "m").replace("{id}", "1").replace("{prefix}", "gw_x")


async def call(client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    body = {} if method in ("POST", "PUT") else None
    # the event stream never ends: a bad resume id gets its 400 after the key check instead
    query = "?last_event_id=not-an-id" if path == "/api/events/stream" else ""
    return await client.request(method, path_of(path) + query, json=body, headers=headers)


@pytest.mark.parametrize(
    "scopes", [["gateway"], ["read"], ["admin"], ["gateway", "read", "admin"]], ids=["gateway", "read", "admin", "all"]
)
async def test_a_key_reaches_exactly_the_endpoints_of_its_scopes(simulated, make_key, scopes):
    key = await make_key(scopes)
    granted = set(scopes) | ({"read"} if "admin" in scopes else set())
    wrong = []
    async with asgi_client() as client:
        for method, path, scope in API:
            response = await call(client, method, path, {"Authorization": f"Bearer {key}"})
            if scope in granted:
                if response.status_code in (401, 403) or response.status_code >= 500:
                    wrong.append((method, path, response.status_code, response.text[:200]))
            elif response.status_code != 403 or response.json()["error"]["code"] != "insufficient_scope":
                wrong.append((method, path, response.status_code, response.text[:200]))
    assert not wrong


@pytest.mark.parametrize("credential", ["none", "unknown-key", "malformed-header", "superuser-session"])
async def test_without_a_valid_key_every_api_endpoint_answers_401_with_a_json_error(
    simulated, users, async_client, credential
):
    headers: dict[str, str] = {}
    cookies: dict[str, str] = {}
    if credential == "unknown-key":
        headers["Authorization"] = "Bearer gw_00000000_notakeynotakeynotakey"
    elif credential == "malformed-header":
        headers["Authorization"] = "Basic cm9vdDpwdw=="
    elif credential == "superuser-session":
        cookies = await session_for(async_client, users, "admin")
    wrong = []
    async with asgi_client(cookies) as client:
        for method, path, _scope in API:
            if credential == "superuser-session" and path == "/api/analytics/export.csv":
                continue  # the console's CSV links: a staff session is enough (tested below)
            response = await call(client, method, path, headers)
            if response.status_code != 401 or response.json()["error"]["type"] != "authentication_error":
                wrong.append((method, path, response.status_code, response.text[:120]))
    assert not wrong


@pytest.mark.parametrize("who", USERS)
async def test_the_csv_export_takes_a_staff_session_instead_of_a_key(simulated, users, async_client, who):
    async with asgi_client(await session_for(async_client, users, who)) as client:
        response = await client.get("/api/analytics/export.csv?window=24h")
    assert response.status_code == (200 if RANK[who] >= 1 else 401)


async def test_public_endpoints_need_nothing(simulated):
    async with asgi_client() as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/api/schema")).json()["openapi"]
        assert (await client.get("/login/")).status_code == 200


# -- the websocket ----------------------------------------------------------------------------


@pytest.mark.parametrize("who", USERS)
async def test_the_websocket_accepts_staff_sessions_only(simulated, users, async_client, who):
    cookies = await session_for(async_client, users, who)
    headers = [(b"origin", b"http://testserver")]
    if cookies:
        headers.append((b"cookie", f"sessionid={cookies['sessionid']}".encode()))
    communicator = WebsocketCommunicator(application, "/ws/health/", headers=headers)
    connected, _ = await communicator.connect(timeout=5)
    await communicator.disconnect()
    assert connected is (RANK[who] >= 1)


@pytest.mark.parametrize("origin", [b"https://evil.example", b"http://testserver.evil.example", b"null", None])
async def test_the_websocket_refuses_a_foreign_or_missing_origin_even_for_a_superuser(
    simulated, users, async_client, origin
):
    cookies = await session_for(async_client, users, "admin")
    headers = [(b"cookie", f"sessionid={cookies['sessionid']}".encode())]
    if origin is not None:
        headers.append((b"origin", origin))
    communicator = WebsocketCommunicator(application, "/ws/health/", headers=headers)
    connected, _ = await communicator.connect(timeout=5)
    await communicator.disconnect()
    assert connected is False

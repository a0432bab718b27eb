"""`base_url: env:NAME`, like `api_key: env:NAME`: read where the provider is called, judged by
the URL guard like a literal, kept as the reference on export and in the API; an unset or
refused variable makes the provider unusable with a reason naming it (never a 500, never a
failed configuration load, never the kind's public default)."""

from __future__ import annotations

import random

import pytest
from asgiref.sync import sync_to_async

from health.monitor import Monitor
from providers.adapters import urlguard
from providers.config import ConfigError, apply_config, export_config
from providers.engine import UpstreamError
from providers.models import Provider
from providers.runtime import Runtime, install_runtime
from providers.snapshot import load_snapshot
from tests.conftest import auth
from tests.fakes.openai import API_KEY, FakeOpenAI

pytestmark = pytest.mark.django_db

VAR = "GW_TEST_SPEECH_URL"
CHAT = {"model": "chain", "messages": [{"role": "user", "content": "hello there"}]}


def doc(base_url: str = f"env:{VAR}") -> dict:
    return {
        "providers": [
            {
                "name": "local",
                "kind": "openai",
                "base_url": base_url,
                "api_key": API_KEY,
                "models": ["gpt-4o-mini"],
                "capabilities": ["chat"],
                "retry": {"max_attempts": 1},
            }
        ],
        "routes": [{"name": "chain", "targets": ["local/gpt-4o-mini"]}],
    }


@pytest.fixture
def fake():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
async def rt():
    runtime = install_runtime(Runtime())
    yield runtime
    await runtime.close()


def errors_of(document: dict) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        apply_config(document, actor="test")
    return exc.value.errors


# -- configuration --------------------------------------------------------------------------


def test_the_reference_is_stored_and_exported_never_the_value(monkeypatch):
    monkeypatch.setenv(VAR, "http://127.0.0.1:9/v1")
    apply_config(doc(), actor="test")

    assert Provider.objects.get(name="local").base_url == f"env:{VAR}"
    exported = export_config()
    assert exported["providers"][0]["base_url"] == f"env:{VAR}"
    assert "127.0.0.1:9" not in str(exported)
    again = apply_config(exported, actor="test", prune=True)
    assert again.unchanged == 2 and not again.updated


def test_an_unset_variable_is_accepted_and_the_snapshot_still_loads(monkeypatch):
    monkeypatch.delenv(VAR, raising=False)
    apply_config(doc(), actor="test")

    snapshot = load_snapshot()

    assert snapshot.errors == ()
    entry = snapshot.providers["local"]
    assert entry.problem == f"base_url env:{VAR} is not set"
    assert entry.base_url == f"env:{VAR}"
    # Never the kind's public default (api.openai.com would get the key): nothing it can call.
    assert entry.config.base_url == f"env:{VAR}"
    (target,) = snapshot.routes["chain"].targets
    assert target.problem == entry.problem


def test_a_variable_holding_a_url_the_guard_refuses_is_refused_like_a_literal(monkeypatch):
    monkeypatch.setenv(VAR, "http://169.254.169.254/latest")
    literal = errors_of(doc("http://169.254.169.254/latest"))
    referred = errors_of(doc())

    reason = "host 169.254.169.254 is not allowed (a cloud metadata address)"
    assert literal == [f"providers[0].base_url: {reason}"]
    assert referred == [f"providers[0].base_url: env:{VAR} holds a URL that {reason}"]
    assert not Provider.objects.exists()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("env:SECRET_KEY", "env:SECRET_KEY names a setting of the gateway server itself"),
        ("env:DATABASE_URL", "env:DATABASE_URL names a setting of the gateway server itself"),
        ("env:", "env: is not an environment variable name"),
        ("env:NOT-A-NAME", "env:NOT-A-NAME is not an environment variable name"),
    ],
)
def test_a_reference_to_the_servers_own_settings_or_no_name_is_refused(value, message):
    (error,) = errors_of(doc(value))
    assert error.startswith(f"providers[0].base_url: {message}")


def test_a_stored_reference_to_a_server_setting_is_never_read(settings):
    apply_config(doc(), actor="test")
    Provider.objects.filter(name="local").update(base_url="env:SECRET_KEY")  # edited in the database

    entry = load_snapshot().providers["local"]

    assert entry.problem.startswith("base_url env:SECRET_KEY names a setting of the gateway server itself")
    assert settings.SECRET_KEY not in entry.config.base_url


@pytest.mark.django_db(transaction=True)
async def test_put_config_refuses_a_refused_value_with_a_400(gateway, key, monkeypatch):
    monkeypatch.setenv(VAR, "http://metadata.google.internal/v1")

    response = await gateway.put("/api/config", headers=auth(key), json=doc())

    assert response.status_code == 400
    assert response.json()["error"]["errors"] == [
        f"providers[0].base_url: env:{VAR} holds a URL that host metadata.google.internal is not allowed "
        "(a cloud metadata service)"
    ]


# -- calls ----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_with_the_variable_set_requests_reach_its_url(gateway, configure, key, fake, rt, monkeypatch):
    monkeypatch.setenv(VAR, fake.url + "/v1")
    await configure(doc())

    response = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))

    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-provider"] == "local"
    assert len(fake.requests_to("/v1/chat/completions")) == 1


@pytest.mark.django_db(transaction=True)
async def test_unset_the_route_answers_503_naming_the_variable_and_sends_nothing(
    gateway, configure, key, fake, rt, monkeypatch
):
    monkeypatch.delenv(VAR, raising=False)
    await configure(doc())

    response = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))

    assert response.status_code == 503
    error = response.json()["error"]
    assert f"base_url env:{VAR} is not set" in error["message"]
    assert [(a["provider"], a["skipped"], a["error"]) for a in error["attempts"]] == [
        ("local", "misconfigured", f"base_url env:{VAR} is not set")
    ]
    assert fake.requests == []


@pytest.mark.django_db(transaction=True)
async def test_set_later_to_a_refused_url_the_provider_is_skipped_and_the_guard_refuses_it(
    gateway, configure, key, rt, monkeypatch
):
    monkeypatch.delenv(VAR, raising=False)
    await configure(doc())
    monkeypatch.setenv(VAR, "http://169.254.169.254/v1")  # the server's environment changed
    await rt.refresh(force=True)

    response = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))

    assert response.status_code == 503
    (attempt,) = response.json()["error"]["attempts"]
    assert attempt["skipped"] == "misconfigured"
    assert attempt["error"].startswith(f"base_url env:{VAR} holds a URL that host 169.254.169.254 is not allowed")
    # The probe (and a test page) get no adapter at all: nothing is sent, the reason is given.
    entry = (await rt.current()).providers["local"]
    with pytest.raises(UpstreamError, match=r"169\.254\.169\.254 is not allowed") as refused:
        rt.adapter(entry, None)
    assert refused.value.classification.reason == "misconfigured"
    # and the URL itself is one the one guard refuses, exactly as a literal
    with pytest.raises(urlguard.URLRefused):
        urlguard.current("provider").check_url("http://169.254.169.254/v1")


@pytest.mark.django_db(transaction=True)
async def test_the_api_shows_the_reference_and_why_the_provider_cannot_be_called(
    gateway, configure, key, fake, rt, monkeypatch
):
    monkeypatch.delenv(VAR, raising=False)
    await configure(doc())

    detail = (await gateway.get("/api/providers/local", headers=auth(key))).json()
    assert detail["base_url"] == f"env:{VAR}" and detail["problem"] == f"base_url env:{VAR} is not set"
    listed = (await gateway.get("/api/providers", headers=auth(key))).json()["providers"]
    assert [(p["name"], p["base_url"], p["problem"]) for p in listed] == [
        ("local", f"env:{VAR}", f"base_url env:{VAR} is not set")
    ]

    monkeypatch.setenv(VAR, fake.url + "/v1")
    await rt.refresh(force=True)
    detail = await gateway.get("/api/providers/local", headers=auth(key))
    assert detail.json()["base_url"] == f"env:{VAR}" and detail.json()["problem"] is None
    assert fake.url not in detail.text  # the value read is not shown


@pytest.mark.django_db(transaction=True)
async def test_the_probe_of_an_unset_reference_fails_and_sends_nothing(configure, fake, rt, monkeypatch):
    monkeypatch.delenv(VAR, raising=False)
    await configure(doc())
    entry = (await rt.current()).providers["local"]

    outcome = await Monitor(rt, rng=random.Random(1), holder="t").probe(entry)

    assert outcome.ok is False and outcome.error
    assert fake.requests == []
    assert await sync_to_async(Provider.objects.filter(name="local").exists)()


# -- the admin ------------------------------------------------------------------------------


def test_the_admin_saves_a_reference_and_refuses_one_to_a_server_setting(admin_client_logged):
    from tests.providers.test_admin import provider_form

    refused = admin_client_logged.post(
        "/admin/providers/provider/add/", provider_form(base_url="env:SECRET_KEY", **{"secrets-TOTAL_FORMS": "0"})
    )
    assert refused.status_code == 200
    assert "env:SECRET_KEY names a setting of the gateway server itself" in refused.content.decode()
    assert not Provider.objects.exists()

    saved = admin_client_logged.post(
        "/admin/providers/provider/add/", provider_form(base_url=f"env:{VAR}", **{"secrets-TOTAL_FORMS": "0"})
    )
    assert saved.status_code == 302
    assert Provider.objects.get(name="openai-main").base_url == f"env:{VAR}"

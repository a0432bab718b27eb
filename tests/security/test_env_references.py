"""An `env:` reference names a variable set for a provider key or an alert target, never the
server's own configuration: an admin-scope key that could write `api_key: env:SECRET_KEY`
would have the server send its own key to any URL it names (providers/crypto.py)."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from health.models import AlertChannel
from providers import crypto
from providers.config import ConfigError, apply_config
from providers.models import Provider, Secret
from providers.snapshot import load_snapshot
from tests.conftest import auth

pytestmark = pytest.mark.django_db

# The server's own settings, the names Django and libpq read, our admin bootstrap's; in
# several cases and spellings.
SERVER_NAMES = [
    "SECRET_KEY",
    "ENCRYPTION_KEYS",
    "DATABASE_URL",
    "REDIS_URL",
    "ADMIN_PASSWORD",
    "ADMIN_USERNAME",
    "EMAIL_URL",
    "DJANGO_SETTINGS_MODULE",
    "DJANGO_ANYTHING",
    "PGPASSWORD",
    "secret_key",
    "Encryption_Keys",
    "CONSOLE_URL",
    "GATEWAY_MAX_RESPONSE_BYTES",
    "DEBUG",
]


def provider_doc(api_key: str) -> dict:
    return {
        "providers": [
            {
                "name": "exfil",
                "kind": "openai",
                "base_url": "http://127.0.0.1:9/v1",
                "api_key": api_key,
                "models": ["gpt-4o-mini"],
            }
        ]
    }


@pytest.mark.parametrize("name", SERVER_NAMES)
def test_an_import_refuses_an_env_reference_to_the_servers_own_settings(name, monkeypatch):
    monkeypatch.setenv(name, "server-value-that-must-stay-home")
    with pytest.raises(ConfigError) as info:
        apply_config(provider_doc(f"env:{name}"), actor="test", prune=True)
    [error] = info.value.errors
    assert error.startswith("providers[0].api_key: ")  # the field that said it
    assert f"env:{name}" in error and "server" in error
    assert not Provider.objects.filter(name="exfil").exists()


def test_every_variable_the_settings_module_reads_is_refused_and_provider_keys_are_not(monkeypatch):
    names = crypto.server_env_names()
    # read by project/settings.py through django-environ: found in its source, not listed by hand
    for name in (
        "SECRET_KEY",
        "ENCRYPTION_KEYS",
        "DATABASE_URL",
        "REDIS_URL",
        "EMAIL_URL",
        "ALLOWED_HOSTS",
        "GATEWAY_MAX_RESPONSE_BYTES",
        "DISCOVERY_HOSTS",
        "METRICS_PUBLIC",
    ):
        assert name in names
        assert crypto.env_reference_error(name) is not None
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment-0001")
    apply_config(provider_doc("env:OPENAI_API_KEY"), actor="test", prune=True)
    assert Provider.objects.get(name="exfil").secrets.get().value() == "sk-from-the-environment-0001"


def test_an_alert_target_may_not_name_the_servers_settings_either():
    doc = {"alert_channels": [{"name": "hook", "kind": "webhook", "url": "env:DATABASE_URL"}]}
    with pytest.raises(ConfigError) as info:
        apply_config(doc, actor="test", prune=True)
    assert info.value.errors[0].startswith("alert_channels[0].url: ")
    assert not AlertChannel.objects.exists()


def test_a_variable_holding_one_of_the_servers_keys_is_refused_under_any_name(monkeypatch, settings):
    monkeypatch.setenv("INNOCENT_LOOKING_KEY", settings.SECRET_KEY)
    with pytest.raises(ConfigError, match="server's own keys"):
        apply_config(provider_doc("env:INNOCENT_LOOKING_KEY"), actor="test", prune=True)
    monkeypatch.setenv("ANOTHER_KEY", settings.ENCRYPTION_KEYS[0])
    assert crypto.env_reference_error("ANOTHER_KEY") is not None


def test_a_stored_reference_to_a_server_setting_reveals_nothing(monkeypatch, settings):
    # Saved before this check existed (or through a path that skipped validation): the
    # value is never read, so no call carries it.
    monkeypatch.setenv("SECRET_KEY", settings.SECRET_KEY)
    provider = Provider.objects.create(
        name="exfil", kind="openai", base_url="http://127.0.0.1:9/v1", configured_models=["gpt-4o-mini"]
    )
    secret = Secret(provider=provider)
    secret.set_env("SECRET_KEY")
    secret.save()
    assert secret.value() is None
    entry = load_snapshot().providers["exfil"]
    assert [value for _, value in entry.credentials] == [None]
    channel = AlertChannel(name="hook", kind="webhook")
    channel.set_target_env("ENCRYPTION_KEYS")
    assert channel.target() is None


@pytest.mark.django_db(transaction=True)
async def test_an_admin_key_cannot_point_a_provider_at_the_servers_key(gateway, key):
    answer = await gateway.put("/api/config", json=provider_doc("env:SECRET_KEY"), headers=auth(key))
    assert answer.status_code == 400
    body = answer.json()
    assert any(e.startswith("providers[0].api_key: ") and "env:SECRET_KEY" in e for e in body["error"]["errors"])


def test_the_import_command_refuses_it_too(tmp_path):
    path = tmp_path / "doc.yaml"
    path.write_text(
        "providers:\n  - {name: exfil, kind: openai, base_url: 'http://127.0.0.1:9/v1', "
        "api_key: 'env:ENCRYPTION_KEYS'}\n"
    )
    from django.core.management.base import CommandError

    with pytest.raises((CommandError, ConfigError)) as info:
        call_command("import_config", str(path))
    assert "env:ENCRYPTION_KEYS" in str(info.value)

from __future__ import annotations

import io

import pytest
from cryptography.fernet import Fernet

from providers import crypto
from providers.models import Provider, Secret

pytestmark = pytest.mark.django_db


def test_a_value_decrypts_to_what_was_encrypted():
    token = crypto.encrypt("sk-live-1234567890abcdef")
    assert token != "sk-live-1234567890abcdef"
    assert "1234567890" not in token
    assert crypto.decrypt(token) == "sk-live-1234567890abcdef"


def test_a_secret_is_stored_encrypted_and_read_back_in_clear():
    provider = Provider.objects.create(name="p1", kind="openai")
    secret = Secret(provider=provider)
    secret.set_value("sk-proj-abcdefghijklmnop")
    secret.save()
    raw = Secret.objects.filter(pk=secret.pk).values_list("ciphertext", flat=True).get()
    assert "abcdefghijklmnop" not in raw
    assert Secret.objects.get(pk=secret.pk).value() == "sk-proj-abcdefghijklmnop"
    assert secret.hint == "sk-…mnop"


def rotate_to_a_new_key(settings) -> None:
    """Put a new key in front, run rotate_secrets, then drop the old key: only what was
    re-encrypted still reads."""
    from django.core.management import call_command

    old_key = settings.ENCRYPTION_KEYS[0]
    new_key = Fernet.generate_key().decode()
    settings.ENCRYPTION_KEYS = [new_key, old_key]
    crypto.reset_keys()
    call_command("rotate_secrets", stdout=io.StringIO())
    settings.ENCRYPTION_KEYS = [new_key]
    crypto.reset_keys()


def test_rotation_reencrypts_with_the_new_key_and_the_old_key_can_then_go(settings):
    provider = Provider.objects.create(name="p1", kind="openai")
    secret = Secret(provider=provider)
    secret.set_value("sk-rotate-me-please-1234")
    secret.save()
    rotate_to_a_new_key(settings)
    assert Secret.objects.get(pk=secret.pk).value() == "sk-rotate-me-please-1234"


def test_rotation_reencrypts_every_sealed_secret_alert_channel_targets_included(settings):
    from health.models import AlertChannel

    channel = AlertChannel(name="ops", kind="webhook")
    channel.set_target("https://hooks.example.com/services/T000/B000/rotate-this-token")
    channel.save()
    rotate_to_a_new_key(settings)
    assert AlertChannel.objects.get(pk=channel.pk).target().endswith("rotate-this-token")


def test_a_secret_encrypted_under_an_unknown_key_raises_a_clear_error(settings):
    token = crypto.encrypt("sk-abcdefghijklmnop")
    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    crypto.reset_keys()
    with pytest.raises(crypto.DecryptionError, match="ENCRYPTION_KEYS"):
        crypto.decrypt(token)


def test_an_env_reference_reads_the_variable_and_stores_nothing_secret(monkeypatch):
    monkeypatch.setenv("MY_PROVIDER_KEY", "sk-from-env-0000111122223333")
    provider = Provider.objects.create(name="p1", kind="openai")
    secret = Secret(provider=provider)
    secret.set_env("MY_PROVIDER_KEY")
    secret.save()
    secret.refresh_from_db()
    assert secret.ciphertext == ""
    assert secret.value() == "sk-from-env-0000111122223333"
    assert secret.display == "env:MY_PROVIDER_KEY"


@pytest.mark.parametrize(
    ("value", "masked"),
    [("sk-proj-abcdefghijklmnop", "sk-…mnop"), ("short", "••••"), ("AKIAIOSFODNN7EXAMPLE", "AKI…MPLE")],
)
def test_masking_shows_a_head_and_the_last_four_characters_only(value, masked):
    assert crypto.mask(value) == masked

from __future__ import annotations

import logging

import pytest

from health.models import AlertChannel
from providers.demo import load_demo
from providers.models import ApiKey, AuditLog, Provider, Route, Secret

pytestmark = pytest.mark.django_db

SECRET = "sk-admin-saved-secret-0123456789"


def provider_form(**overrides):
    data = {
        "name": "openai-main",
        "kind": "openai",
        "base_url": "https://api.openai.com/v1",
        "enabled": "on",
        "capabilities": "[]",
        "configured_models": "[]",
        "priority": "1",
        "weight": "1",
        "timeout_s": "",
        "max_concurrent": "32",
        "options": "{}",
        "retry_max_attempts": "2",
        "retry_base_delay_s": "0.5",
        "retry_max_delay_s": "8",
        "breaker_mode": "normal",
        "breaker_window_s": "",
        "breaker_min_calls": "10",
        "breaker_failure_rate": "0.5",
        "breaker_consecutive_failures": "5",
        "breaker_break_s": "30",
        "breaker_max_break_s": "300",
        "breaker_half_open_probes": "3",
        "health_interval_s": "30",
        "health_timeout_s": "10",
        "health_probe": "cheap",
        "secrets-TOTAL_FORMS": "1",
        "secrets-INITIAL_FORMS": "0",
        "secrets-0-position": "0",
        "secrets-0-label": "primary",
        "secrets-0-enabled": "on",
        "secrets-0-env_var": "",
        "secrets-0-value": SECRET,
        "catalog-TOTAL_FORMS": "0",
        "catalog-INITIAL_FORMS": "0",
        "maintenance_windows-TOTAL_FORMS": "0",
        "maintenance_windows-INITIAL_FORMS": "0",
    }
    data.update(overrides)
    return data


def test_a_provider_and_its_secret_can_be_added_in_the_admin_and_the_secret_is_never_shown(admin_client_logged):
    response = admin_client_logged.post("/admin/providers/provider/add/", provider_form())
    assert response.status_code == 302, response.content.decode()[:3000]
    provider = Provider.objects.get(name="openai-main")
    secret = provider.secrets.get()
    assert secret.value() == SECRET and secret.hint == "sk-…6789"
    pages = [
        f"/admin/providers/provider/{provider.pk}/change/",
        "/admin/providers/provider/",
        "/admin/providers/auditlog/",
        f"/admin/providers/auditlog/{AuditLog.objects.first().pk}/change/",
    ]
    for url in pages:
        body = admin_client_logged.get(url).content.decode()
        assert SECRET not in body, url
        assert secret.ciphertext not in body, url
    change_page = admin_client_logged.get(pages[0]).content.decode()
    assert "sk-…6789" in change_page


def test_saving_the_change_form_without_a_value_keeps_the_stored_secret(admin_client_logged):
    admin_client_logged.post("/admin/providers/provider/add/", provider_form())
    provider = Provider.objects.get(name="openai-main")
    secret = provider.secrets.get()
    data = provider_form(
        **{
            "priority": "4",
            "secrets-INITIAL_FORMS": "1",
            "secrets-0-id": str(secret.pk),
            "secrets-0-provider": str(provider.pk),
            "secrets-0-value": "",
        }
    )
    response = admin_client_logged.post(f"/admin/providers/provider/{provider.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    provider.refresh_from_db()
    assert provider.priority == 4
    assert provider.secrets.get().value() == SECRET


def test_an_out_of_range_policy_is_a_readable_field_error_in_the_admin(admin_client_logged):
    response = admin_client_logged.post(
        "/admin/providers/provider/add/", provider_form(breaker_failure_rate="1.5", breaker_half_open_probes="0")
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["breaker_failure_rate"] == ["must be > 0 and <= 1"]
    assert errors["breaker_half_open_probes"] == ["must be >= 1 and <= 100"]
    assert not Provider.objects.exists()


def test_admin_saves_are_audited_with_the_actor_and_the_secret_masked(admin_client_logged):
    admin_client_logged.post("/admin/providers/provider/add/", provider_form())
    entries = list(AuditLog.objects.filter(object_name="openai-main"))
    assert entries and all(e.actor == "root" for e in entries)
    assert any(e.action == "create" for e in entries)
    assert SECRET not in str([e.changes for e in entries])


def test_a_new_api_key_is_shown_once_in_the_admin_and_only_its_hash_kept(admin_client_logged):
    response = admin_client_logged.post(
        "/admin/providers/apikey/add/", {"name": "app", "scopes": ["gateway"], "rate_limit_per_minute": ""}, follow=True
    )
    body = response.content.decode()
    row = ApiKey.objects.get(name="app")
    start = body.index('id="new-api-key">') + len('id="new-api-key">')
    key = body[start : body.index("<", start)]
    assert key.startswith(row.prefix)
    from providers.models import hash_key

    assert row.key_hash == hash_key(key)
    again = admin_client_logged.get(f"/admin/providers/apikey/{row.pk}/change/").content.decode()
    assert key not in again


def test_route_targets_are_shown_inline_in_position_order(admin_client_logged):
    load_demo()
    route = Route.objects.get(name="demo")
    body = admin_client_logged.get(f"/admin/providers/route/{route.pk}/change/").content.decode()
    positions = [
        body.index(f'value="{name}"') if f'value="{name}"' in body else body.index(name)
        for name in ("sim-large", "sim-small")
    ]
    assert positions[0] < positions[1]
    changelist = admin_client_logged.get("/admin/providers/route/").content.decode()
    assert "demo-flaky/sim-large → demo-fast/sim-small → demo-slow/sim-large" in changelist


def test_demo_providers_are_marked_and_removed_in_one_action(admin_client_logged):
    load_demo()
    changelist = admin_client_logged.get("/admin/providers/provider/").content.decode()
    assert changelist.count("(demo)") == 3
    some = Provider.objects.filter(is_demo=True).first()
    admin_client_logged.post(
        "/admin/providers/provider/", {"action": "remove_demo_action", "_selected_action": [some.pk]}
    )
    assert not Provider.objects.filter(is_demo=True).exists()
    assert not Route.objects.filter(is_demo=True).exists()


def test_alert_channel_target_is_write_only(admin_client_logged):
    url = "https://hooks.slack.example.com/services/T0/B0/very-secret-token"
    response = admin_client_logged.post(
        "/admin/health/alertchannel/add/",
        {
            "name": "ops",
            "kind": "slack",
            "enabled": "on",
            "target_env": "",
            "target": url,
            "failure_threshold": "2",
            "success_threshold": "2",
            "reminder_interval_s": "",
            "notify_recovery": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    channel = AlertChannel.objects.get(name="ops")
    assert channel.target() == url
    body = admin_client_logged.get(f"/admin/health/alertchannel/{channel.pk}/change/").content.decode()
    assert "very-secret-token" not in body


def test_no_log_line_carries_the_secret(admin_client_logged, caplog):
    caplog.set_level(logging.DEBUG)
    admin_client_logged.post("/admin/providers/provider/add/", provider_form())
    admin_client_logged.get("/admin/providers/provider/")
    logging.getLogger("test").info("key was %s", SECRET)  # a careless line is scrubbed by the filter
    from project.redaction import RedactSecretsFilter

    scrub = RedactSecretsFilter()
    for record in caplog.records:
        scrub.filter(record)
        assert SECRET not in record.getMessage()


def test_the_debug_error_page_does_not_show_the_secret(client, admin_user, settings, monkeypatch):
    settings.DEBUG = True
    client.raise_request_exception = False
    client.force_login(admin_user)

    def explode(self, plaintext):
        raise RuntimeError("storage failed")

    monkeypatch.setattr(Secret, "set_value", explode)
    response = client.post("/admin/providers/provider/add/", provider_form())
    assert response.status_code == 500
    body = response.content.decode()
    assert "storage failed" in body  # it is the technical page, with frames and POST data
    assert SECRET not in body

"""The SSRF guard on provider and alert URLs: http/https only; link-local, cloud metadata,
unspecified and multicast addresses refused in every spelling a resolver accepts; loopback
and private networks allowed (local providers live there); PROVIDER_URL_DENY and
PROVIDER_URL_ALLOW on top. Checked at the rule itself and through each way a URL gets in:
`import_config`, the admin's forms and PUT /api/config."""

from __future__ import annotations

import io
import re

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from health.models import AlertChannel
from providers.models import Provider
from providers.validation import validate_provider_url
from tests.conftest import auth

SCHEMES = [
    "file:///etc/passwd",
    "ftp://example.com/models",
    "gopher://127.0.0.1:6379/_INFO",
    "javascript:alert(1)",
    "data:text/plain,hello",
    "ws://127.0.0.1:8080/",
    "127.0.0.1:11434",
]
METADATA = [
    "http://169.254.169.254/latest/meta-data/",  # AWS, Azure, GCP, OpenStack
    "http://169.254.169.254:80/computeMetadata/v1/",
    "http://169.254.170.2/v2/credentials",  # ECS task credentials (link-local)
    "http://169.254.1.1:8080/",
    "http://[fe80::1]/",
    "http://[fe80::1%25eth0]:8080/",
    "http://[FE80::A9FE:A9FE]/",
    "http://[fd00:ec2::254]/latest/meta-data/",  # AWS over IPv6
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://METADATA.Google.Internal/",
    "http://metadata/",
    "http://100.100.100.200/latest/meta-data/",  # Alibaba
    "http://0.0.0.0:8080/",
    "http://[::]/",
    "http://224.0.0.1/",
    "http://[ff02::1]/",
    "https://user:pw@169.254.169.254/",
]
# The same addresses as a resolver reads them (glibc's inet_aton: decimal, hex, octal, short
# forms), IPv4-mapped IPv6, and names with the root's trailing dot.
SPELLINGS = [
    "http://2852039166/",
    "http://0xa9fea9fe/",
    "http://0251.0376.0251.0376/",
    "http://169.254.43518/",
    "http://0xa9.0xfe.0xa9.0xfe/",
    "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://metadata.google.internal./",
    "http://169.254.169.254./",
]
ALLOWED = [
    "http://127.0.0.1:11434",
    "http://localhost:8080/v1",
    "http://[::1]:8000/v1",
    "https://api.openai.com/v1",
    "http://10.0.0.5:8000/v1",
    "http://192.168.1.20:7860",
    "http://gpu-box.lan:8000",
    "http://127.1:8080",
    "https://metadata.example.com/v1",
    "http://my-metadata-proxy:9000",
]


@pytest.mark.parametrize("url", SCHEMES + METADATA + SPELLINGS)
def test_the_rule_refuses_other_schemes_and_link_local_and_metadata_addresses(url):
    with pytest.raises(ValidationError):
        validate_provider_url(url)


@pytest.mark.parametrize("url", ALLOWED)
def test_the_rule_lets_loopback_private_and_public_addresses_through(url):
    validate_provider_url(url)


def test_deny_adds_hosts_domains_and_networks_and_allow_lets_chosen_ones_through(settings):
    settings.PROVIDER_URL_DENY = ["10.0.0.0/8", "internal.example", "fd12::/16"]
    for url in (
        "http://10.1.2.3:8000/",
        "http://internal.example/",
        "http://api.internal.example/v1",
        "http://[fd12::5]/",
        "http://167772675/",
    ):  # 10.0.1.3, spelt as a number
        with pytest.raises(ValidationError, match="not allowed"):
            validate_provider_url(url)
    validate_provider_url("http://192.168.1.20:7860")
    validate_provider_url("http://notinternal.example/")
    settings.PROVIDER_URL_ALLOW = ["169.254.170.2", "10.9.0.0/16"]
    validate_provider_url("http://169.254.170.2/v2/credentials")  # chosen on purpose
    validate_provider_url("http://10.9.1.1/")  # allowed wins over denied
    with pytest.raises(ValidationError):
        validate_provider_url("http://169.254.169.254/")  # the rest of link-local stays refused


# -- through the ways a URL gets in ---------------------------------------------------------------

BAD = [
    "http://169.254.169.254/v1",
    "file:///etc/passwd",
    "http://[fe80::1]/",
    "http://2852039166/",
    "http://metadata.google.internal/",
]


def document(url: str, hook: str = "http://127.0.0.1:9/hook") -> str:
    return (
        f"providers:\n  - {{name: p1, kind: openai, base_url: '{url}', api_key: sk-test-0000000000001}}\n"
        f"alert_channels:\n  - {{name: hook1, kind: webhook, url: '{hook}'}}\n"
    )


@pytest.mark.django_db
@pytest.mark.parametrize("url", BAD)
def test_import_config_refuses_a_bad_provider_or_alert_url_and_changes_nothing(tmp_path, url):
    for doc, where in (
        (document(url), "providers[0].base_url"),
        (document("http://127.0.0.1:11434", url), "alert_channels[0].url"),
    ):
        path = tmp_path / "config.yaml"
        path.write_text(doc)
        with pytest.raises(CommandError, match=re.escape(where)):
            call_command("import_config", str(path), stdout=io.StringIO())
        assert not Provider.objects.exists() and not AlertChannel.objects.exists()


@pytest.mark.django_db
def test_import_config_takes_loopback_urls(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(document("http://127.0.0.1:11434/v1", "http://[::1]:9000/hook"))
    call_command("import_config", str(path), stdout=io.StringIO())
    assert Provider.objects.get().base_url == "http://127.0.0.1:11434/v1"
    assert AlertChannel.objects.get().target() == "http://[::1]:9000/hook"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("url", BAD)
async def test_put_api_config_refuses_a_bad_provider_or_alert_url_and_changes_nothing(gateway, key, url):
    for doc, where in (
        (document(url), "providers[0].base_url"),
        (document("http://127.0.0.1:11434", url), "alert_channels[0].url"),
    ):
        response = await gateway.put("/api/config", content=doc.encode(), headers=auth(key))
        assert response.status_code == 400
        assert any(e.startswith(where) for e in response.json()["error"]["errors"]), response.json()
        assert not await Provider.objects.aexists() and not await AlertChannel.objects.aexists()
    ok = await gateway.put("/api/config", content=document("http://localhost:11434").encode(), headers=auth(key))
    assert ok.status_code == 200


def provider_form(url: str) -> dict[str, str]:
    return {
        "name": "p1",
        "kind": "openai",
        "base_url": url,
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
        "secrets-TOTAL_FORMS": "0",
        "secrets-INITIAL_FORMS": "0",
        "catalog-TOTAL_FORMS": "0",
        "catalog-INITIAL_FORMS": "0",
        "maintenance_windows-TOTAL_FORMS": "0",
        "maintenance_windows-INITIAL_FORMS": "0",
    }


def channel_form(url: str) -> dict[str, str]:
    return {
        "name": "hook1",
        "kind": "webhook",
        "enabled": "on",
        "target_env": "",
        "target": url,
        "failure_threshold": "2",
        "success_threshold": "2",
        "reminder_interval_s": "",
        "notify_recovery": "on",
    }


@pytest.mark.django_db
@pytest.mark.parametrize("url", BAD)
def test_the_admin_refuses_a_bad_provider_or_alert_url_with_a_field_error(admin_client_logged, url):
    response = admin_client_logged.post("/admin/providers/provider/add/", provider_form(url))
    assert response.status_code == 200 and "base_url" in response.context["adminform"].form.errors
    response = admin_client_logged.post("/admin/health/alertchannel/add/", channel_form(url))
    assert response.status_code == 200 and "target" in response.context["adminform"].form.errors
    assert not Provider.objects.exists() and not AlertChannel.objects.exists()


@pytest.mark.django_db
def test_the_admin_takes_loopback_urls(admin_client_logged):
    assert (
        admin_client_logged.post("/admin/providers/provider/add/", provider_form("http://127.0.0.1:11434")).status_code
        == 302
    )
    assert (
        admin_client_logged.post(
            "/admin/health/alertchannel/add/", channel_form("http://localhost:9000/hook")
        ).status_code
        == 302
    )

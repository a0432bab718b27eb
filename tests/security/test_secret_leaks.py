"""No clear secret anywhere: secrets are saved (provider keys as literals, of several shapes, and
alert webhooks with a token in the URL), the system is used (calls that fail, probes, pages),
and then every place an operator, a client or a log reader can look is searched for them:

- every admin page (index, change lists, add, change, history and delete pages of every object);
- the exports: `manage.py export_config` and GET /api/config (JSON and YAML);
- every API answer (each documented GET, probes, and the gateway's error bodies);
- every console page;
- every log line written at DEBUG, through the project's own log filter;
- Django's debug error page for an error raised where secrets are in scope.

A secret "leaks" when more of it shows than its mask: the part before its last four characters.
"""

from __future__ import annotations

import io
import logging
import re
import secrets
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib import admin
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from providers.config import apply_config
from tests.fakes.base import free_port

pytestmark = pytest.mark.django_db(transaction=True)

TAG = secrets.token_hex(6)
# Literal secrets in the shapes providers use, some that the log filter's patterns know and
# some that no pattern could know.
SECRETS = {
    "openai": f"sk-proj-{TAG}OpenaiLeakCheck0123456789",
    "anthropic": f"sk-ant-api03-{TAG}AnthropicLeakCheck",
    "elevenlabs": f"{TAG}elevenleakcheck0123456789ab",
    "deepl": f"{TAG}-deepl-leak-check-0001:fx",
    # on loopback, where nothing listens: a test alert fails without leaving the machine
    "webhook": f"http://127.0.0.1:{free_port()}/services/T000/B000/{TAG}WebhookToken",
    "slack": f"http://127.0.0.1:{free_port()}/services/T111/B111/{TAG}SlackToken",
    # saved through the admin's forms rather than imported
    "admin-key": f"{TAG}-admin-form-saved-key-0001",
    "admin-hook": f"http://127.0.0.1:{free_port()}/hook?token={TAG}AdminFormHookToken",
}


def leaks(text: str) -> list[str]:
    return [name for name, value in SECRETS.items() if value[:-4][-20:] in text or value in text]


@pytest.fixture
def configured() -> dict[str, Any]:
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens: every call fails at once
    doc = {
        "providers": [
            {
                "name": "leak-openai",
                "kind": "openai",
                "base_url": down + "/v1",
                "api_key": SECRETS["openai"],
                "models": ["gpt-4o-mini"],
                "retry": {"max_attempts": 1},
            },
            {
                "name": "leak-anthropic",
                "kind": "anthropic",
                "base_url": down,
                "api_key": SECRETS["anthropic"],
                "models": ["claude-sonnet-4-5"],
                "retry": {"max_attempts": 1},
            },
            {
                "name": "leak-eleven",
                "kind": "elevenlabs",
                "base_url": down,
                "api_key": SECRETS["elevenlabs"],
                "models": ["eleven_multilingual_v2"],
            },
            {"name": "leak-deepl", "kind": "deepl", "base_url": down, "api_key": SECRETS["deepl"], "models": ["deepl"]},
        ],
        "routes": [
            {
                "name": "leaky",
                "capability": "chat",
                "targets": [
                    {"provider": "leak-openai", "model": "gpt-4o-mini"},
                    {"provider": "leak-anthropic", "model": "claude-sonnet-4-5"},
                ],
            }
        ],
        "alert_channels": [
            {"name": "leak-hook", "kind": "webhook", "url": SECRETS["webhook"]},
            {"name": "leak-slack", "kind": "slack", "url": SECRETS["slack"]},
        ],
    }
    apply_config(doc, actor="test", prune=True)
    return doc


def save_through_the_admin(client: Client) -> None:
    provider = {
        "name": "leak-admin",
        "kind": "openai",
        "base_url": "http://127.0.0.1:9/v1",
        "enabled": "on",
        "capabilities": "[]",
        "configured_models": '["gpt-4o-mini"]',
        "priority": "5",
        "weight": "1",
        "timeout_s": "",
        "max_concurrent": "32",
        "options": "{}",
        "retry_max_attempts": "1",
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
        "secrets-0-value": SECRETS["admin-key"],
        "catalog-TOTAL_FORMS": "0",
        "catalog-INITIAL_FORMS": "0",
        "maintenance_windows-TOTAL_FORMS": "0",
        "maintenance_windows-INITIAL_FORMS": "0",
    }
    response = client.post("/admin/providers/provider/add/", provider)
    assert response.status_code == 302, response.content.decode()[:2000]
    response = client.post(
        "/admin/health/alertchannel/add/",
        {
            "name": "leak-admin-hook",
            "kind": "webhook",
            "enabled": "on",
            "target_env": "",
            "target": SECRETS["admin-hook"],
            "failure_threshold": "2",
            "success_threshold": "2",
            "reminder_interval_s": "",
            "notify_recovery": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]


@pytest.fixture
def debug_log() -> Iterator[io.StringIO]:
    """Everything logged at DEBUG, through the handler settings.LOGGING gives the root logger."""
    from project.redaction import RedactSecretsFilter

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RedactSecretsFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def admin_pages() -> list[str]:
    pages = ["/admin/"]
    for model in admin.site._registry:
        info = (model._meta.app_label, model._meta.model_name)
        pages.append(reverse(f"admin:{info[0]}_{info[1]}_changelist"))
        pages.append(reverse(f"admin:{info[0]}_{info[1]}_add"))
        for pk in model.objects.values_list("pk", flat=True)[:20]:
            for view in ("change", "history", "delete"):
                pages.append(reverse(f"admin:{info[0]}_{info[1]}_{view}", args=[pk]))
    return pages


async def test_no_page_answer_export_or_log_line_shows_a_clear_secret(
    configured, admin_user, gateway, key, debug_log, settings
):
    settings.ALERT_TIMEOUT_S = 1.0
    seen: dict[str, str] = {}

    @sync_to_async
    def save() -> None:
        client = Client()
        client.force_login(admin_user)
        save_through_the_admin(client)

    await save()
    names = [p["name"] for p in configured["providers"]] + ["leak-admin"]

    # use it: failing calls (OpenAI and Anthropic formats), probes, an alert test
    for body in (
        {"model": "leaky", "messages": [{"role": "user", "content": "hi"}]},
        {"model": "leaky", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
    ):
        response = await gateway.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})
        seen[f"POST /v1/chat/completions stream={body.get('stream', False)}"] = response.text
    for capability, data in (("tts", "hello"), ("translation", {"text": "hi", "target_lang": "DE"})):
        response = await gateway.post(
            "/api/execute",
            headers={"Authorization": f"Bearer {key}"},
            json={
                "capability": capability,
                "route": "leak-eleven/eleven_multilingual_v2" if capability == "tts" else "leak-deepl/deepl",
                "input": data,
            },
        )
        seen[f"POST /api/execute {capability}"] = response.text
    response = await gateway.post("/api/health/check", headers={"Authorization": f"Bearer {key}"})
    seen["POST /api/health/check"] = response.text
    out = io.StringIO()
    with pytest.raises(CommandError) as failed:  # nothing listens there
        await sync_to_async(call_command)("send_test_alert", "leak-hook", stdout=out, stderr=out)
    seen["send_test_alert"] = out.getvalue() + str(failed.value)

    # every documented GET of the API, and the exports
    from providers.openapi import REGISTRY

    for ep in REGISTRY:
        if ep.method.upper() != "GET" or ep.path == "/api/events/stream":  # never ends: tests/health
            continue
        for name in names if "{name}" in ep.path else [None]:
            path = ep.path.replace("{name}", name or "")
            for query in ("", "?format=yaml") if path == "/api/config" else ("",):
                response = await gateway.get(path + query, headers={"Authorization": f"Bearer {key}"})
                seen[f"GET {path}{query}"] = response.text
    out = io.StringIO()
    await sync_to_async(call_command)("export_config", stdout=out)
    seen["manage.py export_config"] = out.getvalue()

    # every admin and console page, as a superuser
    @sync_to_async
    def browse() -> None:
        client = Client()
        client.force_login(admin_user)
        console = ["/", "/events", "/analytics", "/discover"] + [f"/providers/{n}" for n in names]
        for path in admin_pages() + console:
            response = client.get(path)
            assert response.status_code in (200, 403), (path, response.status_code)  # 403: no add page
            seen[f"page {path}"] = response.content.decode()

    await browse()
    assert len(seen) > 60
    seen["log"] = debug_log.getvalue()
    assert seen["log"].count("\n") > 20  # the log did capture the run
    found = {where: leaks(text) for where, text in seen.items() if leaks(text)}
    assert not found, found


async def test_the_debug_error_page_shows_no_secret_in_scope(configured, gateway, key, settings, rf):
    from django.views.debug import technical_500_response

    from providers.runtime import runtime

    settings.DEBUG = True
    rt = runtime()
    snapshot = await rt.current()

    def fail_with_secrets_in_scope() -> None:
        provider = snapshot.providers["leak-openai"]
        credential, api_key = provider.credentials[0]  # noqa: RUF059  (locals a debug page shows)
        adapter = rt.adapter(provider, credential)
        config = adapter.config
        headers = adapter.headers()  # noqa: F841
        hook_url = SECRETS["webhook"]  # noqa: F841
        raise RuntimeError(f"upstream refused the call to {config.base_url}")

    request = rf.post(
        "/api/execute",
        data={"token": SECRETS["deepl"]},
        HTTP_AUTHORIZATION=f"Bearer {key}",
        HTTP_X_API_KEY=SECRETS["anthropic"],
    )
    try:
        fail_with_secrets_in_scope()
    except RuntimeError:
        page = technical_500_response(request, *sys.exc_info()).content.decode()
    assert "fail_with_secrets_in_scope" in page and "upstream refused" in page
    text = re.sub(r"&#x27;|&quot;", "'", page)
    assert not leaks(text), leaks(text)
    assert key[:-4] not in text  # the caller's gateway key, in the Authorization header

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from providers.models import AuditLog, Provider
from tests.fakes.ollama import FakeOllama

pytestmark = pytest.mark.django_db(transaction=True)


def test_discover_finds_a_local_ollama_and_registers_it_once(settings):
    with FakeOllama() as ollama:
        settings.DISCOVERY_OLLAMA_PORTS = [ollama.port]
        settings.DISCOVERY_SDWEBUI_PORTS = []
        settings.DISCOVERY_OPENAI_PORTS = []
        out = io.StringIO()
        call_command("discover", stdout=out)
        assert f"ollama   http://127.0.0.1:{ollama.port}" in out.getvalue()
        assert not Provider.objects.exists()
        call_command("discover", "--register", stdout=(out := io.StringIO()))
        provider = Provider.objects.get()
        assert provider.kind == "ollama" and provider.discovered and provider.base_url.endswith(str(ollama.port))
        assert provider.configured_models
        assert "registered as" in out.getvalue()
        call_command("discover", "--register", stdout=(out := io.StringIO()))
        assert Provider.objects.count() == 1 and "already registered" in out.getvalue()
        assert AuditLog.objects.filter(object_name=provider.name, action="create").count() == 1


def test_discover_says_so_when_nothing_answers(settings):
    from tests.fakes.base import free_port

    settings.DISCOVERY_OLLAMA_PORTS = [free_port()]
    settings.DISCOVERY_SDWEBUI_PORTS = []
    settings.DISCOVERY_OPENAI_PORTS = []
    out = io.StringIO()
    call_command("discover", stdout=out)
    assert "no local AI servers found" in out.getvalue()

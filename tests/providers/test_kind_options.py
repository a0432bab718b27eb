"""A provider's kind-specific `options` are validated like every other field (issue 14 §4): the
admin, PUT /api/config and import_config refuse what the adapter could not run with, naming the
option, and change nothing. Every kind's options are a JSON object of bounded depth and size."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from providers.models import Provider
from tests.conftest import auth

from .test_admin import provider_form

pytestmark = pytest.mark.django_db


def run_import(tmp_path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    out = io.StringIO()
    call_command("import_config", str(path), stdout=out)
    return out.getvalue()


def simulated(options: str) -> str:
    return f"providers:\n  - name: sim\n    kind: simulated\n    options: {options}\n"


BAD_SIMULATED = [
    ("{error_rate: 2}", "error_rate must be a number from 0 to 1, not 2"),
    ("{error_rate: -0.1}", "error_rate must be a number from 0 to 1"),
    ("{timeout_rate: '0.5'}", "timeout_rate must be a number from 0 to 1"),
    (
        "{error_rate: 0.6, rate_limit_rate: 0.6}",
        "error_rate + rate_limit_rate + exhausted_rate + timeout_rate must not exceed 1",
    ),
    ("{latency_ms: 1.0e+300}", "latency_ms must be a number from 0 to"),
    ("{latency_p50_ms: 100}", "latency_p50_ms and latency_p95_ms go together"),
    ("{seed: true}", "seed must be an integer"),
    ("{outage: {period_s: 10, down_s: 20}}", "outage needs period_s > 0"),
    ("{outage: [[5, 1]]}", "an outage window must end after it starts"),
    ("{embedding_dims: 2000000}", "embedding_dims must be a whole number from 1 to 8192"),
    ("{models: [{capabilities: [chat]}]}", "models[0].name must be a non-empty string"),
    ("{eror_rate: 0.5}", "eror_rate is not an option of simulated providers"),
]


@pytest.mark.parametrize(("options", "message"), BAD_SIMULATED)
def test_import_config_refuses_simulated_options_the_adapter_could_not_run_with(tmp_path, options, message):
    with pytest.raises(CommandError) as info:
        run_import(tmp_path, simulated(options))
    assert "providers[0].options: " + message in str(info.value)
    assert not Provider.objects.exists()


def test_good_simulated_options_are_taken(tmp_path):
    run_import(
        tmp_path,
        simulated(
            "{error_rate: 0.2, latency_ms: 50, seed: 3, embedding_dims: 64, "
            "outage: {period_s: 600, down_s: 60}, models: [sim-chat, {name: e, "
            "capabilities: [embeddings]}]}"
        ),
    )
    assert Provider.objects.get(name="sim").options["embedding_dims"] == 64
    with pytest.raises(CommandError, match="error_rate"):
        run_import(tmp_path, simulated("{error_rate: 2}"))
    assert Provider.objects.get(name="sim").options["error_rate"] == 0.2  # the bad update changed nothing


def openai(options: str) -> str:
    return f"providers:\n  - name: up\n    kind: openai\n    base_url: http://127.0.0.1:9/v1\n    options: {options}\n"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("{a: " + "[" * 20 + "]" * 20 + "}", "nests deeper than 16 levels"),
        ('{a: "\\ud800"}', "lone surrogate"),
        ("{a: .nan}", "is not a finite number"),
        ("{a: [" + ", ".join(["1"] * 10_001) + "]}", "more than 10000 values"),
    ],
)
def test_every_kinds_options_are_a_bounded_json_object(tmp_path, options, message):
    with pytest.raises(CommandError, match=r"providers\[0\]\.options") as info:
        run_import(tmp_path, openai(options))
    assert message in str(info.value)
    assert not Provider.objects.exists()


@pytest.mark.parametrize(
    "text",
    [
        simulated("{x: " + "[" * 3000 + "]" * 3000 + "}"),
        simulated("{x: " + "{a: " * 3000 + "1" + "}" * 3000 + "}"),
    ],
)
def test_import_config_refuses_a_document_nested_thousands_deep_without_a_traceback(tmp_path, text):
    with pytest.raises(CommandError, match="nests deeper than"):
        run_import(tmp_path, text)
    assert not Provider.objects.exists()


@pytest.mark.django_db(transaction=True)
async def test_put_config_refuses_bad_simulated_options_naming_the_option(gateway, key):
    response = await gateway.put(
        "/api/config?prune=false",
        headers=auth(key),
        json={"providers": [{"name": "sim", "kind": "simulated", "options": {"error_rate": 2}}]},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_config"
    assert error["errors"] == ["providers[0].options: error_rate must be a number from 0 to 1, not 2"]
    assert not await Provider.objects.aexists()


def test_the_admin_refuses_bad_simulated_options_as_a_field_error(admin_client_logged):
    response = admin_client_logged.post(
        "/admin/providers/provider/add/",
        provider_form(
            name="sim", kind="simulated", base_url="", options='{"error_rate": 2}', **{"secrets-TOTAL_FORMS": "0"}
        ),
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["options"] == ["error_rate must be a number from 0 to 1, not 2"]
    assert not Provider.objects.exists()


async def test_the_simulated_provider_itself_refuses_an_embedding_too_large_to_compute():
    from providers.adapters import ProviderConfig
    from providers.adapters.simulated import SimulatedAdapter
    from providers.engine import UpstreamError

    adapter = SimulatedAdapter(ProviderConfig(name="sim", kind="simulated", base_url=""))
    for request in (
        {"input": "hi", "dimensions": 2_000_000},
        {"input": ["hi"] * 100, "dimensions": 8192},
        {"input": "hi", "dimensions": "16"},
    ):
        with pytest.raises(UpstreamError) as info:
            await adapter.embeddings(request, model="sim-embed", timeout=1)
        assert info.value.status == 400, request
    result = await adapter.embeddings({"input": ["hi"] * 8, "dimensions": 8192}, model="sim-embed", timeout=1)
    assert len(result.data["data"]) == 8

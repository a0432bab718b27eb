from __future__ import annotations

import io
import textwrap

import pytest
import yaml
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.core.management.base import CommandError

from health.models import AlertChannel
from providers.config import ConfigError, apply_config, dump_yaml, export_config, load_document
from providers.models import AuditLog, ConfigState, Provider, ProviderModel, Route, Secret
from tests.conftest import auth

pytestmark = pytest.mark.django_db

FULL = textwrap.dedent("""
    providers:
      - name: openai-main
        kind: openai
        base_url: https://api.openai.com/v1
        api_key: env:OPENAI_API_KEY
        models: [gpt-4o-mini]
        capabilities: [chat, embeddings]
        priority: 1
        weight: 1
        enabled: true
        timeout_s: 30
        retry: {max_attempts: 2, base_delay_s: 0.5, max_delay_s: 8}
        breaker: {window_s: 60, min_calls: 10, failure_rate: 0.5, consecutive_failures: 5,
                  break_s: 30, max_break_s: 300, half_open_probes: 3}
        health_check: {interval_s: 30, timeout_s: 10}
        prices: {gpt-4o-mini: {input_per_mtok: 0.15, output_per_mtok: 0.6, context_window: 128000}}
      - name: local-ollama
        kind: ollama
        base_url: http://127.0.0.1:11434
        priority: 2
      - name: anthropic-main
        kind: anthropic
        api_key: sk-ant-literal-secret-value-0001
    routes:
      - name: default
        capability: chat
        strategy: priority
        targets:
          - {provider: openai-main, model: gpt-4o-mini}
          - {provider: local-ollama, model: llama3.2}
        max_attempts: 3
        deadline_s: 60
    alert_channels:
      - name: ops-hook
        kind: webhook
        url: https://hooks.example.com/T000/secret-token-abcdef
        providers: [openai-main]
""")


def run_import(text: str, *extra: str) -> str:
    path = "/tmp/_gw_import_test.yaml"
    with open(path, "w") as f:
        f.write(text)
    out = io.StringIO()
    call_command("import_config", path, *extra, stdout=out)
    return out.getvalue()


def test_every_contract_key_is_accepted_and_stored():
    run_import(FULL)
    p = Provider.objects.get(name="openai-main")
    assert (p.kind, p.base_url, p.priority, p.timeout_s) == ("openai", "https://api.openai.com/v1", 1, 30.0)
    assert p.configured_models == ["gpt-4o-mini"] and p.capabilities == ["chat", "embeddings"]
    assert (p.retry_max_attempts, p.retry_base_delay_s, p.retry_max_delay_s) == (2, 0.5, 8.0)
    assert (p.breaker_window_s, p.breaker_min_calls, p.breaker_failure_rate) == (60.0, 10, 0.5)
    assert (p.breaker_consecutive_failures, p.breaker_break_s, p.breaker_max_break_s) == (5, 30.0, 300.0)
    assert p.breaker_half_open_probes == 3 and (p.health_interval_s, p.health_timeout_s) == (30.0, 10.0)
    assert p.secrets.get().display == "env:OPENAI_API_KEY"
    model = ProviderModel.objects.get(provider=p, name="gpt-4o-mini")
    assert float(model.input_price_per_mtok) == 0.15 and model.context_window == 128000
    route = Route.objects.get(name="default")
    assert [(t.provider.name, t.model) for t in route.targets.all()] == [
        ("openai-main", "gpt-4o-mini"),
        ("local-ollama", "llama3.2"),
    ]
    assert (route.max_attempts, route.deadline_s) == (3, 60.0)
    channel = AlertChannel.objects.get(name="ops-hook")
    assert channel.target() == "https://hooks.example.com/T000/secret-token-abcdef"
    assert [c.name for c in channel.providers.all()] == ["openai-main"]


def test_a_literal_api_key_is_stored_encrypted():
    run_import(FULL)
    secret = Secret.objects.get(provider__name="anthropic-main")
    assert "literal-secret" not in secret.ciphertext
    assert secret.value() == "sk-ant-literal-secret-value-0001"


def test_importing_the_same_file_twice_changes_nothing_the_second_time():
    run_import(FULL)
    version, audits = ConfigState.current(), AuditLog.objects.count()
    out = run_import(FULL)
    assert "created 0, updated 0, deleted 0, unchanged 5" in out
    assert ConfigState.current() == version
    assert AuditLog.objects.count() == audits


def test_a_file_with_one_bad_field_changes_nothing_and_names_the_path():
    run_import(FULL)
    before = export_config()
    bad = FULL.replace("failure_rate: 0.5", "failure_rate: 1.5").replace("priority: 2", "priority: 7")
    with pytest.raises(CommandError) as info:
        run_import(bad)
    assert "providers[0].breaker.failure_rate: must be > 0 and <= 1" in str(info.value)
    assert export_config() == before
    assert Provider.objects.get(name="local-ollama").priority == 2


def test_a_bad_file_on_an_empty_database_creates_nothing():
    bad = FULL.replace("half_open_probes: 3", "half_open_probes: 0")
    with pytest.raises(CommandError, match=r"providers\[0\]\.breaker\.half_open_probes: must be >= 1"):
        run_import(bad)
    assert Provider.objects.count() == 0 and Route.objects.count() == 0 and AlertChannel.objects.count() == 0


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"retry": {"max_attempts": 0}}, "providers[0].retry.max_attempts: must be >= 1 and <= 10"),
        ({"retry": {"base_delay_s": -1}}, "providers[0].retry.base_delay_s: must be >= 0 and <= 60"),
        ({"retry": {"max_delay_s": 0}}, "providers[0].retry.max_delay_s: must be > 0 and <= 300"),
        ({"breaker": {"failure_rate": 0}}, "providers[0].breaker.failure_rate: must be > 0 and <= 1"),
        ({"breaker": {"min_calls": 0}}, "providers[0].breaker.min_calls: must be >= 1 and <= 100000"),
        ({"breaker": {"consecutive_failures": -1}}, "providers[0].breaker.consecutive_failures: must be >= 0"),
        ({"breaker": {"break_s": 0}}, "providers[0].breaker.break_s: must be > 0 and <= 86400"),
        (
            {"breaker": {"break_s": 60, "max_break_s": 30}},
            "providers[0].breaker.max_break_s: must be >= breaker break_s",
        ),
        ({"breaker": {"half_open_probes": 101}}, "providers[0].breaker.half_open_probes: must be >= 1 and <= 100"),
        # an openai provider with no capabilities listed may be sent images too (120 s attempts):
        # its one breaker's window must hold two of those
        ({"breaker": {"window_s": 30}}, "providers[0].breaker.window_s: must be >= 2 × the attempt timeout (240 s)"),
        (
            {"breaker": {"window_s": 30}, "capabilities": ["chat"]},
            "providers[0].breaker.window_s: must be >= 2 × the attempt timeout (60 s)",
        ),
        ({"health_check": {"interval_s": 0}}, "providers[0].health_check.interval_s: must be >= 1 and <= 86400"),
        ({"health_check": {"timeout_s": 0}}, "providers[0].health_check.timeout_s: must be > 0 and <= 600"),
        ({"timeout_s": 0}, "providers[0].timeout_s: must be > 0 and <= 600"),
        ({"weight": 0}, "providers[0].weight: must be > 0 and <= 1000"),
        ({"priority": -1}, "providers[0].priority: must be >= 0 and <= 1000"),
        ({"kind": "skynet"}, "providers[0].kind: Value 'skynet' is not a valid choice."),
        ({"capabilities": ["chat", "telepathy"]}, "providers[0].capabilities: must be a list of: chat"),
        ({"base_url": "ftp://example.com"}, "providers[0].base_url: must be an http:// or https:// URL"),
        ({"base_url": "http://169.254.169.254/latest"}, "providers[0].base_url: host 169.254.169.254 is not allowed"),
        ({"name": "Bad Name!"}, "providers[0].name: must be 1-64 lowercase letters"),
        ({"retry": {"max_attempts": "two"}}, "providers[0].retry.max_attempts: must be a whole number"),
        ({"breaker": {"typo_s": 1}}, "providers[0].breaker.typo_s: unknown field"),
        ({"colour": "blue"}, "providers[0].colour: unknown field"),
    ],
)
def test_each_policy_validation_error_names_its_path(edit, message):
    entry = {"name": "p1", "kind": "openai", "base_url": "https://api.example.com/v1"}
    for key, value in edit.items():
        if isinstance(value, dict):
            entry.setdefault(key, {}).update(value)
        else:
            entry[key] = value
    with pytest.raises(ConfigError) as info:
        apply_config({"providers": [entry]}, actor="test")
    assert any(line.startswith(message) for line in info.value.errors), info.value.errors
    assert Provider.objects.count() == 0


def test_route_errors_name_the_target_path():
    doc = load_document(
        FULL.replace("provider: local-ollama", "provider: nowhere").replace("strategy: priority", "strategy: vibes")
    )
    with pytest.raises(ConfigError) as info:
        apply_config(doc, actor="test")
    assert "routes[0].targets[1].provider: unknown provider 'nowhere'" in info.value.errors
    assert any(e.startswith("routes[0].strategy: Value 'vibes' is not a valid choice") for e in info.value.errors)


def test_invalid_yaml_reports_the_line():
    with pytest.raises(ConfigError, match=r"line \d+, column \d+: not valid YAML or JSON"):
        load_document("providers:\n  - name: [unclosed\n")


def test_json_is_accepted_too():
    doc = load_document('{"providers": [{"name": "j1", "kind": "simulated"}]}')
    apply_config(doc, actor="test")
    assert Provider.objects.filter(name="j1", kind="simulated").exists()


def test_export_then_import_round_trips_without_a_change():
    run_import(FULL)
    exported = dump_yaml(export_config())
    version = ConfigState.current()
    Provider.objects.all().update()  # nothing
    out = run_import(exported)
    assert "created 0, updated 0, deleted 0" in out
    assert ConfigState.current() == version
    assert Secret.objects.get(provider__name="anthropic-main").value() == "sk-ant-literal-secret-value-0001"


def test_export_round_trips_into_an_empty_database_for_env_references():
    run_import(
        FULL.replace("api_key: sk-ant-literal-secret-value-0001", "api_key: env:ANTHROPIC_KEY").replace(
            "url: https://hooks.example.com/T000/secret-token-abcdef", "url: env:HOOK_URL"
        )
    )
    exported = export_config()
    Route.objects.all().delete()
    Provider.objects.all().delete()
    AlertChannel.objects.all().delete()
    apply_config(exported, actor="test")
    assert export_config() == exported


def test_export_never_contains_a_clear_secret():
    run_import(FULL)
    text = dump_yaml(export_config())
    assert "sk-ant-literal-secret-value-0001" not in text
    assert "secret-token-abcdef" not in text
    assert "sk-…0001" in text
    assert "env:OPENAI_API_KEY" in text
    by_name = {p["name"]: p for p in yaml.safe_load(text)["providers"]}
    assert by_name["openai-main"]["api_key"] == "env:OPENAI_API_KEY"
    assert by_name["anthropic-main"]["api_key"] == "sk-…0001"


def test_a_masked_value_without_a_stored_secret_is_refused():
    with pytest.raises(ConfigError, match=r"providers\[0\]\.api_key: is a masked value"):
        apply_config({"providers": [{"name": "x", "kind": "openai", "api_key": "sk-…0001"}]}, actor="t")


def test_changes_are_audited_with_secrets_masked():
    run_import(FULL)
    run_import(
        FULL.replace("sk-ant-literal-secret-value-0001", "sk-ant-literal-secret-value-0002").replace(
            "priority: 2", "priority: 5"
        )
    )
    update = AuditLog.objects.get(object_name="anthropic-main", action="update")
    assert update.actor == "import_config"
    assert update.changes["api_keys"] == [["sk-…0001"], ["sk-…0002"]]
    assert "literal-secret" not in str(AuditLog.objects.values_list("changes", flat=True)[::1])
    assert AuditLog.objects.get(object_name="local-ollama", action="update").changes["priority"] == [2, 5]


def test_prune_deletes_what_the_file_does_not_name():
    run_import(FULL)
    run_import("providers:\n  - {name: openai-main, kind: openai}\n", "--prune")
    assert list(Provider.objects.values_list("name", flat=True)) == ["openai-main"]
    assert Route.objects.count() == 0 and AlertChannel.objects.count() == 0


def test_a_missing_file_is_a_clear_error():
    with pytest.raises(CommandError, match="No such file"):
        call_command("import_config", "/nonexistent/config.yaml", stdout=io.StringIO())


# -- the catalog: what the entry's `models` and `prices` say ---------------------------------


def priced(prices: dict, models: list[str] | None = None) -> dict:
    return {"providers": [{"name": "cat", "kind": "simulated", "models": models or [], "prices": prices}]}


def catalog() -> dict[str, tuple[str, float | None, int | None]]:
    """name -> (source, input price or None when unknown, context window)."""
    return {
        m.name: (m.source, None if m.input_price_per_mtok is None else float(m.input_price_per_mtok), m.context_window)
        for m in ProviderModel.objects.filter(provider__name="cat")
    }


def test_a_price_entry_the_document_drops_is_deleted_and_audited():
    apply_config(
        priced({"m1": {"input_per_mtok": 1.5, "context_window": 8000}, "m2": {"input_per_mtok": 2}}), actor="test"
    )
    summary = apply_config(priced({"m1": {"input_per_mtok": 1.5, "context_window": 8000}}), actor="test")
    assert summary.updated == ["provider cat"]
    assert catalog() == {"m1": ("config", 1.5, 8000)}
    audit = AuditLog.objects.filter(object_name="cat", action="update").get()
    assert audit.changes == {"prices.m2": [{"input_per_mtok": 2.0}, None]}


def test_a_model_dropped_from_models_leaves_the_catalog_and_one_kept_without_prices_has_none():
    apply_config(priced({"m1": {"input_per_mtok": 1.5}}, models=["m1", "m2", "m3"]), actor="test")
    apply_config(priced({}, models=["m1", "m3"]), actor="test")
    assert catalog() == {"m1": ("config", None, None), "m3": ("config", None, None)}
    changes = AuditLog.objects.filter(object_name="cat", action="update").get().changes
    assert changes["prices.m1"] == [{"input_per_mtok": 1.5}, {"input_per_mtok": None}]
    assert changes["prices.m2"] == [{}, None]
    assert changes["models"] == [["m1", "m2", "m3"], ["m1", "m3"]]


def discovered(**facts) -> None:
    """Provider `cat` (configured with no prices) and a model of it that discovery found."""
    apply_config(priced({}), actor="test")
    ProviderModel.objects.create(provider=Provider.objects.get(name="cat"), name="found", source="discovered", **facts)


def test_a_discovered_model_the_document_stops_pricing_keeps_its_row_and_facts_but_not_its_prices():
    discovered(context_window=32000, capabilities=["chat"])
    apply_config(
        priced({"found": {"input_per_mtok": 3, "context_window": 32000, "capabilities": ["chat"]}}), actor="test"
    )
    assert catalog() == {"found": ("discovered", 3.0, 32000)}
    apply_config(priced({}), actor="test")
    assert catalog() == {"found": ("discovered", None, 32000)}
    assert ProviderModel.objects.get(name="found").capabilities == ["chat"]
    audit = AuditLog.objects.filter(object_name="cat", action="update").latest("id")
    assert audit.changes == {"prices.found": [{"input_per_mtok": 3.0}, {"input_per_mtok": None}]}


def test_pricing_a_discovered_model_keeps_the_facts_discovery_found_unless_the_entry_names_them():
    discovered(context_window=32000, capabilities=["chat", "image"])
    apply_config(priced({"found": {"input_per_mtok": 3, "output_per_mtok": 6}}), actor="test")
    row = ProviderModel.objects.get(name="found")
    assert (row.context_window, row.capabilities, float(row.output_price_per_mtok)) == (32000, ["chat", "image"], 6.0)
    audit = AuditLog.objects.filter(object_name="cat", action="update").latest("id")
    assert set(audit.changes) == {"prices.found"}
    assert audit.changes["prices.found"][1] == {"input_per_mtok": 3.0, "output_per_mtok": 6.0}
    apply_config(priced({"found": {"input_per_mtok": 3, "output_per_mtok": 6, "capabilities": ["chat"]}}), actor="t")
    row.refresh_from_db()
    assert (row.context_window, row.capabilities) == (32000, ["chat"])  # named: the entry's own


def test_an_unpriced_discovered_model_is_left_alone():
    discovered(context_window=32000)
    summary = apply_config(priced({}), actor="test")
    assert summary.unchanged == 1 and catalog() == {"found": ("discovered", None, 32000)}


def test_a_model_the_configuration_made_without_prices_survives_export_and_import():
    apply_config(priced({"bare": {}}), actor="test")
    exported = export_config()
    assert exported["providers"][0]["prices"] == {"bare": {}}
    summary = apply_config(exported, actor="test", prune=True)
    assert summary.unchanged == 1 and catalog() == {"bare": ("config", None, None)}


@pytest.mark.django_db(transaction=True)
async def test_put_config_deletes_a_price_entry_the_document_drops(gateway, key):
    doc = priced({"m1": {"input_per_mtok": 1}, "m2": {"input_per_mtok": 2}})
    assert (await gateway.put("/api/config", headers=auth(key), json=doc)).status_code == 200
    exported = (await gateway.get("/api/config", headers=auth(key))).json()
    del exported["providers"][0]["prices"]["m2"]
    response = await gateway.put("/api/config", headers=auth(key), json=exported)
    assert response.status_code == 200 and response.json()["updated"] == ["provider cat"]
    assert await sync_to_async(catalog)() == {"m1": ("config", 1.0, None)}
    audit = await AuditLog.objects.filter(object_name="cat", action="update").alatest("id")
    assert audit.changes == {"prices.m2": [{"input_per_mtok": 2.0}, None]}

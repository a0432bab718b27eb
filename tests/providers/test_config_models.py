"""The configuration document's entry models (providers/config/schema.py, health's
AlertChannelConfig): what they refuse, how the refusal reads, and that the importer, the
exporter and the OpenAPI document all go through them."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async

from health.models import AlertChannel
from providers.config import ConfigError, apply_config, export_config
from providers.models import Provider, ProviderModel, Route
from providers.schemas import ConfigDocument
from tests.conftest import auth

pytestmark = pytest.mark.django_db


def errors_of(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        apply_config(doc, actor="test")
    return info.value.errors


def provider(**keys: Any) -> dict[str, Any]:
    return {"name": "p1", "kind": "simulated", **keys}


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"retry": {"max_attempts": "two"}}, "providers[0].retry.max_attempts: must be a whole number"),
        ({"retry": {"max_attempts": 2.5}}, "providers[0].retry.max_attempts: must be a whole number"),
        ({"breaker": {"failure_rate": "0.5"}}, "providers[0].breaker.failure_rate: must be a number"),
        ({"breaker": {"window_s": [60]}}, "providers[0].breaker.window_s: must be a number"),
        ({"health_check": {"probe": 1}}, "providers[0].health_check.probe: must be a string"),
        ({"limits": {"tokens_per_minute": 1.5}}, "providers[0].limits.tokens_per_minute: must be a whole number"),
        ({"prices": {"m1": {"input_per_mtok": "0.15"}}}, "providers[0].prices.m1.input_per_mtok: must be a number"),
        ({"prices": {"m1": {"context_window": 1.5}}}, "providers[0].prices.m1.context_window: must be a whole number"),
        ({"prices": {"m1": 3}}, "providers[0].prices.m1: must be a mapping"),
        ({"prices": ["m1"]}, "providers[0].prices: must be a mapping"),
        ({"breaker": 5}, "providers[0].breaker: must be a mapping"),
        ({"breaker": None}, "providers[0].breaker: must be a mapping"),
        ({"options": []}, "providers[0].options: must be a mapping"),
        ({"models": ["m1", 2]}, "providers[0].models[1]: must be a string"),
        ({"models": ["m1", ""]}, "providers[0].models[1]: must not be empty"),
        ({"models": "m1"}, "providers[0].models: must be a list"),
        ({"api_keys": ["sk-one", 2]}, "providers[0].api_keys[1]: must be a string"),
        ({"enabled": "yes"}, "providers[0].enabled: must be true or false"),
        ({"priority": None}, "providers[0].priority: must not be empty"),
        ({"kind": None}, "providers[0].kind: must not be empty"),
    ],
)
def test_a_wrong_type_is_reported_at_its_path_however_deep(keys, message):
    assert errors_of({"providers": [provider(**keys)]}) == [message]
    assert not Provider.objects.exists()


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"priority": True}, "providers[0].priority: must be a whole number"),
        ({"retry": {"max_attempts": False}}, "providers[0].retry.max_attempts: must be a whole number"),
        ({"weight": True}, "providers[0].weight: must be a number"),
        ({"prices": {"m1": {"per_image": True}}}, "providers[0].prices.m1.per_image: must be a number"),
        ({"enabled": 1}, "providers[0].enabled: must be true or false"),
    ],
)
def test_a_boolean_is_no_number_and_a_number_no_boolean(keys, message):
    assert errors_of({"providers": [provider(**keys)]}) == [message]


def test_an_int_is_taken_for_a_number_and_an_integral_float_for_a_whole_number():
    apply_config({"providers": [provider(weight=2, max_concurrent=8.0, retry={"max_attempts": 3.0})]}, actor="test")
    row = Provider.objects.get(name="p1")
    assert (row.weight, row.max_concurrent, row.retry_max_attempts) == (2.0, 8, 3)
    assert isinstance(row.max_concurrent, int)


def test_a_missing_kind_is_required():
    assert errors_of({"providers": [{"name": "p1"}]}) == ["providers[0].kind: is required"]


PROVIDER_ALLOWED = (
    "api_key, api_keys, base_url, breaker, cache, capabilities, enabled, health_check, kind, limits, "
    "max_concurrent, models, name, options, prices, priority, retry, timeout_s, weight"
)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"providers": [provider(colour="blue")]}, f"providers[0].colour: unknown field (allowed: {PROVIDER_ALLOWED})"),
        (
            {"providers": [provider(retry={"attempts": 2})]},
            "providers[0].retry.attempts: unknown field (allowed: base_delay_s, max_attempts, max_delay_s)",
        ),
        (
            {"providers": [provider(breaker={"typo_s": 1})]},
            "providers[0].breaker.typo_s: unknown field (allowed: break_s, consecutive_failures, failure_rate, "
            "half_open_probes, max_break_s, min_calls, mode, window_s)",
        ),
        (
            {"providers": [provider(health_check={"every": 1})]},
            "providers[0].health_check.every: unknown field (allowed: flap_checks, flap_seconds, interval_s, probe, "
            "timeout_s)",
        ),
        (
            {"providers": [provider(limits={"rpm": 1})]},
            "providers[0].limits.rpm: unknown field (allowed: requests_per_minute, tokens_per_minute)",
        ),
        (
            {"providers": [provider(prices={"m1": {"input": 1}})]},
            "providers[0].prices.m1.input: unknown field (allowed: capabilities, context_window, input_per_mtok, "
            "output_per_mtok, per_image, per_kchar, per_minute)",
        ),
        (
            {"providers": [provider()], "routes": [{"name": "r", "targets": ["p1/m"], "colour": 1}]},
            "routes[0].colour: unknown field (allowed: cache, capability, deadline_s, description, enabled, hedge, "
            "hedge_delay_s, max_attempts, name, retry, strategy, targets)",
        ),
        (
            {"providers": [provider()], "routes": [{"name": "r", "targets": [{"provider": "p1", "modle": "m"}]}]},
            "routes[0].targets[0].modle: unknown field (allowed: model, provider, weight)",
        ),
        (
            {"alert_channels": [{"name": "a", "kind": "webhook", "url": "https://hooks.example.com/x", "colour": 1}]},
            "alert_channels[0].colour: unknown field (allowed: enabled, events, failure_threshold, kind, name, "
            "notify_recovery, providers, reminder_interval_s, success_threshold, to, url)",
        ),
        (
            {"providers": [provider()], "colour": []},
            "colour: unknown section (allowed: providers, routes, alert_channels)",
        ),
    ],
)
def test_an_unknown_field_is_refused_at_every_level_naming_what_is_allowed(doc, message):
    assert errors_of(doc) == [message]


def test_a_non_string_key_is_an_unknown_field_or_a_bad_mapping_key():
    errors = errors_of({"providers": [provider(**{"options": {1: "x"}}) | {7: "x"}]})
    assert errors == [
        "providers[0].options.1: key must be a string",
        f"providers[0].7: unknown field (allowed: {PROVIDER_ALLOWED})",
    ]


def test_an_error_never_shows_the_value_it_refuses():
    secret = "sk-proj-ThisMustNeverBeEchoed0123456789"
    errors = errors_of({"providers": [provider(api_key=[secret], timeout_s=secret, models=[secret, 1])]})
    assert errors == [
        "providers[0].models[1]: must be a string",
        "providers[0].timeout_s: must be a number",
        "providers[0].api_key: must be a string",
    ]
    assert not any(secret in e or "input_value" in e or "pydantic" in e for e in errors)


def test_targets_may_be_given_as_provider_slash_model_or_provider_alone():
    apply_config(
        {
            "providers": [provider(), provider(name="p2")],
            "routes": [{"name": "r", "targets": ["p1/sim-chat", "p2", {"provider": "p1", "model": "b/c"}]}],
        },
        actor="test",
    )
    route = Route.objects.get(name="r")
    assert [(t.provider.name, t.model) for t in route.targets.all()] == [("p1", "sim-chat"), ("p2", ""), ("p1", "b/c")]
    assert export_config()["routes"][0]["targets"] == [
        {"provider": "p1", "model": "sim-chat"},
        {"provider": "p2", "model": ""},
        {"provider": "p1", "model": "b/c"},
    ]


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ([5], 'routes[0].targets[0]: must be a mapping with provider and model, or "provider/model"'),
        (["nowhere/m"], "routes[0].targets[0].provider: unknown provider 'nowhere'"),
        (["/m"], "routes[0].targets[0].provider: must not be empty"),
        ([{"model": "m"}], "routes[0].targets[0].provider: is required"),
        ([{"provider": "p1", "weight": "2"}], "routes[0].targets[0].weight: must be a number"),
        ([{"provider": "p1", "weight": 0}], "routes[0].targets[0].weight: must be > 0 and <= 1000"),
        (["p1/m", {"provider": "p1", "weight": 1001}], "routes[0].targets[1].weight: must be > 0 and <= 1000"),
        ([], "routes[0].targets: must not be empty"),
        ("p1/m", "routes[0].targets: must be a list"),
        (None, "routes[0].targets: must be a list"),
    ],
)
def test_a_bad_target_is_reported_at_its_path(targets, message):
    assert errors_of({"providers": [provider()], "routes": [{"name": "r", "targets": targets}]}) == [message]


def test_a_route_without_targets_is_refused():
    assert errors_of({"routes": [{"name": "r"}]}) == ["routes[0].targets: is required"]


HOOK = "https://hooks.example.com/T000/secret-token"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"url": 5}, "alert_channels[0].url: must be a string"),
        ({"failure_threshold": True}, "alert_channels[0].failure_threshold: must be a whole number"),
        ({"failure_threshold": 0}, "alert_channels[0].failure_threshold: must be >= 1 and <= 100"),
        ({"reminder_interval_s": 30}, "alert_channels[0].reminder_interval_s: must be >= 60 and <= 604800"),
        ({"notify_recovery": "no"}, "alert_channels[0].notify_recovery: must be true or false"),
        ({"providers": "p1"}, "alert_channels[0].providers: must be a list"),
        ({"providers": ["p1", "nowhere"]}, "alert_channels[0].providers[1]: unknown provider 'nowhere'"),
        ({"kind": "pager"}, "alert_channels[0].kind: Value 'pager' is not a valid choice."),
        ({"url": None}, "alert_channels[0].url: is required"),
        ({"url": "ftp://example.com/x"}, "alert_channels[0].url: must be an http:// or https:// URL"),
        ({"kind": "email", "url": None, "to": "not an address"}, "alert_channels[0].to: Enter a valid email address."),
    ],
)
def test_an_alert_channel_error_is_reported_at_its_path(entry, message):
    doc = {"providers": [provider()], "alert_channels": [{"name": "ops", "kind": "webhook", "url": HOOK, **entry}]}
    errors = errors_of(doc)
    assert len(errors) == 1 and errors[0].startswith(message), errors
    assert not AlertChannel.objects.exists()


def test_a_missing_alert_channel_kind_is_required():
    assert errors_of({"alert_channels": [{"name": "ops", "url": HOOK}]}) == ["alert_channels[0].kind: is required"]


@pytest.mark.parametrize(
    ("section", "kind", "entry"),
    [
        ("providers", "provider", provider()),
        ("routes", "route", {"name": "p1", "targets": ["p1/m"]}),
        ("alert_channels", "alert channel", {"name": "p1", "kind": "webhook", "url": HOOK}),
    ],
)
def test_every_section_wants_a_list_of_mappings_each_with_a_name_of_its_own(section, kind, entry):
    others = {} if section == "providers" else {"providers": [provider()]}
    nameless = {k: v for k, v in entry.items() if k != "name"}
    doc = {**others, section: [entry, dict(entry), nameless, {**entry, "name": ""}, {**entry, "name": 7}, "p2"]}
    assert errors_of(doc) == [
        f"{section}[1].name: duplicate {kind} 'p1'",
        f"{section}[2].name: is required",
        f"{section}[3].name: must be a non-empty string",
        f"{section}[4].name: must be a non-empty string",
        f"{section}[5]: must be a mapping",
    ]
    assert errors_of({**others, section: {"p1": entry}}) == [f"{section}: must be a list"]


def test_an_empty_section_is_no_entry():
    apply_config({"providers": [provider()], "routes": None, "alert_channels": None}, actor="test")
    assert Provider.objects.filter(name="p1").exists()


def test_a_reference_to_an_entry_with_errors_is_not_reported_as_unknown_too():
    doc = {
        "providers": [provider(priority="high")],
        "routes": [{"name": "r", "targets": ["p1/m"]}],
        "alert_channels": [{"name": "ops", "kind": "webhook", "url": HOOK, "providers": ["p1"]}],
    }
    assert errors_of(doc) == ["providers[0].priority: must be a whole number"]


# Every key a provider, price, route and target entry has, none at its default.
EVERYTHING = {
    "providers": [
        {
            "name": "full",
            "kind": "openai",
            "base_url": "https://api.example.com/v1",
            "models": ["m1", "m2"],
            "capabilities": ["chat", "embeddings"],
            "priority": 3,
            "weight": 2.5,
            "enabled": False,
            "timeout_s": 20.0,
            "max_concurrent": 5,
            "options": {"organization": "org-1"},
            "retry": {"max_attempts": 3, "base_delay_s": 0.25, "max_delay_s": 4.0},
            "breaker": {
                "mode": "metrics_only",
                "window_s": 120.0,
                "min_calls": 20,
                "failure_rate": 0.25,
                "consecutive_failures": 7,
                "break_s": 15.0,
                "max_break_s": 150.0,
                "half_open_probes": 2,
            },
            "health_check": {"interval_s": 45.0, "timeout_s": 5.0, "probe": "deep"},
            "limits": {"requests_per_minute": 600, "tokens_per_minute": 100000},
            "api_key": "env:FULL_API_KEY",
            "prices": {
                "m1": {
                    "input_per_mtok": 0.5,
                    "output_per_mtok": 1.5,
                    "per_image": 0.04,
                    "per_kchar": 0.02,
                    "per_minute": 0.006,
                    "context_window": 64000,
                    "capabilities": ["chat"],
                }
            },
        },
    ],
    "routes": [
        {
            "name": "everything",
            "capability": "embeddings",
            "strategy": "weighted",
            "max_attempts": 4,
            "deadline_s": 30.0,
            "hedge": True,
            "hedge_delay_s": 0.5,
            "enabled": False,
            "description": "all keys",
            "targets": [{"provider": "full", "model": "m1", "weight": 3.0}, {"provider": "full", "model": "m2"}],
        },
    ],
    "alert_channels": [
        {
            "name": "ops",
            "kind": "email",
            "enabled": False,
            "failure_threshold": 3,
            "success_threshold": 4,
            "reminder_interval_s": 3600,
            "notify_recovery": False,
            "to": "ops@example.com",
            "providers": ["full"],
        },
    ],
}


def test_every_key_is_exported_as_it_was_imported_and_imports_back_unchanged():
    apply_config(EVERYTHING, actor="test")
    exported = export_config()
    assert exported == EVERYTHING
    summary = apply_config(exported, actor="test", prune=True)
    assert (summary.created, summary.updated, summary.deleted, summary.unchanged) == ([], [], [], 3)


def test_the_exported_document_is_valid_for_the_documented_schema():
    apply_config(EVERYTHING, actor="test")
    ProviderModel.objects.create(provider=Provider.objects.get(), name="found", source="discovered")
    ConfigDocument.model_validate(export_config())


def test_the_schema_describes_each_entry_of_the_document(client):
    components = client.get("/api/schema").json()["components"]["schemas"]
    document = components["ConfigDocument"]["properties"]
    assert document["providers"]["items"] == {"$ref": "#/components/schemas/ProviderConfig"}
    assert document["routes"]["items"] == {"$ref": "#/components/schemas/RouteConfig"}
    entry = components["ProviderConfig"]
    assert entry["additionalProperties"] is False and entry["required"] == ["name", "kind"]
    assert entry["properties"]["retry"]["$ref"] == "#/components/schemas/RetryConfig"
    assert "simulated" in entry["properties"]["kind"]["enum"]
    assert entry["properties"]["prices"]["additionalProperties"] == {"$ref": "#/components/schemas/PriceConfig"}
    assert components["RetryConfig"]["properties"]["max_attempts"] == {
        "default": 2,
        "description": "Attempts per request, the first included.",
        "title": "Max Attempts",
        "type": "integer",
    }
    targets = components["RouteConfig"]["properties"]["targets"]
    assert targets["minItems"] == 1
    assert targets["items"] == {"anyOf": [{"$ref": "#/components/schemas/TargetConfig"}, {"type": "string"}]}


@pytest.mark.django_db(transaction=True)
async def test_put_config_reports_a_wrong_type_at_its_path_and_changes_nothing(gateway, key):
    response = await gateway.put(
        "/api/config?prune=false",
        headers=auth(key),
        json={
            "providers": [{"name": "p1", "kind": "simulated", "retry": {"max_attempts": True}}],
            "routes": [{"name": "r", "targets": ["p1/sim-chat", 7]}],
        },
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_config"
    assert error["errors"] == [
        "providers[0].retry.max_attempts: must be a whole number",
        'routes[0].targets[1]: must be a mapping with provider and model, or "provider/model"',
    ]
    assert not await sync_to_async(Provider.objects.exists)()

"""A provider's own flap damping in the configuration document: `health_check.flap_checks` and
`flap_seconds` are imported, exported and round-tripped like the other health-check keys; left
out they are null (the global HEALTH_FLAP_CHECKS / HEALTH_FLAP_SECONDS), and export leaves them
out then, as it does every null key."""

from __future__ import annotations

import io
import textwrap

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command

from providers.config import ConfigError, apply_config, dump_yaml, export_config, load_document
from providers.models import ConfigState, Provider
from tests.conftest import auth

pytestmark = pytest.mark.django_db

DOC = textwrap.dedent("""
    providers:
      - name: quick
        kind: simulated
        health_check: {interval_s: 30, timeout_s: 10, flap_checks: 1, flap_seconds: 45.5}
      - name: plain
        kind: simulated
        health_check: {interval_s: 30}
""")


def run_import(text: str, tmp_path) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    out = io.StringIO()
    call_command("import_config", str(path), stdout=out)
    return out.getvalue()


def flap(name: str) -> tuple[int | None, float | None]:
    row = Provider.objects.get(name=name)
    return row.health_flap_checks, row.health_flap_seconds


def health_check(doc: dict, name: str) -> dict:
    return next(p for p in doc["providers"] if p["name"] == name).get("health_check", {})


def test_import_config_stores_a_providers_flap_damping_and_leaves_the_others_on_the_global(tmp_path):
    run_import(DOC, tmp_path)
    assert flap("quick") == (1, 45.5)
    assert flap("plain") == (None, None)


def test_export_shows_the_values_set_and_leaves_out_the_unset_like_every_null_key(tmp_path):
    run_import(DOC, tmp_path)
    exported = export_config()
    assert health_check(exported, "quick") == {
        "interval_s": 30.0,
        "timeout_s": 10.0,
        "probe": "cheap",
        "flap_checks": 1,
        "flap_seconds": 45.5,
    }
    assert "flap_checks" not in health_check(exported, "plain")
    assert "flap_seconds" not in health_check(exported, "plain")
    assert "timeout_s" not in next(p for p in exported["providers"] if p["name"] == "plain")  # the same rule


def test_export_then_import_changes_nothing(tmp_path):
    run_import(DOC, tmp_path)
    version = ConfigState.current()
    out = run_import(dump_yaml(export_config()), tmp_path)
    assert "created 0, updated 0, deleted 0, unchanged 2" in out
    assert ConfigState.current() == version and flap("quick") == (1, 45.5)


def test_a_document_that_leaves_them_out_resets_them_to_the_global():
    apply_config(load_document(DOC), actor="test")
    apply_config({"providers": [{"name": "quick", "kind": "simulated"}]}, actor="test")
    assert flap("quick") == (None, None)


def test_an_integral_float_is_a_whole_number_of_checks():
    doc = {"providers": [{"name": "p1", "kind": "simulated", "health_check": {"flap_checks": 3.0}}]}
    apply_config(doc, actor="test")
    assert flap("p1") == (3, None)


@pytest.mark.parametrize(
    ("health", "message"),
    [
        ({"flap_checks": 0}, "providers[0].health_check.flap_checks: must be >= 1 and <= 1000"),
        ({"flap_checks": -1}, "providers[0].health_check.flap_checks: must be >= 1 and <= 1000"),
        ({"flap_checks": 1001}, "providers[0].health_check.flap_checks: must be >= 1 and <= 1000"),
        ({"flap_checks": 2.5}, "providers[0].health_check.flap_checks: must be a whole number"),
        ({"flap_checks": "3"}, "providers[0].health_check.flap_checks: must be a whole number"),
        ({"flap_checks": True}, "providers[0].health_check.flap_checks: must be a whole number"),
        ({"flap_seconds": -1}, "providers[0].health_check.flap_seconds: must be >= 0 and <= 86400"),
        ({"flap_seconds": 86401}, "providers[0].health_check.flap_seconds: must be >= 0 and <= 86400"),
        ({"flap_seconds": "30"}, "providers[0].health_check.flap_seconds: must be a number"),
    ],
)
def test_a_bad_value_is_refused_at_its_path_and_nothing_is_saved(health, message):
    with pytest.raises(ConfigError) as info:
        apply_config({"providers": [{"name": "p1", "kind": "simulated", "health_check": health}]}, actor="test")
    assert any(line.startswith(message) for line in info.value.errors), info.value.errors
    assert Provider.objects.count() == 0


@pytest.mark.django_db(transaction=True)
async def test_put_and_get_api_config_round_trip_them_and_a_put_without_them_resets_them(gateway, key):
    doc = {
        "providers": [
            {"name": "quick", "kind": "simulated", "health_check": {"flap_checks": 1, "flap_seconds": 20}},
        ]
    }
    assert (await gateway.put("/api/config", headers=auth(key), json=doc)).status_code == 200
    assert await sync_to_async(flap)("quick") == (1, 20.0)
    exported = (await gateway.get("/api/config", headers=auth(key))).json()
    assert health_check(exported, "quick")["flap_checks"] == 1
    assert health_check(exported, "quick")["flap_seconds"] == 20.0
    # the exported document back: nothing changes
    response = await gateway.put("/api/config", headers=auth(key), json=exported)
    assert response.status_code == 200 and response.json()["updated"] == []
    del exported["providers"][0]["health_check"]["flap_checks"]
    del exported["providers"][0]["health_check"]["flap_seconds"]
    response = await gateway.put("/api/config", headers=auth(key), json=exported)
    assert response.status_code == 200 and response.json()["updated"] == ["provider quick"]
    assert await sync_to_async(flap)("quick") == (None, None)
    exported = (await gateway.get("/api/config", headers=auth(key))).json()
    assert "flap_checks" not in health_check(exported, "quick")


@pytest.mark.django_db(transaction=True)
async def test_put_api_config_refuses_a_bad_value_with_its_path(gateway, key):
    doc = {"providers": [{"name": "quick", "kind": "simulated", "health_check": {"flap_checks": 0}}]}
    response = await gateway.put("/api/config", headers=auth(key), json=doc)
    assert response.status_code == 400
    assert "providers[0].health_check.flap_checks: must be >= 1 and <= 1000" in response.text
    assert not await Provider.objects.filter(name="quick").aexists()


@pytest.mark.django_db(transaction=True)
async def test_the_openapi_document_describes_them_with_their_global_default(gateway):
    schemas = (await gateway.get("/api/schema")).json()["components"]["schemas"]
    props = schemas["HealthCheckConfig"]["properties"]
    assert "HEALTH_FLAP_CHECKS" in props["flap_checks"]["description"]
    assert "HEALTH_FLAP_SECONDS" in props["flap_seconds"]["description"]
    assert {"type": "null"} in props["flap_checks"]["anyOf"] and {"type": "integer"} in props["flap_checks"]["anyOf"]

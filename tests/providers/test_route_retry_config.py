"""A route's own `retry` (attempts per target, base and max delay) through every way a route is
configured: `PUT /api/config`, `import_config` (with `--prune`), `export_config` round trips,
the admin; refused with the provider retry's rules, at its config path; and in the snapshot,
put on the route's targets over each provider's retry."""

from __future__ import annotations

import io

import pytest
import yaml
from asgiref.sync import sync_to_async
from django.core.management import call_command

from providers.config import ConfigError, apply_config, export_config
from providers.models import AuditLog, Route
from providers.snapshot import load_snapshot
from tests.conftest import auth

pytestmark = pytest.mark.django_db


def doc(retry: object = None, **route: object) -> dict:
    entry: dict = {"name": "chain", "targets": ["p1/sim-chat", "p2/sim-chat"], **route}
    if retry is not None:
        entry["retry"] = retry
    return {
        "providers": [
            {"name": "p1", "kind": "simulated", "retry": {"max_attempts": 3, "base_delay_s": 0.2, "max_delay_s": 2}},
            {"name": "p2", "kind": "simulated"},
        ],
        "routes": [entry],
    }


def errors_of(document: dict) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        apply_config(document, actor="test")
    return exc.value.errors


def test_a_route_retry_is_stored_and_exported_and_a_second_import_changes_nothing():
    apply_config(doc({"max_attempts": 4, "base_delay_s": 0.25, "max_delay_s": 3}), actor="test")

    route = Route.objects.get(name="chain")
    assert (route.retry_max_attempts, route.retry_base_delay_s, route.retry_max_delay_s) == (4, 0.25, 3.0)
    exported = export_config()
    assert exported["routes"][0]["retry"] == {"max_attempts": 4, "base_delay_s": 0.25, "max_delay_s": 3.0}
    again = apply_config(exported, actor="test", prune=True)
    assert (again.created, again.updated, again.deleted, again.unchanged) == ([], [], [], 3)


def test_a_route_without_retry_exports_none_and_keeps_its_providers_own():
    apply_config(doc(), actor="test")

    assert "retry" not in export_config()["routes"][0]
    route = Route.objects.get(name="chain")
    assert (route.retry_max_attempts, route.retry_base_delay_s, route.retry_max_delay_s) == (None, None, None)
    snapshot = load_snapshot()
    p1, p2 = snapshot.routes["chain"].targets
    assert (p1.retry.max_attempts, p1.retry.base_delay_s, p1.retry.max_delay_s) == (3, 0.2, 2.0)
    assert (p2.retry.max_attempts, p2.retry.base_delay_s, p2.retry.max_delay_s) == (2, 0.5, 8.0)
    assert snapshot.routes["chain"].policy.overrides_retry is False


def test_a_partial_retry_overrides_only_what_it_sets():
    apply_config(doc({"max_attempts": 1}), actor="test")

    assert export_config()["routes"][0]["retry"] == {"max_attempts": 1}
    p1, p2 = load_snapshot().routes["chain"].targets
    assert (p1.retry.max_attempts, p1.retry.base_delay_s, p1.retry.max_delay_s) == (1, 0.2, 2.0)
    assert (p2.retry.max_attempts, p2.retry.base_delay_s, p2.retry.max_delay_s) == (1, 0.5, 8.0)


def test_removing_the_block_goes_back_to_the_providers_retry_and_is_audited():
    apply_config(doc({"max_attempts": 5, "base_delay_s": 1}), actor="test")
    summary = apply_config(doc(), actor="test")

    assert summary.updated == ["route chain"]
    route = Route.objects.get(name="chain")
    assert (route.retry_max_attempts, route.retry_base_delay_s) == (None, None)
    change = AuditLog.objects.filter(object_name="chain", action="update").latest("id").changes
    assert change == {"retry.max_attempts": [5, None], "retry.base_delay_s": [1.0, None]}
    assert [t.retry.max_attempts for t in load_snapshot().routes["chain"].targets] == [3, 2]


def test_the_route_retry_is_put_on_its_targets_and_the_providers_budget_leaves_it_room():
    apply_config(doc({"max_attempts": 8, "base_delay_s": 0.1, "max_delay_s": 1}), actor="test")

    snapshot = load_snapshot()
    targets = snapshot.routes["chain"].targets
    assert [(t.retry.max_attempts, t.retry.base_delay_s, t.retry.max_delay_s) for t in targets] == [
        (8, 0.1, 1.0),
        (8, 0.1, 1.0),
    ]
    # One retry budget per provider, the same for every route calling it: its floor leaves a
    # request of this route its 7 retries.
    assert [t.retry.budget_min_retries for t in targets] == [7, 7]
    assert snapshot.providers["p1"].retry.budget_min_retries == 7
    # A provider named directly (`p1/sim-chat`) keeps its own retries.
    _, (direct,) = snapshot.resolve("p1/sim-chat", "chat")
    assert direct.retry.max_attempts == 3


@pytest.mark.parametrize(
    ("retry", "message"),
    [
        ({"max_attempts": 0}, "routes[0].retry.max_attempts: must be >= 1 and <= 10"),
        ({"max_attempts": 11}, "routes[0].retry.max_attempts: must be >= 1 and <= 10"),
        ({"max_attempts": "3"}, "routes[0].retry.max_attempts: must be a whole number"),
        ({"max_attempts": 2.5}, "routes[0].retry.max_attempts: must be a whole number"),
        ({"base_delay_s": -1}, "routes[0].retry.base_delay_s: must be >= 0 and <= 60"),
        ({"max_delay_s": 0}, "routes[0].retry.max_delay_s: must be > 0 and <= 300"),
        ({"base_delay_s": 5, "max_delay_s": 1}, "routes[0].retry.max_delay_s: must be >= retry base_delay_s"),
        ({"attempts": 3}, "routes[0].retry.attempts: unknown field (allowed: base_delay_s, max_attempts, max_delay_s)"),
        ([3], "routes[0].retry: must be a mapping"),
    ],
)
def test_a_bad_route_retry_is_refused_at_its_path_like_a_providers(retry, message):
    assert errors_of(doc(retry)) == [message]
    assert not Route.objects.exists()


def test_the_same_rules_as_a_providers_retry():
    bad = {"max_attempts": 0, "base_delay_s": 5, "max_delay_s": 1}
    document = doc(bad)
    document["providers"][1]["retry"] = bad
    lines = errors_of(document)
    provider = sorted(line.split(": ", 1)[1] for line in lines if line.startswith("providers[1]"))
    route = sorted(line.split(": ", 1)[1] for line in lines if line.startswith("routes[0]"))
    assert provider == route == ["must be >= 1 and <= 10", "must be >= retry base_delay_s"]


def test_import_config_with_prune_sets_and_clears_a_route_retry(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc({"max_attempts": 4, "base_delay_s": 0.5, "max_delay_s": 4})))
    out = io.StringIO()
    call_command("import_config", str(path), "--prune", stdout=out)
    assert Route.objects.get(name="chain").retry_max_attempts == 4

    exported = io.StringIO()
    call_command("export_config", stdout=exported)
    assert yaml.safe_load(exported.getvalue())["routes"][0]["retry"] == {
        "max_attempts": 4,
        "base_delay_s": 0.5,
        "max_delay_s": 4.0,
    }

    path.write_text(yaml.safe_dump(doc()))
    call_command("import_config", str(path), "--prune", stdout=out)
    assert Route.objects.get(name="chain").retry_max_attempts is None


@pytest.mark.django_db(transaction=True)
async def test_put_config_sets_a_route_retry_and_get_shows_it(gateway, key):
    response = await gateway.put(
        "/api/config", headers=auth(key), json=doc({"max_attempts": 3, "base_delay_s": 0.1, "max_delay_s": 0.5})
    )
    assert response.status_code == 200, response.text

    exported = (await gateway.get("/api/config", headers=auth(key))).json()
    assert exported["routes"][0]["retry"] == {"max_attempts": 3, "base_delay_s": 0.1, "max_delay_s": 0.5}
    again = await gateway.put("/api/config", headers=auth(key), json=exported)
    assert again.status_code == 200 and again.json()["updated"] == []


@pytest.mark.django_db(transaction=True)
async def test_put_config_refuses_a_bad_route_retry_with_a_400_naming_the_path(gateway, key):
    response = await gateway.put(
        "/api/config", headers=auth(key), json=doc({"max_attempts": 0, "base_delay_s": 5, "max_delay_s": 1})
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_config"
    assert sorted(error["errors"]) == [
        "routes[0].retry.max_attempts: must be >= 1 and <= 10",
        "routes[0].retry.max_delay_s: must be >= retry base_delay_s",
    ]
    assert not await sync_to_async(Route.objects.exists)()


@pytest.mark.django_db(transaction=True)
async def test_the_config_schema_describes_the_route_retry(gateway, key):
    schema = (await gateway.get("/api/schema", headers=auth(key))).json()
    components = schema["components"]["schemas"]
    assert components["RouteConfig"]["properties"]["retry"]["$ref"] == "#/components/schemas/RouteRetryConfig"
    attempts = components["RouteRetryConfig"]["properties"]["max_attempts"]
    assert attempts["description"].startswith("Attempts per target on this route")


def route_form(**overrides: str) -> dict[str, str]:
    data = {
        "name": "chain",
        "capability": "chat",
        "strategy": "priority",
        "max_attempts": "3",
        "deadline_s": "",
        "hedge_delay_s": "",
        "cache_ttl_s": "",
        "enabled": "on",
        "description": "",
        "retry_max_attempts": "4",
        "retry_base_delay_s": "0.25",
        "retry_max_delay_s": "2",
        "targets-TOTAL_FORMS": "0",
        "targets-INITIAL_FORMS": "0",
    }
    data.update(overrides)
    return data


def test_the_admin_edits_a_route_retry(admin_client_logged):
    page = admin_client_logged.get("/admin/providers/route/add/").content.decode()
    assert 'name="retry_max_attempts"' in page and "Retries on each target" in page

    response = admin_client_logged.post("/admin/providers/route/add/", route_form())
    assert response.status_code == 302, response.content.decode()[:2000]
    route = Route.objects.get(name="chain")
    assert (route.retry_max_attempts, route.retry_base_delay_s, route.retry_max_delay_s) == (4, 0.25, 2.0)


def test_the_admin_refuses_a_max_delay_below_the_base_delay(admin_client_logged):
    response = admin_client_logged.post(
        "/admin/providers/route/add/", route_form(retry_base_delay_s="5", retry_max_delay_s="1")
    )
    assert response.status_code == 200
    assert "must be &gt;= retry base_delay_s" in response.content.decode()
    assert not Route.objects.exists()

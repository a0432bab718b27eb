"""The API keys API (`/api/keys`, admin scope) and `create_api_key`'s limit options."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from providers.gateway.records import RequestRecord
from providers.keys import limits_for
from providers.models import ApiKey, AuditLog
from providers.runtime import runtime
from tests.conftest import auth

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def admin(make_key) -> str:
    return await make_key(["admin"])


@sync_to_async
def issue(name: str, **fields: object) -> tuple[ApiKey, str]:
    return ApiKey.issue(name, ["gateway"], **fields)


def spent(row: ApiKey, cost: str, tokens_in: int = 0, tokens_out: int = 0) -> RequestRecord:
    return RequestRecord(
        at=datetime.now(UTC),
        request_id="r",
        route="chat",
        capability="chat",
        outcome="success",
        status=200,
        latency_ms=1.0,
        provider="p",
        model="m",
        api_key_id=row.pk,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        cost=Decimal(cost),
    )


async def test_the_list_shows_each_keys_limits_and_use_in_the_period_and_never_its_secret(gateway, admin):
    row, secret = await issue(
        "billing",
        routes=["chat"],
        budget=Decimal(25),
        budget_period="day",
        rate_limit_per_minute=600,
        tokens_per_minute=100_000,
    )
    await runtime().current()
    limits = limits_for(runtime())
    limits.settle(spent(row, "1.25", 10, 20))
    limits.settle(spent(row, "2.5", 5, 5))
    await limits.flush()
    response = await gateway.get("/api/keys", headers=auth(admin))
    assert response.status_code == 200
    assert secret not in response.text and row.key_hash not in response.text
    assert secret.split("_", 2)[2] not in response.text
    found = {k["name"]: k for k in response.json()["keys"]}
    assert set(found) == {"billing", (await sync_to_async(ApiKey.objects.exclude(pk=row.pk).get)()).name}
    billing = found["billing"]
    assert billing["prefix"] == row.prefix and billing["scopes"] == ["gateway"] and billing["routes"] == ["chat"]
    assert billing["limits"] == {"rpm": 600, "tpm": 100_000}
    assert (billing["budget"], billing["budget_period"], billing["spend"]) == (25.0, "day", 3.75)
    assert billing["budget_used"] == pytest.approx(0.15)
    assert (billing["requests"], billing["tokens_in"], billing["tokens_out"], billing["tokens"]) == (2, 15, 25, 40)
    assert billing["period_start"] == datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0).isoformat()
    assert billing["active"] is True and billing["revoked_at"] is None
    assert "key_hash" not in billing


async def test_one_key_by_its_prefix_and_a_404_for_an_unknown_one(gateway, admin):
    row, _ = await issue("one")
    response = await gateway.get(f"/api/keys/{row.prefix}", headers=auth(admin))
    assert response.status_code == 200
    assert response.json()["name"] == "one" and response.json()["budget"] is None
    assert response.json()["spend"] == 0 and response.json()["budget_used"] is None
    missing = await gateway.get("/api/keys/gw_00000000", headers=auth(admin))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "key_not_found"
    too_long = await gateway.get("/api/keys/" + "x" * 300, headers=auth(admin))
    assert too_long.status_code == 404


async def test_the_keys_api_needs_the_admin_scope(gateway, make_key):
    reader = await make_key(["read", "gateway"])
    row, _ = await issue("guarded")
    assert (await gateway.get("/api/keys", headers=auth(reader))).status_code == 403
    patched = await gateway.patch(f"/api/keys/{row.prefix}", json={"rpm": 1}, headers=auth(reader))
    assert patched.status_code == 403
    assert (await gateway.post(f"/api/keys/{row.prefix}/revoke", headers=auth(reader))).status_code == 403
    assert (await gateway.get("/api/keys")).status_code == 401


async def test_a_patch_changes_the_limits_at_once_and_is_audited(gateway, admin):
    row, _ = await issue("tuned", rate_limit_per_minute=10)
    await runtime().current()
    expires = (timezone.now() + timedelta(days=3)).replace(microsecond=0)
    change = {
        "routes": ["chat", "embed"],
        "budget": 12.5,
        "budget_period": "week",
        "rpm": None,
        "tpm": 5000,
        "expires_at": expires.isoformat(),
        "scopes": ["gateway", "read"],
    }
    response = await gateway.patch(f"/api/keys/{row.prefix}", json=change, headers=auth(admin))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["routes"] == ["chat", "embed"] and body["budget"] == 12.5 and body["budget_period"] == "week"
    assert body["limits"] == {"rpm": None, "tpm": 5000} and body["scopes"] == ["gateway", "read"]
    assert datetime.fromisoformat(body["expires_at"]) == expires
    await sync_to_async(row.refresh_from_db)()
    assert (row.budget, row.rate_limit_per_minute, row.tokens_per_minute) == (Decimal("12.5"), None, 5000)
    # This process's configuration has it already: the next request is checked against it.
    entry = next(k for k in (await runtime().current()).keys.values() if k.id == row.pk)
    assert entry.routes == {"chat", "embed"} and entry.budget == Decimal("12.5") and entry.budget_period == "week"
    assert entry.rate_limit_per_minute is None and entry.tokens_per_minute == 5000
    audit = await sync_to_async(AuditLog.objects.get)(object_type="api_key", object_name="tuned", action="update")
    assert audit.actor.startswith("api:key-")
    assert audit.changes["rpm"] == [10, None] and audit.changes["budget"] == [None, "12.5"]
    assert audit.changes["routes"] == [[], ["chat", "embed"]]


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"rpm": "ten"}, "rpm"),
        ({"rpm": 0}, "rpm"),
        ({"rpm": True}, "rpm"),
        ({"tpm": 1.5}, "tpm"),
        ({"budget": -1}, "budget"),
        ({"budget": "lots"}, "budget"),
        ({"budget": True}, "budget"),
        ({"budget": 0.00001}, "budget"),
        ({"budget_period": "year"}, "budget_period"),
        ({"budget_period": None}, "budget_period"),
        ({"scopes": []}, "scopes"),
        ({"scopes": ["root"]}, "scopes[0]"),
        ({"scopes": None}, "scopes"),
        ({"routes": "chat"}, "routes"),
        ({"routes": ["a,b"]}, "routes"),
        ({"routes": ["chat", "chat"]}, "routes"),
        ({"expires_at": "tomorrow"}, "expires_at"),
        ({"expires_at": "2020-01-01T00:00:00+00:00"}, "expires_at"),
        ({"expires_at": "2999-01-01T00:00:00"}, "expires_at"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_a_bad_change_is_a_400_naming_the_field_and_changes_nothing(gateway, admin, change, param):
    row, _ = await issue("steady", rate_limit_per_minute=10)
    response = await gateway.patch(f"/api/keys/{row.prefix}", json=change, headers=auth(admin))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param, response.json()
    assert f"`{param}`" in response.json()["error"]["message"]
    await sync_to_async(row.refresh_from_db)()
    assert row.rate_limit_per_minute == 10 and row.budget is None and row.routes == []
    assert not await sync_to_async(AuditLog.objects.filter(action="update").exists)()


async def test_an_empty_or_non_json_patch_is_a_400(gateway, admin):
    row, _ = await issue("steady")
    empty = await gateway.patch(f"/api/keys/{row.prefix}", json={}, headers=auth(admin))
    assert empty.status_code == 400 and empty.json()["error"]["code"] == "nothing_to_change"
    broken = await gateway.patch(f"/api/keys/{row.prefix}", content=b"{nope", headers=auth(admin))
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "invalid_json"
    missing = await gateway.patch("/api/keys/gw_00000000", json={"rpm": 5}, headers=auth(admin))
    assert missing.status_code == 404


async def test_a_revoked_key_gets_401_at_once(gateway, admin):
    row, secret = await issue("leaked")
    assert (await gateway.get("/v1/models", headers=auth(secret))).status_code == 200
    response = await gateway.post(f"/api/keys/{row.prefix}/revoke", headers=auth(admin))
    assert response.status_code == 200
    assert response.json()["revoked_at"] is not None and response.json()["active"] is False
    refused = await gateway.get("/v1/models", headers=auth(secret))
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    again = await gateway.post(f"/api/keys/{row.prefix}/revoke", headers=auth(admin))
    assert again.status_code == 200 and again.json()["revoked_at"] == response.json()["revoked_at"]
    revokes = await sync_to_async(AuditLog.objects.filter(action="revoke", object_name="leaked").count)()
    assert revokes == 1
    assert (await gateway.get(f"/api/keys/{row.prefix}/revoke", headers=auth(admin))).status_code == 405


async def test_the_schema_documents_the_keys_api(gateway):
    paths = (await gateway.get("/api/schema")).json()["paths"]
    assert set(paths["/api/keys/{prefix}"]) == {"get", "patch"}
    assert "post" in paths["/api/keys/{prefix}/revoke"] and "get" in paths["/api/keys"]


# -- create_api_key -------------------------------------------------------------------------------


def test_create_api_key_takes_every_limit():
    err = io.StringIO()
    call_command(
        "create_api_key",
        "limited",
        "--scopes",
        "gateway",
        "--routes",
        "r1, r2",
        "--budget",
        "25",
        "--budget-period",
        "day",
        "--rpm",
        "600",
        "--tpm",
        "100000",
        "--expires-days",
        "30",
        stdout=io.StringIO(),
        stderr=err,
    )
    row = ApiKey.objects.get(name="limited")
    assert row.routes == ["r1", "r2"] and row.budget == Decimal(25) and row.budget_period == "day"
    assert (row.rate_limit_per_minute, row.tokens_per_minute) == (600, 100_000)
    assert row.expires_at is not None
    assert abs(row.expires_at - (timezone.now() + timedelta(days=30))) < timedelta(minutes=1)
    assert "no route is named r1, r2" in err.getvalue()
    audit = AuditLog.objects.get(object_name="limited", action="create")
    assert audit.changes["budget"] == "25" and audit.changes["rpm"] == 600 and audit.changes["routes"] == ["r1", "r2"]


def test_create_api_key_without_limits_makes_an_unlimited_key():
    call_command("create_api_key", "free", stdout=io.StringIO(), stderr=io.StringIO())
    row = ApiKey.objects.get(name="free")
    assert (row.routes, row.budget, row.rate_limit_per_minute, row.tokens_per_minute, row.expires_at) == (
        [],
        None,
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--rpm", "0"], "--rpm/--rate-limit: must be >= 1"),
        (["--rpm", "lots"], "--rpm/--rate-limit: must be a whole number"),
        (["--tpm", "-5"], "--tpm: must be >= 1"),
        (["--budget", "-1"], "--budget: must be an amount >= 0"),
        (["--budget", "NaN"], "--budget: must be an amount >= 0"),
        (["--budget", "twenty"], "--budget: must be an amount such as 25"),
        (["--budget", "0.00001"], "budget: Ensure that there are no more than 4 decimal places"),
        (["--budget", "25", "--budget-period", "year"], "--budget-period: invalid choice: 'year'"),
        (["--budget-period", "day"], "--budget-period needs --budget"),
        (["--expires-days", "0"], "--expires-days: must be >= 1"),
        (["--routes", "a,a"], "routes: names a route twice"),
    ],
)
def test_create_api_key_refuses_bad_limits_clearly(options, said):
    with pytest.raises(CommandError, match=said.replace("(", r"\(")):
        call_command("create_api_key", "bad", *options, stdout=io.StringIO(), stderr=io.StringIO())
    assert not ApiKey.objects.filter(name="bad").exists()


# -- the admin ------------------------------------------------------------------------------------


def test_the_admin_lists_each_keys_spend_against_its_budget(admin_client_logged):
    from providers.models import KeySpend

    row, _ = ApiKey.issue("shown", ["gateway"], budget=Decimal(25), budget_period="day")
    KeySpend.objects.create(key=row, day=timezone.now().date(), spend=Decimal("3.75"), requests=2)
    ApiKey.issue("unbudgeted", ["gateway"])
    body = admin_client_logged.get("/admin/providers/apikey/").content.decode()
    assert "3.75 of 25 per day (15 %)" in body
    assert "0 (0 requests)" in body


def test_a_key_added_in_the_admin_keeps_its_limits(admin_client_logged):
    admin_client_logged.post(
        "/admin/providers/apikey/add/",
        {
            "name": "limited",
            "scopes": ["gateway"],
            "routes": "chat, embed",
            "rate_limit_per_minute": "60",
            "tokens_per_minute": "1000",
            "budget": "5",
            "budget_period": "week",
        },
    )
    row = ApiKey.objects.get(name="limited")
    assert row.routes == ["chat", "embed"] and row.budget == Decimal(5) and row.budget_period == "week"
    assert (row.rate_limit_per_minute, row.tokens_per_minute) == (60, 1000)
    change = admin_client_logged.get(f"/admin/providers/apikey/{row.pk}/change/").content.decode()
    assert 'value="chat, embed"' in change

"""The console's `/keys` page: each key's limits and its use in the period, the same figures
as `GET /api/keys`, and its spend per day over the last 30 days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from providers.gateway.records import RequestRecord
from providers.keys import limits_for
from providers.models import ApiKey, KeySpend
from providers.runtime import runtime
from tests.conftest import auth

pytestmark = pytest.mark.django_db(transaction=True)


@sync_to_async
def issue(name: str, **fields: object) -> ApiKey:
    return ApiKey.issue(name, ["gateway"], **fields)[0]


def spent(row: ApiKey, cost: str, tokens_in: int, tokens_out: int) -> RequestRecord:
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


def cell(html: str, prefix: str, field: str) -> str:
    row = html.split(f'id="key-{prefix}"')[1].split("</tr>")[0]
    return row.split(f'data-field="{field}"')[1].split("</td>")[0]


async def test_anonymous_visitors_go_to_the_login_page_and_non_staff_get_403(async_client, users):
    response = await async_client.get("/keys")
    assert response.status_code == 302 and response["Location"].startswith("/login/?next=/keys")
    await async_client.aforce_login(users["plain"])
    assert (await async_client.get("/keys")).status_code == 403


async def test_the_page_shows_the_same_spend_requests_and_tokens_as_the_api(simulated, login, users, gateway, make_key):
    billing = await issue(
        "billing",
        routes=["chat"],
        budget=Decimal(10),
        budget_period="day",
        rate_limit_per_minute=600,
        tokens_per_minute=100_000,
    )
    free = await issue("free-for-all")
    gone = await issue("gone")
    gone.revoked_at = timezone.now()
    await sync_to_async(gone.save)()
    await runtime().current()
    limits = limits_for(runtime())
    limits.settle(spent(billing, "1.25", 10, 20))
    limits.settle(spent(billing, "7.5", 5, 5))
    limits.settle(spent(free, "0.5", 3, 4))
    await limits.flush()

    admin = await make_key(["admin"])
    api = {k["prefix"]: k for k in (await gateway.get("/api/keys", headers=auth(admin))).json()["keys"]}
    client = await login(users["staff"])
    response = await client.get("/keys")
    html = response.content.decode()
    assert response.status_code == 200 and 'aria-current="page">Keys<' in html
    for prefix, info in api.items():
        assert f'data-value="{info["spend"]!r}"' in cell(html, prefix, "spend")
        assert cell(html, prefix, "requests").strip(' ">') == str(info["requests"])
        assert cell(html, prefix, "tokens").strip(' ">') == f"{info['tokens_in']} / {info['tokens_out']}"
    assert (api[billing.prefix]["spend"], api[billing.prefix]["requests"]) == (8.75, 2)
    assert "87.5%" in cell(html, billing.prefix, "budget-used") and "<meter" in cell(html, billing.prefix, "spend")
    assert "no budget" in cell(html, free.prefix, "spend")
    row = html.split(f'id="key-{billing.prefix}"')[1].split("</tr>")[0]
    assert "chat" in row and "600 / 100000" in row and "Spend of billing per day over the last 30 days" in row
    assert "revoked" in html.split(f'id="key-{gone.prefix}"')[1].split("</tr>")[0]
    assert await sync_to_async(secret_free)(html)  # no key hash on the page


def secret_free(html: str) -> bool:
    hashes = ApiKey.objects.values_list("key_hash", flat=True)
    return not any(h in html for h in hashes)


async def test_the_chart_has_a_point_per_day_for_thirty_days(simulated, login, users):
    key = await issue("history", budget=Decimal(100), budget_period="month")
    today = datetime.now(UTC).date()
    await sync_to_async(KeySpend.objects.bulk_create)(
        [KeySpend(key=key, day=today - timedelta(days=d), spend=Decimal(d + 1), requests=1) for d in (0, 3, 40)]
    )
    client = await login(users["staff"])
    html = (await client.get("/keys")).content.decode()
    row = html.split(f'id="key-{key.prefix}"')[1].split("</tr>")[0]
    # the day 40 days ago is outside the chart: highest is day 3's 4.0, today's 1.0 is the latest
    assert "30 days, latest 1.0000, lowest 0.0000, highest 4.0000" in row

"""The console's request log: `/requests` (the API's filters as a form, cursor paging, search
by id) and `/requests/<request_id>` (one request with its attempt timeline); the links to it
from the analytics page's top errors and from a provider page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from analytics.models import RequestLog
from providers.models import ApiKey

from .conftest import htmx

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime.now(UTC).replace(microsecond=0)


def sent(provider: str, outcome: str = "success", status: int = 200, ms: float = 40.0, **extra: Any) -> dict[str, Any]:
    return {
        "provider": provider,
        "model": "sim-small",
        "credential": "1",
        "outcome": outcome,
        "status": status,
        "duration_ms": ms,
        "skipped": None,
        "reason": "" if outcome == "success" else f"http_{status}",
        "error": "",
        "hedge": False,
        **extra,
    }


def skipped(provider: str, why: str) -> dict[str, Any]:
    return {
        "provider": provider,
        "model": "sim-small",
        "credential": None,
        "outcome": None,
        "status": None,
        "duration_ms": 0,
        "skipped": why,
        "reason": why,
        "error": "",
        "hedge": False,
    }


@sync_to_async
def log(
    request_id: str,
    *,
    route: str = "chat",
    provider: str = "sim-a",
    ok: bool = True,
    minutes_ago: float = 1,
    attempts: list[dict[str, Any]] | None = None,
    key: str | None = None,
    **fields: Any,
) -> RequestLog:
    key_id = ApiKey.objects.get(name=key).pk if key else None
    return RequestLog.objects.create(
        at=NOW - timedelta(minutes=minutes_ago),
        request_id=request_id,
        route=route,
        capability="chat",
        provider=provider if ok else "",
        model="sim-small" if ok else "",
        api_key_id=key_id,
        outcome="success" if ok else "failure",
        status=200 if ok else 502,
        latency_ms=123.4,
        attempts=attempts if attempts is not None else [sent(provider) if ok else sent(provider, "failure", 503)],
        calls=fields.pop("calls", 1),
        tokens_in=11 if ok else 0,
        tokens_out=7 if ok else 0,
        cost=Decimal("0.00042") if ok else 0,
        error="" if ok else "http_503",
        **fields,
    )


@sync_to_async
def issue(name: str) -> ApiKey:
    return ApiKey.issue(name, ["gateway"])[0]


async def test_anonymous_visitors_go_to_the_login_page_and_non_staff_get_403(async_client, users):
    for path in ("/requests", "/requests/abc"):
        response = await async_client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/login/?next=")
    await async_client.aforce_login(users["plain"])
    for path in ("/requests", "/requests/abc"):
        assert (await async_client.get(path)).status_code == 403


async def test_the_table_lists_the_log_newest_first_with_links_to_each_request(simulated, login, users):
    await log("req-old", minutes_ago=5)
    await log("req-new", minutes_ago=1, ok=False)
    client = await login(users["staff"])
    response = await client.get("/requests")
    html = response.content.decode()
    assert response.status_code == 200 and "<html" in html and 'aria-current="page">Requests<' in html
    assert html.index('data-request-id="req-new"') < html.index('data-request-id="req-old"')
    assert 'href="/requests/req-new"' in html and 'href="/requests/req-old"' in html
    assert "http_503" in html and "0.00042" in html


async def test_each_filter_narrows_the_table(simulated, login, users):
    await issue("team-a")
    await log("by-key", key="team-a", minutes_ago=1)
    await log("on-b", provider="sim-b", minutes_ago=2)
    await log("other-route", route="embed", minutes_ago=3)
    await log("failed", ok=False, minutes_ago=4)
    await log("long-ago", minutes_ago=600)
    client = await login(users["staff"])

    async def shown(query: str) -> set[str]:
        html = (await client.get(f"/requests?{query}")).content.decode()
        return {
            rid for rid in ("by-key", "on-b", "other-route", "failed", "long-ago") if f'data-request-id="{rid}"' in html
        }

    assert await shown("key=team-a") == {"by-key"}
    assert await shown("provider=sim-b") == {"on-b"}
    assert await shown("route=embed") == {"other-route"}
    assert await shown("status=failed") == {"failed"}
    assert await shown("status=ok&route=chat") == {"by-key", "on-b", "long-ago"}
    since = (NOW - timedelta(minutes=60)).isoformat()
    until = (NOW - timedelta(minutes=2, seconds=30)).isoformat()
    assert await shown(f"since={since.replace('+', '%2B')}&until={until.replace('+', '%2B')}") == {
        "other-route",
        "failed",
    }
    # the form shows what it filters on
    html = (await client.get("/requests?status=failed&route=chat")).content.decode()
    assert (
        '<option value="failed" selected>' in html
        and 'name="route" type="text" maxlength="200" list="route-names" value="chat"' in html
    )


async def test_the_htmx_form_swaps_the_table_alone(simulated, login, users):
    await log("only-one", ok=False)
    client = await login(users["staff"])
    response = await client.get("/requests?status=failed", headers=htmx("request-list"))
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html
    assert html.lstrip().startswith('<section id="request-list"') and 'data-request-id="only-one"' in html


async def test_the_older_link_pages_through_the_log_with_its_cursor(simulated, login, users):
    for i in range(5):
        await log(f"row-{i}", minutes_ago=i + 1)  # row-0 newest
    client = await login(users["staff"])
    first = (await client.get("/requests?limit=2&status=ok")).content.decode()
    assert 'data-request-id="row-0"' in first and 'data-request-id="row-1"' in first
    assert 'data-request-id="row-2"' not in first
    older = first.split('rel="next" href="')[1].split('"')[0].replace("&amp;", "&")
    assert "status=ok" in older and "limit=2" in older and "cursor=" in older
    seen = []
    page = first
    while True:
        seen += [f"row-{i}" for i in range(5) if f'data-request-id="row-{i}"' in page]
        if 'rel="next" href="' not in page:
            break
        nxt = page.split('rel="next" href="')[1].split('"')[0].replace("&amp;", "&")
        page = (await client.get("/requests" + nxt, headers=htmx("request-list"))).content.decode()
        assert "<html" not in page and "Newest" in page
    assert seen == [f"row-{i}" for i in range(5)]


@pytest.mark.parametrize(
    ("query", "message", "field"),
    [
        ("status=maybe", "status: must be ok or failed", "filter-status"),
        ("since=yesterday", "since: must be an ISO 8601 time", "filter-since"),
        ("since=2026-12-03T11:00:00Z&until=2026-12-03T10:00:00Z", "since: is after until", "filter-since"),
        ("route=" + "r" * 201, "route: at most 200 characters", "filter-route"),
        ("cursor=not-a-cursor", "cursor: is not a cursor this API gave", None),  # a hand-edited URL: no field
        ("limit=100000", "limit: must be between 1 and 500", None),
    ],
)
async def test_a_bad_filter_is_shown_beside_the_form_never_a_500(simulated, login, users, query, message, field):
    client = await login(users["staff"])
    response = await client.get(f"/requests?{query}")
    html = response.content.decode()
    assert response.status_code == 400 and "<html" in html
    assert 'id="filter-error"' in html and message in html and "data-request-id" not in html
    if field:
        tag = html.split(f'id="{field}"')[1].split(">")[0]
        assert 'aria-invalid="true"' in tag and 'aria-describedby="filter-error"' in tag
    swapped = await client.get(f"/requests?{query}", headers=htmx("request-list"))
    assert swapped.status_code == 200 and message in swapped.content.decode()


async def test_the_search_box_goes_to_the_requests_page(simulated, login, users):
    client = await login(users["staff"])
    response = await client.get("/requests?id=+abc123+")
    assert response.status_code == 302 and response["Location"] == "/requests/abc123"
    bad = await client.get("/requests?id=a/b")
    assert bad.status_code == 400 and "id: not a request id" in bad.content.decode()


async def test_the_request_page_shows_the_request_and_its_attempt_timeline(simulated, login, users):
    await issue("team-a")
    await log(
        "chain-1",
        key="team-a",
        failovers=1,
        retries=1,
        cache="miss",
        ttft_ms=55.5,
        calls=3,
        attempts=[
            skipped("sim-b", "breaker_open"),
            sent("sim-a", "failure", 503, ms=31.0),
            sent("sim-a", "success", 200, ms=42.0, hedge=True),
        ],
    )
    client = await login(users["staff"])
    response = await client.get("/requests/chain-1")
    html = response.content.decode()
    assert response.status_code == 200
    summary = html.split('id="request-summary"')[1].split("</section>")[0]
    for text in (
        "success",
        "status 200",
        "chat",
        "team-a",
        'href="/providers/sim-a"',
        "sim-small",
        "11",
        "out 7",
        "0.00042",
        "miss",
        "123 ms",
        "first token 56 ms",
        "1 failover",
        "1 retry",
    ):
        assert text in summary, text
    rows = html.split('<table id="attempts">')[1].split("</tbody>")[0].split("<tr class=")[1:]
    assert len(rows) == 3
    assert "attempt-skipped" in rows[0] and "sim-b" in rows[0] and "breaker_open" in rows[0]
    assert "attempt-failed" in rows[1] and "503" in rows[1] and "31 ms" in rows[1] and "http_503" in rows[1]
    assert "attempt-ok" in rows[2] and "42 ms" in rows[2] and "hedge" in rows[2]


async def test_an_unknown_request_id_gets_a_404_page(simulated, login, users):
    client = await login(users["staff"])
    for path in ("/requests/nope", "/requests/" + "x" * 80):
        response = await client.get(path)
        assert response.status_code == 404 and "No such request" in response.content.decode()


async def test_top_errors_on_the_analytics_page_link_to_the_failed_requests(simulated, login, users):
    from analytics.models import ErrorRollup, Granularity

    bucket = datetime.now(UTC).replace(second=0, microsecond=0)  # now: the page's window ends now, not at import
    await sync_to_async(ErrorRollup.objects.create)(
        granularity=Granularity.MINUTE,
        bucket=bucket,
        kind="attempt",
        provider="sim-a",
        route="chat",
        error="http_503",
        count=3,
    )
    client = await login(users["staff"])
    html = (await client.get("/analytics")).content.decode()
    errors = html.split('id="top-errors"')[1].split("</table>")[0]
    assert 'href="/requests?status=failed&amp;provider=sim-a&amp;since=' in errors


async def test_a_provider_page_lists_its_recent_failed_requests(simulated, login, users):
    await log("served-ok", minutes_ago=1)
    await log("failed-elsewhere", ok=False, provider="sim-b", minutes_ago=2)
    await log("failed-here", ok=False, minutes_ago=3)
    await log(
        "skipped-here",
        ok=False,
        minutes_ago=4,
        attempts=[skipped("sim-a", "breaker_open"), sent("sim-b", "failure", 500)],
    )
    for i in range(6):
        await log(f"older-failure-{i}", ok=False, minutes_ago=10 + i)
    client = await login(users["staff"])
    html = (await client.get("/providers/sim-a")).content.decode()
    section = html.split('id="failed-requests-sim-a"')[1].split("</section>")[0]
    assert 'href="/requests/failed-here"' in section
    for absent in ("served-ok", "failed-elsewhere", "skipped-here", "older-failure-4", "older-failure-5"):
        assert absent not in section
    assert section.count('href="/requests/') == 5  # the last five
    assert 'href="/requests?status=failed&amp;provider=sim-a"' in section

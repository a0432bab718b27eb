"""The providers table: the default view above a dozen providers, the view remembered, the
server's sort and filters for a page render (the first paint, no JavaScript), and a push that
replaces one row in place whatever the page's search, filters and sort."""

from __future__ import annotations

import re
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.utils import timezone

from health import pages
from health.access import Role
from health.cards import TABLE_AT, Filters
from health.models import ProviderHealth
from providers.models import Provider

from .conftest import htmx
from .test_consumer import ORIGIN, connect, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)

STAFF = Role(True)
ROW = re.compile(r'<div id="row-([a-z0-9.-]+)" class="prow[^"]*" role="row"([^>]*)>')


def fleet(count: int) -> dict[str, Any]:
    """`count` simulated providers: even ones chat, odd ones embeddings; priority descending
    with the number, so the configuration's order is not the names' order."""
    return {
        "providers": [
            {
                "name": f"p{i:02d}",
                "kind": "simulated",
                "models": ["m"],
                "priority": count - i,
                "capabilities": ["chat"] if i % 2 == 0 else ["embeddings"],
                "options": {"latency_ms": 5, "seed": i},
            }
            for i in range(count)
        ]
    }


@pytest.fixture
async def many(configure, rt):
    await configure(fleet(TABLE_AT + 3))
    await rt.refresh(force=True)
    return rt


@sync_to_async
def seed(values: dict[str, tuple[str, float | None]]) -> None:
    now = timezone.now()
    for name, (status, score) in values.items():
        ProviderHealth.objects.update_or_create(
            provider=Provider.objects.get(name=name),
            defaults={"status": status, "score": score, "last_check_at": now, "last_check_ok": status == "healthy"},
        )


def rows(html: str) -> list[tuple[str, bool]]:
    """The table's rows in the page's order, each with whether it is hidden."""
    return [(name, " hidden" in attrs) for name, attrs in ROW.findall(html)]


async def test_the_table_is_the_default_above_a_dozen_providers(many, login, users):
    client = await login(users["staff"])
    html = (await client.get("/")).content.decode()
    assert 'id="ptable"' in html and 'role="table"' in html and "<article id=" not in html
    listed = rows(html)
    assert len(listed) == TABLE_AT + 3 and not any(hidden for _, hidden in listed)
    assert [name for name, _ in listed][:2] == ["p14", "p13"]  # the configuration's order: priority
    assert 'class="strip" role="img" aria-label="p14 checks: no checks yet"' in html
    assert 'aria-current="true">Table</a>' in html


async def test_cards_stay_the_default_up_to_a_dozen_and_either_view_can_be_asked_for(simulated, login, users):
    client = await login(users["staff"])
    html = (await client.get("/")).content.decode()
    assert '<article id="card-sim-a"' in html and 'id="ptable"' not in html
    html = (await client.get("/?view=table")).content.decode()
    assert rows(html) == [("sim-a", False), ("sim-b", False)] and "<article id=" not in html


async def test_the_chosen_view_is_remembered_and_a_bare_visit_goes_to_it(many, login, users):
    client = await login(users["staff"])
    chosen = await client.get("/?view=cards&status=healthy")
    assert chosen.status_code == 200 and chosen.cookies["console_view"].value == "cards"
    assert "<article id=" in chosen.content.decode() or "No provider matches" in chosen.content.decode()
    back = await client.get("/?capability=chat")
    assert back.status_code == 302 and back["Location"] == "/?capability=chat&view=cards"
    assert (await client.get("/", headers=htmx("board"))).status_code == 200  # htmx: never redirected
    await client.get("/?view=table")
    assert (await client.get("/"))["Location"] == "/?view=table"


async def test_a_page_render_sorts_by_the_column_asked_for_with_no_value_last(many, login, users):
    await seed({"p03": ("healthy", 90.0), "p07": ("degraded", 40.0), "p11": ("unhealthy", 10.0)})
    client = await login(users["staff"])
    by_score = [n for n, _ in rows((await client.get("/?view=table&sort=score&dir=desc")).content.decode())]
    assert by_score[:3] == ["p03", "p07", "p11"] and by_score[3:] == sorted(by_score[3:])
    by_score = [n for n, _ in rows((await client.get("/?view=table&sort=score&dir=asc")).content.decode())]
    assert by_score[:3] == ["p11", "p07", "p03"]
    by_status = [n for n, _ in rows((await client.get("/?view=table&sort=status")).content.decode())]
    assert by_status[:2] == ["p11", "p07"]  # worst first
    by_name = [n for n, _ in rows((await client.get("/?view=table&sort=name&dir=desc")).content.decode())]
    assert by_name == sorted(by_name, reverse=True)


async def test_the_headers_link_to_their_sort_and_say_which_is_on(many, login, users):
    client = await login(users["staff"])
    html = (await client.get("/?view=table&sort=score&dir=desc")).content.decode()
    header = html[html.index('col-score" role="columnheader"') :][:300]
    assert 'aria-sort="descending"' in header and 'href="?view=table&amp;sort=score&amp;dir=asc"' in header
    name = html[html.index('col-name" role="columnheader"') :][:300]
    assert 'aria-sort="none"' in name and "sort=name&amp;dir=asc" in name


async def test_filters_and_search_hide_the_rows_they_leave_out(many, login, users):
    await seed({"p04": ("unhealthy", 5.0), "p05": ("unhealthy", 5.0)})
    client = await login(users["staff"])
    html = (await client.get("/?view=table&status=unhealthy&capability=chat")).content.decode()
    assert [n for n, hidden in rows(html) if not hidden] == ["p04"]
    assert len(rows(html)) == TABLE_AT + 3  # every row stays on the page, for pushes to replace
    html = (await client.get("/?view=table&q=P1")).content.decode()
    assert sorted(n for n, hidden in rows(html) if not hidden) == ["p10", "p11", "p12", "p13", "p14"]
    assert 'id="ptable-q" type="search" name="q" value="P1"' in html
    html = (await client.get("/?view=table&kind=openai")).content.decode()
    assert all(hidden for _, hidden in rows(html))
    html = (await client.get("/?view=table&status=nonsense&sort=nonsense&dir=up")).content.decode()
    assert not any(hidden for _, hidden in rows(html))  # unknown values are ignored


async def test_the_table_partial_answers_an_htmx_request(many, login, users):
    client = await login(users["staff"])
    html = (await client.get("/?view=table", headers=htmx("board"))).content.decode()
    assert html.lstrip().startswith('<section id="board" class="board view-table"') and "<html" not in html


async def test_a_push_replaces_the_changed_row_in_place_whatever_the_search_and_sort(many):
    # The socket's view: the page's search and sort; its listing is every row, in the
    # configuration's order, so a change that moves a row in the page's order is one row.
    filters = Filters.from_query({"view": "table", "q": "p0", "sort": "score", "dir": "desc"})
    shown = await pages.dashboard_listing(filters)
    assert shown == [f"p{i:02d}" for i in range(TABLE_AT + 2, -1, -1)]
    await seed({"p12": ("unhealthy", 3.0)})
    html, listed = await pages.render_dashboard_push(["p12"], STAFF, filters, shown)
    assert listed == shown and 'id="board"' not in html
    row = html[html.index('<div id="row-p12"') :]
    row = row[: row.index('<div class="pcell col-name"')]
    assert 'hx-swap-oob="true"' in row and 'data-status="unhealthy"' in row and 'data-k-score="3"' in row
    assert " hidden" not in row  # the page hides it again by its own search (table.js)
    assert "row-p11" not in html
    assert 'id="counts"' in html and "1 unhealthy" in html


async def test_a_provider_that_is_gone_is_deleted_from_the_table(many):
    filters = Filters.from_query({"view": "table"})
    shown = await pages.dashboard_listing(filters)
    html, _ = await pages.render_dashboard_push(["p03"], STAFF, filters, [*shown, "gone"])
    assert 'id="board"' in html  # what the table lists changed: the whole board
    html, _ = await pages.render_dashboard_push(["gone"], STAFF, filters, shown)
    assert '<div id="row-gone" hx-swap-oob="delete"></div>' in html


async def test_the_socket_pushes_a_row_to_a_table_page(many, async_client, users):
    cookie = await session_cookie(async_client, users["staff"])
    communicator, connected = await connect("/ws/health/?view=table&q=p1&sort=name", ORIGIN, cookie)
    assert connected
    await seed({"p02": ("degraded", 55.0)})
    layer = get_channel_layer()
    assert layer is not None
    await layer.group_send("health", {"type": "health.update", "provider": "p02"})
    html = await communicator.receive_from(timeout=5)
    assert '<div id="row-p02" class="prow tone-degraded" role="row"' in html and 'hx-swap-oob="true"' in html
    assert 'id="board"' not in html and "row-p01" not in html
    await communicator.disconnect()

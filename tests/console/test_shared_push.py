"""A dashboard push loads its data once: every card, with its checks, and the recent changes,
shared by the consoles of this process that push the same changes; each console renders its
own view of it (its role, its filters)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest
from channels.layers import get_channel_layer
from django.test import AsyncClient

from health import pages
from health.access import Role
from health.cards import Filters, boards

from .conftest import settle
from .test_consumer import ORIGIN, connect, session_cookie

pytestmark = pytest.mark.django_db(transaction=True)

ADMIN = Role(True, True, True)
STAFF = Role(True)
CARD_TABLES = ('"health_providerhealth"', '"health_proberesult"', '"health_healthevent"')


@pytest.fixture
def card_loads(settings, caplog) -> Callable[[], list[str]]:  # type: ignore[no-untyped-def]
    """`card_loads()`: the SELECTs on the cards' tables run since the last call, by any thread.
    The console loads in executor threads, each on a connection of its own, which
    CaptureQueriesContext (one connection, the test's) does not see; with DEBUG on, Django
    logs every statement of every connection to `django.db.backends`."""
    settings.DEBUG = True
    caplog.set_level(logging.DEBUG, logger="django.db.backends")

    def taken() -> list[str]:
        sql = [str(getattr(r, "sql", "")) for r in caplog.records if r.name == "django.db.backends"]
        caplog.clear()
        return sorted(s for s in sql if s.lstrip().upper().startswith("SELECT") and any(t in s for t in CARD_TABLES))

    taken()
    return taken


async def test_two_consoles_pushing_the_same_change_load_the_cards_once(simulated, card_loads):
    await pages.render_dashboard_push(["sim-a"], ADMIN, shown=["sim-a", "sim-b"])  # a load of its own
    one = card_loads()
    assert any('"health_proberesult"' in s for s in one)  # the cards come with their checks

    seen = boards.note_change()  # what both consoles heard of
    (everything, listed_all), (embeddings, listed_embeddings) = await asyncio.gather(
        pages.render_dashboard_push(["sim-a"], ADMIN, Filters(), ["sim-a", "sim-b"], seen=seen),
        pages.render_dashboard_push(["sim-a"], STAFF, Filters(capability="embeddings"), ["sim-b"], seen=seen),
    )
    assert card_loads() == one  # one load for both

    # each rendered its own view of it
    assert listed_all == ["sim-a", "sim-b"] and listed_embeddings == ["sim-b"]
    assert '<article id="card-sim-a"' in everything and 'id="card-sim-b"' not in everything
    assert '<div id="card-sim-a" hx-swap-oob="delete">' in embeddings and "<article" not in embeddings

    # without a change heard of in common, each console loads for itself
    await asyncio.gather(
        pages.render_dashboard_push(["sim-a"], ADMIN, shown=["sim-a", "sim-b"]),
        pages.render_dashboard_push(["sim-a"], STAFF, shown=["sim-a", "sim-b"]),
    )
    assert len(card_loads()) == 2 * len(one)


async def test_a_change_heard_after_a_load_started_gets_a_load_of_its_own(simulated, card_loads):
    first = boards.note_change()
    await pages.render_dashboard_push(["sim-a"], ADMIN, shown=["sim-a", "sim-b"], seen=first)
    one = card_loads()
    await simulated.engine.force_open("sim-a", 600)
    await settle(simulated)
    card_loads()  # not the breaker event's writing
    later = boards.note_change()
    html, _ = await pages.render_dashboard_push(["sim-a"], ADMIN, shown=["sim-a", "sim-b"], seen=later)
    assert card_loads() == one  # loaded again: the first load did not know of this change
    assert ">forced open<" in html
    again, _ = await pages.render_dashboard_push(["sim-a"], STAFF, shown=["sim-a", "sim-b"], seen=later)
    assert card_loads() == []  # the same change: the load that knew of it serves
    assert ">forced open<" in again


async def test_one_health_update_to_two_sockets_loads_the_cards_once_and_each_gets_its_view(
    simulated, async_client, users, card_loads
):
    unhealthy, connected = await connect(
        "/ws/health/?status=unhealthy", ORIGIN, await session_cookie(async_client, users["staff"])
    )
    assert connected
    everything, connected = await connect("/ws/health/", ORIGIN, await session_cookie(AsyncClient(), users["admin"]))
    assert connected
    await simulated.engine.force_open("sim-a", 600)
    await settle(simulated)
    card_loads()  # not what the sockets read when they connected
    await pages.render_dashboard_push(["sim-a"], ADMIN, shown=["sim-a", "sim-b"])
    one = card_loads()  # what one load reads

    await get_channel_layer().group_send("health", {"type": "health.update", "provider": "sim-a"})
    filtered_html = await unhealthy.receive_from(timeout=5)
    all_html = await everything.receive_from(timeout=5)
    assert card_loads() == one
    # The filtered view listed nothing at connect: sim-a now matches, so its board comes whole.
    assert 'id="board"' in filtered_html
    assert '<article id="card-sim-a"' in filtered_html and 'id="card-sim-b"' not in filtered_html
    # The whole view lists the same cards: only the changed one comes.
    assert 'id="board"' not in all_html
    assert '<article id="card-sim-a"' in all_html and ">forced open<" in all_html
    await unhealthy.disconnect()
    await everything.disconnect()

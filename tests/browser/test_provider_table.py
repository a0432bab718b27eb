"""The providers table in a real browser, against the real server with 200 providers: the
default view, a search that narrows the rows, a sort by a column, and a live push that
updates a row without losing the search or the sort."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e import server as srv

from .conftest import CHROMIUM, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

COUNT = 200

SETUP = """
import json
from providers.config import apply_config
caps = ["chat", "embeddings", "image", "tts"]
apply_config({"providers": [
    {"name": f"sim-{i:03d}", "kind": "simulated", "models": ["m"], "priority": 1 + i % 7,
     "capabilities": [caps[i % 4]], "options": {"latency_ms": 2, "seed": i},
     "health_check": {"interval_s": 3600, "timeout_s": 5}}
    for i in range(COUNT)
]}, actor="browser-tests")
""".replace("COUNT", str(COUNT))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[srv.ServerProcess, str]]:
    if shutil.which(CHROMIUM) is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    tmp = tmp_path_factory.mktemp("fleet")
    server = srv.prepare(tmp, {"MONITOR_EMBEDDED": "true"})
    server.manage("shell", "-c", SETUP)
    key = server.manage("create_api_key", "browser-tests", "--scopes", "read,admin").stdout.strip().splitlines()[-1]
    srv.start(server, tmp)
    try:
        yield server, key
    finally:
        server.stop()


@pytest.fixture
def table(browser: Any, fleet: tuple[srv.ServerProcess, str]) -> Iterator[Any]:
    server, _ = fleet
    context = browser.new_context(viewport={"width": 1400, "height": 900}, color_scheme="light")
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, server.url)
    yield page
    context.close()
    assert errors == [], errors


def visible_names(page: Any) -> list[str]:
    return page.eval_on_selector_all("#ptable-rows > [role=row]:not([hidden])", "rows => rows.map(r => r.dataset.name)")


def test_200_providers_show_as_a_table_that_searches_sorts_and_stays_live(table, fleet, screenshots):
    server, key = fleet
    page = table
    expect(page.locator("#live-status")).to_have_text("Live")
    expect(page.locator("#ptable")).to_be_visible()
    assert page.locator("#ptable-rows > [role=row]").count() == COUNT
    assert page.locator("article.provider-card").count() == 0
    page.screenshot(path=str(screenshots / "dashboard-table.png"))

    # Search narrows the rows as one types, and the URL keeps it.
    page.get_by_label("Search", exact=True).fill("sim-01")
    expect(page.locator("#ptable-shown")).to_have_text("10 of 200 providers")
    assert visible_names(page) == [f"sim-01{i}" for i in (4, 5, 6, 0, 7, 1, 8, 2, 9, 3)]  # priority, then name
    assert "q=sim-01" in page.url

    # Sort by name, descending (the second click on the header).
    header = page.get_by_role("columnheader", name="Name", exact=True)
    header.get_by_role("link").click()
    expect(header).to_have_attribute("aria-sort", "ascending")
    header.get_by_role("link").click()
    expect(header).to_have_attribute("aria-sort", "descending")
    assert visible_names(page) == [f"sim-01{i}" for i in range(9, -1, -1)]
    assert "sort=name" in page.url and "dir=desc" in page.url

    # A live push: force one breaker open through the API; its row changes in place, and the
    # search and the sort hold.
    page.evaluate("window.__samePage = true")
    row = page.locator("#row-sim-015")
    expect(row.locator('[data-field="breaker"]')).to_have_text("closed")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as client:
        forced = client.post("/api/breakers/sim-015/force-open", content=json.dumps({"minutes": 5}))
        assert forced.status_code == 200, forced.text
    expect(row.locator('[data-field="breaker"]')).to_have_text("forced open")
    expect(row.locator('[data-field="status"]')).to_have_text("unhealthy")
    assert visible_names(page) == [f"sim-01{i}" for i in range(9, -1, -1)]
    expect(page.locator("#ptable-shown")).to_have_text("10 of 200 providers")
    assert page.get_by_label("Search", exact=True).input_value() == "sim-01"
    assert page.evaluate("window.__samePage") is True

    # The status filter is applied to the row the push changed.
    page.get_by_label("Status", exact=True).select_option("unhealthy")
    expect(page.locator("#ptable-shown")).to_have_text("1 of 200 providers")
    assert visible_names(page) == ["sim-015"]

    # A reload asks the server for the same arrangement.
    page.reload()
    expect(page.locator("#ptable-shown")).to_have_text("1 of 200 providers")
    assert visible_names(page) == ["sim-015"]
    assert page.get_by_label("Search", exact=True).input_value() == "sim-01"

    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(screenshots / "dashboard-table-phone.png"))


def test_the_cards_view_is_a_toggle_away_and_remembered(table, fleet):
    server, _ = fleet
    page = table
    page.get_by_role("link", name="Cards", exact=True).click()
    expect(page.locator("article.provider-card").first).to_be_visible()
    assert page.locator("#ptable").count() == 0
    page.goto(server.url + "/")
    expect(page).to_have_url(server.url + "/?view=cards")
    page.get_by_role("link", name="Table", exact=True).click()
    expect(page.locator("#ptable")).to_be_visible()

"""Configuration in a real browser against the real server: a provider and a route made
entirely in the console (typed fields, the kind's own fields swapped in, a connection test,
targets chosen from the providers' models and reordered with the keyboard), then a request
sent through the new route with the official `openai` SDK."""

from __future__ import annotations

import httpx
import pytest
from openai import OpenAI
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def test_a_provider_and_a_route_made_in_the_console_serve_a_request(page, console, screenshots):
    page.goto(console.url + "/config/providers")
    expect(page.get_by_role("heading", name="Provider configuration")).to_be_visible()
    page.get_by_role("link", name="New provider").click()
    expect(page).to_have_url(console.url + "/config/providers/new")

    page.get_by_label("Name", exact=True).fill("console-sim")
    page.get_by_label("Kind").select_option("simulated")
    # htmx swapped in the kind's own fields, with how to make the provider fail
    expect(page.locator("#simulated-help")).to_contain_text("1 fails every call")
    expect(page.get_by_label("Error rate")).to_be_visible()
    page.get_by_label("Models").fill("sim-chat")
    page.locator("#provider-form").get_by_label("chat", exact=True).check()
    page.get_by_label("Latency (ms)").fill("3")
    page.screenshot(path=str(screenshots / "config-provider-new.png"), full_page=True)
    page.get_by_role("button", name="Create provider").click()
    expect(page).to_have_url(console.url + "/config/providers/console-sim")
    expect(page.locator("#flash")).to_contain_text("Provider console-sim created.")

    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("#test-result")).to_contain_text("Connected to console-sim")

    page.goto(console.url + "/config/routes/new")
    page.get_by_label("Name", exact=True).fill("console-route")
    rows = page.locator("[data-target-row]")
    rows.nth(0).get_by_label("Provider", exact=True).select_option("upstream")
    expect(rows.nth(0).get_by_label("Model", exact=True).locator("option")).to_have_text(["first model", "gpt-4o-mini"])
    rows.nth(0).get_by_label("Model", exact=True).select_option("gpt-4o-mini")
    page.get_by_role("button", name="Add target").click()
    expect(rows).to_have_count(2)
    rows.nth(1).get_by_label("Provider", exact=True).select_option("console-sim")
    rows.nth(1).get_by_label("Model", exact=True).select_option("sim-chat")

    # the keyboard: the second row's handle, arrow up; the move is announced
    handle = rows.nth(1).locator("[data-handle]")
    handle.focus()
    page.keyboard.press("ArrowUp")
    expect(page.locator("#reorder-status")).to_have_text("console-sim/sim-chat moved to position 1 of 2.")
    expect(rows.nth(0).get_by_label("Provider", exact=True)).to_have_value("console-sim")
    expect(rows.nth(1).get_by_label("Model", exact=True)).to_have_value("gpt-4o-mini")
    assert page.evaluate("document.activeElement.hasAttribute('data-handle')")  # focus stays on the handle
    expect(rows.nth(0).locator("[data-handle]")).to_have_attribute(
        "aria-label", "Target 1: console-sim/sim-chat. Move with the arrow keys"
    )
    page.screenshot(path=str(screenshots / "config-route-new.png"), full_page=True)
    page.get_by_role("button", name="Create route").click()
    expect(page).to_have_url(console.url + "/config/routes/console-route")
    expect(page.locator("#flash")).to_contain_text("Route console-route created.")

    page.goto(console.url + "/config/routes")
    expect(page.locator("#config-route-console-route ol li")).to_have_text(
        ["console-sim/sim-chat", "upstream/gpt-4o-mini"]
    )

    client = OpenAI(base_url=console.url + "/v1", api_key=console.api_key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="console-route", messages=[{"role": "user", "content": "hello"}]
    )
    assert raw.headers["X-Gateway-Route"] == "console-route"
    assert raw.headers["X-Gateway-Provider"] == "console-sim"
    assert raw.parse().choices[0].message.content

    for width in (1400, 390):  # every new page, wide and on a phone
        page.set_viewport_size({"width": width, "height": 900})
        for name, path in (
            ("providers", "/config/providers"),
            ("provider", "/config/providers/console-sim"),
            ("routes", "/config/routes"),
            ("route", "/config/routes/console-route"),
        ):
            page.goto(console.url + path)
            page.screenshot(path=str(screenshots / f"config-{name}-{width}.png"), full_page=True)

    with httpx.Client(base_url=console.url, headers={"Authorization": f"Bearer {console.api_key}"}) as api:
        config = api.get("/api/config").json()
    route = next(r for r in config["routes"] if r["name"] == "console-route")
    assert [(t["provider"], t["model"]) for t in route["targets"]] == [
        ("console-sim", "sim-chat"),
        ("upstream", "gpt-4o-mini"),
    ]


def test_targets_reorder_by_the_move_buttons_and_save_in_that_order(page, console):
    page.goto(console.url + "/config/routes/chat")
    rows = page.locator("[data-target-row]")
    page.get_by_role("button", name="Add target").click()
    rows.nth(1).get_by_label("Provider", exact=True).select_option("local-ollama")
    rows.nth(1).get_by_role("button", name="Move up").click()
    expect(page.locator("#reorder-status")).to_have_text("local-ollama moved to position 1 of 2.")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#flash")).to_contain_text("Route chat updated.")
    expect(rows.nth(0).get_by_label("Provider", exact=True)).to_have_value("local-ollama")
    # and back, so the other tests of this server find their route as it was
    rows.nth(0).get_by_role("button", name="Remove").click()
    expect(rows).to_have_count(1)
    expect(rows.nth(0).get_by_label("Provider", exact=True)).to_have_value("upstream")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#flash")).to_contain_text("Route chat updated.")

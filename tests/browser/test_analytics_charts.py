"""The analytics page in a real browser against the real server: a fresh install opens on a
window its few requests fill, the figures refresh while the page is open, counts are bars,
errors have plain names, costs a currency, providers an uptime, and a configuration change
is marked on the charts. Screenshots: docs/screenshots/analytics-*.png (UPDATE_SCREENSHOTS=1).
"""

from __future__ import annotations

import re
import time

import httpx
import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}


def requests_recorded(api: httpx.Client, at_least: int) -> int:
    """Bounded poll: the gateway writes its analytics in batches (about a second)."""
    deadline = time.monotonic() + 20
    while True:
        total = api.get("/api/analytics?window=1h").json()["total"]["requests"]
        if total >= at_least or time.monotonic() > deadline:
            return int(total)
        time.sleep(0.2)


def test_a_fresh_install_opens_on_a_short_window_and_refreshes_while_open(page, console):
    with httpx.Client(base_url=console.url, headers={"Authorization": f"Bearer {console.api_key}"}) as api:
        for _ in range(2):
            assert api.post("/v1/chat/completions", json=CHAT).status_code == 200
        console.openai.fault(status=503, times=1)
        assert api.post("/v1/chat/completions", json=CHAT).status_code >= 500
        assert requests_recorded(api, 3) == 3

        page.goto(console.url + "/analytics")
        expect(page.locator('.tabs [aria-current="true"]')).to_have_text("5 minutes")
        requests_tile = page.locator('[data-field="requests"]')
        expect(requests_tile).to_have_text("3")
        expect(page.locator("svg.chart rect.bar").first).to_be_visible()  # counts are bars
        errors = page.locator("#top-errors")
        expect(errors).to_contain_text("Service unavailable (http_503)")

        assert api.post("/v1/chat/completions", json=CHAT).status_code == 200
        assert requests_recorded(api, 4) == 4
        # No reload: the live fragment polls every 15 s.
        expect(requests_tile).to_have_text("4", timeout=25_000)
        expect(page.locator('.tabs [aria-current="true"]')).to_have_text("5 minutes")

        # A hidden tab asks nothing; shown again, it catches up at once instead of in 15 s.
        assert api.post("/v1/chat/completions", json=CHAT).status_code == 200
        assert requests_recorded(api, 5) == 5
        sent = page.evaluate(
            """() => {
              window.__sent = 0;
              document.addEventListener("htmx:beforeSend", () => { window.__sent += 1; });
              Object.defineProperty(document, "hidden", {configurable: true, get: () => true});
              document.body.dispatchEvent(new CustomEvent("console:visible"));
              return window.__sent;
            }"""
        )
        assert sent == 0
        expect(requests_tile).to_have_text("4")
        page.evaluate(
            """() => {
              Object.defineProperty(document, "hidden", {configurable: true, get: () => false});
              document.dispatchEvent(new Event("visibilitychange"));
            }"""
        )
        expect(requests_tile).to_have_text("5", timeout=5_000)


def test_history_with_a_change_marked_uptime_and_currency(page, console, screenshots):
    console.server.manage("seed_analytics", "--rows", "20000", "--days", "2", "--providers", "upstream", "demo-flaky")
    with httpx.Client(base_url=console.url, headers={"Authorization": f"Bearer {console.api_key}"}) as api:
        assert api.post("/api/providers/demo-slow/disable").status_code == 200
        assert api.post("/api/providers/demo-slow/enable").status_code == 200

    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(console.url + "/analytics")
    expect(page.locator('.tabs [aria-current="true"]')).to_have_text("24 hours")  # data older than a day
    expect(page.locator("svg.chart g.note").first).to_be_attached()
    expect(page.locator("#config-changes")).to_contain_text("disabled provider demo-slow")
    expect(page.locator(".tile").filter(has_text="Cost")).to_contain_text("USD")
    uptime = page.locator("#provider-comparison tr").filter(has_text="upstream").locator('[data-field="uptime"]')
    expect(uptime).to_have_text(re.compile(r"^\d+(\.\d)?%$"))  # the monitor has checked it all along
    page.screenshot(path=str(screenshots / "analytics-1400.png"), full_page=True)

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(console.url + "/analytics")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(screenshots / "analytics-390.png"), full_page=False)

"""The request log in a real browser against the real server: a failed request's
`X-Request-Id` found by filtering `/requests` by status, and its page with the attempt timeline."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hello"}]}


def test_a_failed_request_is_found_by_status_and_opened_with_its_attempts(page, console):
    with httpx.Client(base_url=console.url, headers={"Authorization": f"Bearer {console.api_key}"}) as client:
        answered = client.post("/v1/chat/completions", json=CHAT)
        console.openai.fault(status=500)
        try:
            failed = client.post("/v1/chat/completions", json=CHAT)
        finally:
            console.openai.clear_faults()
    assert answered.status_code == 200 and failed.status_code == 502
    ok_id, failed_id = answered.headers["X-Request-Id"], failed.headers["X-Request-Id"]

    page.goto(console.url + "/requests")
    expect(page.get_by_role("link", name="Requests", exact=True)).to_have_attribute("aria-current", "page")
    # The log is written in batches (ANALYTICS_FLUSH_INTERVAL_S): look again until both are there.
    row = page.locator(f'tr[data-request-id="{failed_id}"]')
    for _ in range(20):
        if row.count() and page.locator(f'tr[data-request-id="{ok_id}"]').count():
            break
        page.wait_for_timeout(250)
        page.reload()
    expect(row).to_be_visible()

    page.evaluate("window.__samePage = true")
    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(console.url + "/requests?route=&provider=&key=&status=failed&since=&until=")
    expect(page.locator(f'tr[data-request-id="{ok_id}"]')).to_have_count(0)  # the table was swapped
    assert page.evaluate("window.__samePage") is True  # by htmx, not a new page

    row.get_by_role("link", name=failed_id).click()
    expect(page).to_have_url(f"{console.url}/requests/{failed_id}")
    expect(page.locator('[data-field="outcome"]')).to_have_text("failure")
    expect(page.locator('[data-field="route"]')).to_have_text("chat")
    attempts = page.locator("#attempts tbody tr")
    expect(attempts).to_have_count(1)
    expect(attempts.first).to_contain_text("upstream")
    expect(attempts.first).to_contain_text("500")

    page.goto(console.url + "/requests")
    page.get_by_label("Request id").fill(ok_id)
    page.get_by_role("button", name="Open").click()
    expect(page).to_have_url(f"{console.url}/requests/{ok_id}")
    expect(page.locator('[data-field="outcome"]')).to_have_text("success")

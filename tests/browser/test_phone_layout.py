"""The console on a 390 px phone, and its clock, in a real browser against the real server:
a provider's status and actions in the first screen, tables that scroll inside their card and
never the page, a reconnecting banner that stays in sight, and timestamps in the browser's
own time zone (no CONSOLE_TIME_ZONE), one format everywhere, relative times ticking."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from playwright.sync_api import expect

from .conftest import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

PHONE = {"width": 390, "height": 844}
PAGES = ("/", "/providers/upstream", "/events", "/incidents", "/analytics", "/requests", "/keys", "/routes/chat/test")
STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+$")


@pytest.fixture
def phone(browser, console):
    context = browser.new_context(viewport=PHONE, color_scheme="light", timezone_id="Asia/Tokyo", is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, console.url)
    yield page
    context.close()
    assert errors == [], errors


def test_a_providers_status_and_actions_come_first_on_a_phone(phone, console, screenshots):
    phone.goto(console.url + "/providers/upstream")
    status = phone.locator('[data-field="status"]').first
    actions = phone.get_by_role("button", name="Check now")
    charts = phone.get_by_role("heading", name="Over time")
    for part in (status, actions, charts):
        expect(part).to_be_visible()
    top, bottom, below = boxes(phone, status, actions, charts)
    assert top["y"] < bottom["y"]  # the status, then the actions
    assert bottom["y"] + bottom["height"] <= PHONE["height"], bottom  # in the first screen, no scrolling
    assert below["y"] > bottom["y"]  # the charts after them
    phone.screenshot(path=str(screenshots / "provider-phone.png"), full_page=False)


def boxes(page, *parts):  # type: ignore[no-untyped-def]
    """The parts' boxes, taken together: the monitor's pushes swap the provider's fragments in
    while the page is read, and a part swapped out between two reads has no box for a moment."""
    for _ in range(50):
        found = [part.bounding_box() for part in parts]
        if all(found):
            return found
        page.wait_for_timeout(100)
    raise AssertionError(f"no box for {[str(part) for part, box in zip(parts, found, strict=True) if not box]}")


@pytest.mark.parametrize("path", PAGES)
def test_no_page_scrolls_sideways_on_a_phone(phone, console, path):
    phone.goto(console.url + path)
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_a_wide_table_scrolls_inside_its_card(phone, console, screenshots):
    with httpx.Client(base_url=console.url, headers={"Authorization": f"Bearer {console.api_key}"}) as api:
        assert api.post("/v1/chat/completions", json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]})
    phone.goto(console.url + "/requests")
    for _ in range(40):  # the log is written in batches
        if phone.locator("#request-table tbody tr[data-request-id]").count():
            break
        phone.wait_for_timeout(250)
        phone.reload()
    wrap = phone.locator("#request-list .table-wrap")
    widths = wrap.evaluate("el => [el.scrollWidth, el.clientWidth]")
    assert widths[0] > widths[1]  # wider than the card: it scrolls there
    wrap.evaluate("el => { el.scrollLeft = el.scrollWidth; }")
    assert wrap.evaluate("el => el.scrollLeft") > 0
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    phone.screenshot(path=str(screenshots / "requests-phone.png"), full_page=False)


def test_the_reconnecting_banner_stays_in_sight_when_the_socket_is_lost(phone, console, screenshots):
    phone.route_web_socket("**/ws/health/**", lambda ws: ws.close(code=4000, reason="gone (test)"))
    phone.goto(console.url + "/providers/upstream")
    banner = phone.locator("#reconnect-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("reconnecting")
    phone.evaluate("window.scrollTo(0, document.body.scrollHeight)")  # far down: the top bar is gone
    phone.wait_for_function("() => window.scrollY > 500")  # a function: evaluated once, so CSP allows its polling
    expect(banner).to_be_in_viewport()
    phone.screenshot(path=str(screenshots / "reconnecting-phone.png"), full_page=False)


def test_the_banner_stays_hidden_while_the_socket_is_up(phone, console):
    phone.goto(console.url + "/providers/upstream")
    expect(phone.locator("#live-status")).to_have_attribute("data-state", "on")
    expect(phone.locator("#reconnect-banner")).to_be_hidden()


def test_timestamps_are_in_the_browsers_zone_in_one_format(phone, console):
    with httpx.Client(base_url=console.url, headers={"Authorization": f"Bearer {console.api_key}"}) as api:
        answer = api.post(
            "/v1/chat/completions", json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
        )
    phone.goto(console.url + f"/requests/{answer.headers['X-Request-Id']}")
    for _ in range(40):  # the log is written in batches
        if phone.locator('[data-field="outcome"]').count():
            break
        phone.wait_for_timeout(250)
        phone.reload()
    stamp = phone.locator("main time[data-stamp]:not([data-ago])").first
    expect(stamp).to_have_attribute("data-stamp", "local")  # rewritten by the page's script
    text = stamp.text_content() or ""
    assert STAMP.match(text), text
    at = datetime.fromisoformat(stamp.get_attribute("datetime") or "")
    tokyo = at.astimezone(timezone(timedelta(hours=9)))
    assert text.startswith(tokyo.strftime("%Y-%m-%d %H:%M:%S")) and text.endswith("GMT+9"), text
    relative = phone.locator("main time[data-ago]").first
    expect(relative).to_have_text(re.compile(r"^\d+ (s|min|h|d) ago$"))
    expect(relative).to_have_attribute("title", text)  # the same instant, in the same words

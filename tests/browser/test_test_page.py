"""The test pages in a real browser against the real server: a provider's chat, image and
speech tests and a route's test, each answer shown with its attempts, the request found in
the log by the page's link; screenshots at 1400 px and 390 px."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def open_logged_request(page, url: str) -> None:
    """The log is written in batches (ANALYTICS_FLUSH_INTERVAL_S): look again until it is there."""
    page.goto(url)
    for _ in range(40):
        if page.locator('[data-field="outcome"]').count():
            return
        page.wait_for_timeout(250)
        page.reload()


def test_a_provider_chat_test_shows_the_answer_and_its_attempt_and_links_to_the_log(page, console):
    page.goto(console.url + "/providers/demo-fast/test")
    expect(page.get_by_role("heading", name="Test demo-fast")).to_be_visible()
    page.evaluate("window.__samePage = true")
    page.get_by_label("Prompt").fill("Say hello in five words.")
    page.get_by_label("Model").fill("sim-small")
    page.get_by_role("button", name="Send chat test").click()
    result = page.locator("#test-result")
    expect(result.locator('[data-field="outcome"]')).to_have_text("success")
    expect(result.locator(".answer-text")).not_to_be_empty()
    expect(result.locator('[data-field="served"]')).to_contain_text("demo-fast")
    rows = result.locator("#test-attempts tbody tr")
    expect(rows).to_have_count(1)  # one provider, no fallback
    expect(rows.first).to_contain_text("demo-fast")
    expect(rows.first).to_contain_text(re.compile(r"\d+ ms"))
    assert page.evaluate("window.__samePage") is True  # swapped in place by htmx

    link = result.locator('[data-field="request-id"] a')
    request_id = link.text_content()
    assert request_id and request_id.startswith("console-")
    open_logged_request(page, console.url + f"/requests/{request_id}")
    expect(page.locator('[data-field="outcome"]')).to_have_text("success")
    expect(page.locator('[data-field="provider"]')).to_have_text("demo-fast")
    expect(page.locator('[data-field="key"]')).to_have_text("none")  # no API key: the console sent it


def test_an_image_test_shows_the_image_and_a_speech_test_plays(page, console, screenshots):
    page.goto(console.url + "/providers/demo-fast/test")
    page.get_by_role("link", name="Image", exact=True).click()
    expect(page).to_have_url(console.url + "/providers/demo-fast/test?modality=image")
    page.get_by_label("Prompt").fill("A lighthouse at dusk")
    page.get_by_role("button", name="Send image test").click()
    image = page.locator("#test-result img.answer-image")
    expect(image).to_be_visible()
    # A function, not an expression: Playwright evals the string once (under CSP, only the first
    # evaluation, made through the debugger, may eval; the polls after it reuse the function).
    page.wait_for_function("() => document.querySelector('#test-result img.answer-image').naturalWidth > 0")
    page.set_viewport_size({"width": 1400, "height": 900})
    page.screenshot(path=str(screenshots / "test-page.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing sticks out sideways
    page.screenshot(path=str(screenshots / "test-page-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1360, "height": 900})

    page.get_by_role("link", name="Speech", exact=True).click()
    page.get_by_label("Text").fill("Hello from the console.")
    page.get_by_role("button", name="Send speech test").click()
    audio = page.locator("#test-result audio.answer-audio")
    expect(audio).to_be_visible()
    # The audio is served by the console (same origin, as the page's CSP wants) and loads.
    page.wait_for_function("() => document.querySelector('#test-result audio.answer-audio').readyState >= 1")
    assert page.evaluate("document.querySelector('#test-result audio.answer-audio').duration") > 0


def test_a_route_test_takes_the_routes_chain_and_a_failure_is_shown_in_place(page, console, screenshots):
    page.goto(console.url + "/routes/chat/test")
    page.get_by_role("button", name="Send chat test").click()
    result = page.locator("#test-result")
    expect(result.locator('[data-field="outcome"]')).to_have_text("success")
    expect(result.locator('[data-field="served"]')).to_contain_text("upstream")

    console.openai.fault(status=500)
    try:
        page.get_by_role("button", name="Send chat test").click()
        expect(result.locator('[data-field="outcome"]')).to_have_text("failure")
    finally:
        console.openai.clear_faults()
    expect(result.locator('[data-field="error"]')).to_be_visible()
    expect(result.locator("#test-attempts tbody tr").first).to_contain_text("500")
    page.set_viewport_size({"width": 1400, "height": 900})
    page.screenshot(path=str(screenshots / "route-test.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(screenshots / "route-test-phone.png"), full_page=True)


def test_a_viewer_sees_the_page_but_not_the_send_button(browser, console):
    console.server.manage(
        "shell",
        "-c",
        "from django.contrib.auth.models import User; "
        "User.objects.create_user('watcher', password='watcher-pass-123', is_staff=True)",
    )
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    try:
        page = context.new_page()
        page.goto(console.url + "/login/")
        page.get_by_label("Username").fill("watcher")
        page.get_by_label("Password").fill("watcher-pass-123")
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(console.url + "/")
        page.goto(console.url + "/providers/demo-fast/test")
        expect(page.get_by_role("heading", name="Test demo-fast")).to_be_visible()
        expect(page.get_by_role("button", name=re.compile("^Send"))).to_have_count(0)
        expect(page.get_by_text("Members of the operators group")).to_be_visible()
    finally:
        context.close()

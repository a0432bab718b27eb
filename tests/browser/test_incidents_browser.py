"""Incidents in a real browser against the real server: an outage of `upstream` (its fake
OpenAI upstream answering 500, so its breaker opens) opens one incident, which the embedded
monitor alerts about once through a webhook channel; the operator acknowledges and mutes it
on /incidents; the provider recovers and the incident resolves with one resolution message.

/incidents has no socket of its own (only the dashboard and the provider pages are pushed
to): its list asks the server again every 10 seconds. The test reloads it to find a new incident
quickly, then watches the resolution arrive without a reload; its buttons answer in place (htmx
swaps the list).

Also the screenshots of the console pages that had none, wide and on a phone.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.fakes.webhook import FakeWebhook

from .conftest import Console, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

PROVIDER = "upstream"
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hello"}]}
WIDE = {"width": 1400, "height": 900}
PHONE = {"width": 390, "height": 844}
HANG_S = 60.0  # a guard against a hang while the monitor runs its checks, not a timing goal
HANG_MS = int(HANG_S * 1000)

# A JSON webhook channel for `upstream` alone (the demo's providers have outages of their
# own), with the default thresholds: two bad evaluations before the alert, two good ones after
# the incident resolved before the resolution message. Loopback receivers are allowed.
CHANNEL = """
from health.models import AlertChannel
from providers.models import Provider
channel = AlertChannel(name="ops", kind="webhook", failure_threshold=2, success_threshold=2)
channel.set_target({url!r})
channel.save()
channel.providers.set(Provider.objects.filter(name={provider!r}))
"""


@pytest.fixture(scope="module")
def receiver(console: Console) -> Iterator[FakeWebhook]:
    """The webhook receiver the `ops` channel posts to, set up once the server runs (the
    monitor reads the channels at each evaluation)."""
    hook = FakeWebhook()
    with hook:
        console.server.manage("shell", "-c", CHANNEL.format(url=hook.url + "/alerts", provider=PROVIDER))
        yield hook


@pytest.fixture
def api(console: Console) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=console.url, headers={"Authorization": f"Bearer {console.api_key}"}, timeout=30
    ) as client:
        yield client


def sent(receiver: FakeWebhook, event: str) -> int:
    """How many notices of this kind ("alert", "acknowledged", "recovery", ...) the channel
    posted about `upstream`."""
    return sum(1 for p in receiver.payloads("/alerts") if p.get("event") == event and p.get("provider") == PROVIDER)


def wait_until(check: Callable[[], bool], what: str) -> None:
    """Poll a condition outside the page (the receiver's posts)."""
    deadline = time.monotonic() + HANG_S
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what}")
        time.sleep(0.2)


def reload_until(page: Any, check: Callable[[], bool], what: str) -> None:
    """Load the page again until `check` holds: /incidents is not pushed to."""
    deadline = time.monotonic() + HANG_S
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"the page never showed {what}")
        page.wait_for_timeout(500)
        page.reload()


# What sticks out past the right edge of the window, outside any box that scrolls or clips
# it (a wide table scrolls inside its card): the innermost such elements, to name the culprit.
STICKING_OUT = """() => {
    const edge = document.documentElement.clientWidth;
    const clipped = (el) => {
        for (let up = el.parentElement; up && up !== document.body; up = up.parentElement) {
            if (getComputedStyle(up).overflowX !== "visible") return true;
        }
        return false;
    };
    const out = [...document.body.querySelectorAll("*")].filter(
        (el) => el.getBoundingClientRect().right > edge + 0.5 && !clipped(el));
    return out.filter((el) => !out.some((other) => other !== el && el.contains(other))).slice(0, 5).map(
        (el) => `<${el.tagName.toLowerCase()} class="${el.className}"> right=${el.getBoundingClientRect().right}: ` +
                (el.textContent || "").trim().replace(/\\s+/g, " ").slice(0, 80));
}"""


def fits_a_phone(page: Any, name: str) -> None:
    """Nothing on the page sticks out sideways at 390 px (the page never scrolls sideways)."""
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{name} is {width} px wide at 390 px: {page.evaluate(STICKING_OUT)}"


def shoot(page: Any, screenshots: Any, name: str) -> None:
    """The page at 1400 px, then at 390 px, where nothing may stick out sideways."""
    for size in (WIDE, PHONE):
        page.set_viewport_size(size)
        page.screenshot(path=str(screenshots / f"{name}-{size['width']}.png"), full_page=True)
        if size is PHONE:
            fits_a_phone(page, name)


def test_an_outage_opens_one_incident_alerted_once_acknowledged_muted_and_resolved_once(
    page, console, receiver, api, screenshots
):
    card = page.locator(f"#card-{PROVIDER}")
    expect(card.locator('[data-field="status"]')).to_have_text("healthy", timeout=HANG_MS)  # the first probe
    assert api.get("/api/incidents", params={"provider": PROVIDER}).json()["incidents"] == []
    assert sent(receiver, "alert") == 0

    # The outage: every call to the upstream fails; three in a row open the breaker.
    console.openai.fault(status=500)
    try:
        statuses = [api.post("/v1/chat/completions", json=CHAT).status_code for _ in range(3)]
        assert statuses[0] == 502 and statuses[-1] in (502, 503), statuses
        expect(card.locator('[data-field="breaker"]')).to_have_text("open")

        page.goto(console.url + "/incidents")
        opened = page.locator("article.incident-open").filter(
            has=page.locator("h2 a", has_text=re.compile(f"^{PROVIDER}$"))
        )
        reload_until(page, lambda: opened.count() > 0, "an open incident")
        expect(opened).to_have_count(1)
        number = int((opened.get_attribute("id") or "").removeprefix("incident-"))
        incident = page.locator(f"#incident-{number}")
        expect(incident.locator(".incident-head .pill").first).to_have_text("open")

        # One alert for the opening; its delivery joins the incident's timeline.
        wait_until(lambda: sent(receiver, "alert") >= 1, "the incident's alert")
        alert = next(p for p in receiver.payloads("/alerts") if p["event"] == "alert")
        assert alert["incident"] == number and alert["provider"] == PROVIDER
        timeline = incident.locator("details table.events")
        reload_until(page, lambda: "alert → sent" in (timeline.text_content() or ""), "the alert in the timeline")
        expect(incident.locator("details")).to_have_attribute("open", "")  # an open incident's timeline shows
        expect(timeline).to_contain_text("closed → open")  # the breaker that led to it
        expect(timeline.locator("tr.kind-incident").first).to_contain_text("open")  # the incident's opening
        expect(incident.locator("summary")).to_have_text(re.compile(r"^Timeline \(\d+ events\)$"))

        # The operator is on it: acknowledged (the channel that alerted is told), then muted.
        page.evaluate("window.__samePage = true")
        incident.get_by_role("button", name="Acknowledge").click()
        expect(page.locator("#flash")).to_contain_text(f"Incident #{number} of {PROVIDER} acknowledged.")
        expect(incident.locator(".incident-head")).to_contain_text("acknowledged by operator")
        expect(incident.get_by_role("button", name="Acknowledge")).to_have_count(0)
        wait_until(lambda: sent(receiver, "acknowledged") == 1, "the acknowledgement's notice")

        incident.get_by_label("Mute alerts for").select_option("15")
        incident.get_by_role("button", name="Mute", exact=True).click()
        expect(page.locator("#flash")).to_contain_text(f"Incident #{number} of {PROVIDER} muted for 15 min.")
        muted = incident.locator(".incident-head .pill", has_text="muted until")
        expect(muted).to_have_text(re.compile(r"^muted until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+ \(in 1[45] min\)$"))
        assert page.evaluate("window.__samePage") is True  # both answered in place, no new page
        expect(timeline).to_contain_text("open → acknowledged")
        expect(timeline).to_contain_text("mute_incident")
        shoot(page, screenshots, "incident-open")
        page.set_viewport_size({"width": 1360, "height": 900})
    finally:
        console.openai.clear_faults()

    # The upstream answers again: the operator closes the breaker and clears the failures of
    # the outage from the window (as the README's "Try it" does), and a check succeeds.
    assert api.post(f"/api/breakers/{PROVIDER}/reset").status_code == 200
    assert api.post(f"/api/health/{PROVIDER}/reset").status_code == 200
    assert api.post(f"/api/health/{PROVIDER}/check").json()["results"][0]["ok"] is True
    state = incident.locator(".incident-head .pill").first
    page.evaluate("window.__samePage = true")
    expect(state).to_have_text("resolved", timeout=HANG_MS)  # the list updates itself, no reload
    assert page.evaluate("window.__samePage") is True
    expect(incident).to_have_class(re.compile(r"\bincident-resolved\b"))
    expect(incident.locator(".incident-head")).to_contain_text("Resolution: recovered")
    expect(incident.locator(".incident-head")).to_contain_text("acknowledged by operator")
    expect(incident.locator(".incident-head")).to_contain_text("muted until")  # still muted
    assert sent(receiver, "recovery") == 0  # a muted incident's resolution message waits

    # The mute ends (the same control): the resolution message owed goes out, once.
    incident.get_by_label("Mute alerts for").select_option("0")
    incident.get_by_role("button", name="Mute", exact=True).click()
    expect(page.locator("#flash")).to_contain_text(f"Incident #{number} of {PROVIDER} unmuted.")
    expect(incident.locator(".incident-head")).not_to_contain_text("muted until")
    wait_until(lambda: sent(receiver, "recovery") >= 1, "the resolution message")
    recovery = next(p for p in receiver.payloads("/alerts") if p["event"] == "recovery")
    assert recovery["incident"] == number and recovery["since"] == alert["at"]

    # One incident for the whole outage, one alert each way, and nothing else about it.
    found = api.get("/api/incidents", params={"provider": PROVIDER}).json()["incidents"]
    assert [(i["id"], i["state"], i["acknowledged_by"]) for i in found] == [(number, "resolved", "operator")]
    events = [p["event"] for p in receiver.payloads("/alerts") if p.get("provider") == PROVIDER]
    assert events == ["alert", "acknowledged", "recovery"], events


def test_screenshots_of_the_incidents_events_keys_and_requests_pages(browser, console, api, screenshots):
    # Whatever a failed test before left behind: a breaker open, an incident muted.
    api.post(f"/api/breakers/{PROVIDER}/reset")
    for incident in api.get("/api/incidents").json()["incidents"]:
        if incident["muted_until"]:
            api.post(f"/api/incidents/{incident['id']}/mute", json={"minutes": 0})
    answer = api.post("/v1/chat/completions", json=CHAT)
    assert answer.status_code == 200
    for size in (WIDE, PHONE):
        context = browser.new_context(viewport=size, color_scheme="light", is_mobile=size is PHONE)
        page = context.new_page()
        page.set_default_timeout(10_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
        try:
            sign_in(page, console.url)
            shoot_pages(page, console.url, answer.headers["X-Request-Id"], screenshots, size["width"])
        finally:
            context.close()
        assert errors == [], errors  # no script error on any page


def shoot_pages(page: Any, url: str, request_id: str, screenshots: Any, width: int) -> None:
    def shot(name: str) -> None:
        page.screenshot(path=str(screenshots / f"{name}-{width}.png"), full_page=True)
        if width == PHONE["width"]:
            fits_a_phone(page, name)

    page.goto(url + "/incidents")
    expect(page.get_by_role("heading", name="Incidents", exact=True)).to_be_visible()
    shot("incidents")

    page.goto(url + "/events")
    page.get_by_label("Search").fill(PROVIDER)
    page.get_by_label("Search").press("Enter")
    expect(page).to_have_url(re.compile(rf"[?&]q={PROVIDER}(&|$)"))
    expect(page.locator("#event-list tbody tr").first).to_contain_text(PROVIDER)
    shot("events")

    page.goto(url + "/keys")
    expect(page.locator("#keys")).to_contain_text("browser-tests")
    shot("keys")

    page.goto(url + "/requests")
    row = page.locator(f'tr[data-request-id="{request_id}"]')
    reload_until(page, lambda: row.count() > 0, "the request in the log")  # the log is written in batches
    shot("requests")

    page.goto(url + f"/requests/{request_id}")
    expect(page.locator('[data-field="outcome"]')).to_have_text("success")
    shot("request")

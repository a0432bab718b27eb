"""The real server (daphne, `manage.py serve`, embedded monitor) with fake upstreams, and
Debian's chromium driven by Playwright.

One server per module: an OpenAI-compatible fake behind the route `chat`, a fake Ollama,
and the demo's simulated providers, with the default settings: the breaker's change is pushed
the moment the engine makes it, and it wakes the embedded monitor, whose debounced status
(two evaluations, one tick apart) follows within about a second.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import server as srv
from tests.fakes.ollama import FakeOllama
from tests.fakes.openai import API_KEY, FakeOpenAI

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
USERNAME = "operator"
PASSWORD = "operator-pass-123"  # tests/e2e/server.py's ADMIN_PASSWORD
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@dataclass
class Console:
    server: srv.ServerProcess
    openai: FakeOpenAI
    ollama: FakeOllama
    api_key: str

    @property
    def url(self) -> str:
        return self.server.url


def config(openai: FakeOpenAI, ollama: FakeOllama) -> dict[str, Any]:
    return {
        "providers": [
            {
                "name": "upstream",
                "kind": "openai",
                "base_url": openai.url + "/v1",
                "api_key": API_KEY,
                "models": ["gpt-4o-mini"],
                "capabilities": ["chat"],
                "priority": 1,
                "retry": {"max_attempts": 1},
                "breaker": {
                    "consecutive_failures": 3,
                    "min_calls": 3,
                    "failure_rate": 0.5,
                    "break_s": 120,
                    "max_break_s": 300,
                },
                "health_check": {"interval_s": 60, "timeout_s": 5},
            },
            {
                "name": "local-ollama",
                "kind": "ollama",
                "base_url": ollama.url,
                "priority": 4,
                "health_check": {"interval_s": 60, "timeout_s": 5},
            },
        ],
        "routes": [
            {
                "name": "chat",
                "capability": "chat",
                "max_attempts": 1,
                "targets": [{"provider": "upstream", "model": "gpt-4o-mini"}],
            }
        ],
    }


# After the demo and the test's providers: the day before the test, so the charts, strips and sparklines of the screenshots have a
# history to draw. It ends ten minutes ago: the monitor takes in only the last five minutes
# of probes when it starts, so every state the tests assert on is live.
SETUP = """
import json
import random
from datetime import timedelta
from django.utils import timezone
from health.models import ProbeResult
from providers.models import Provider

rng = random.Random(7)
now = timezone.now()
shape = {"demo-fast": (80, 25, 0.01), "demo-flaky": (260, 140, 0.12), "demo-slow": (900, 250, 0.02),
         "upstream": (140, 40, 0.005), "local-ollama": (35, 12, 0.0)}
rows = []
for provider in Provider.objects.all():
    base, spread, fail = shape.get(provider.name, (100, 30, 0.01))
    for i in range(288):
        at = now - timedelta(minutes=10 + 5 * i)
        hour = at.hour
        busy = 1.35 if 9 <= hour <= 17 else 1.0
        outage = provider.name == "demo-flaky" and 150 <= i <= 160
        ok = not outage and rng.random() > fail
        ms = max(5.0, rng.gauss(base * busy, spread)) if ok else rng.choice([5000.0, 120.0])
        rows.append(ProbeResult(provider=provider, at=at, ok=ok, slow=ok and ms > base * 2.5, latency_ms=ms,
                                error="" if ok else "http_503: upstream overloaded"))
ProbeResult.objects.bulk_create(rows)
"""


def setup_script(document: dict[str, Any]) -> str:
    """The demo, then our providers and route, then the day of probe history: one process."""
    return (
        "import json\n"
        "from providers.config import apply_config\n"
        "from providers.demo import load_demo\n"
        "assert load_demo()\n"
        f"apply_config(json.loads({json.dumps(json.dumps(document))}), actor='browser-tests')\n" + SETUP
    )


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    if shutil.which(CHROMIUM) is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    tmp = tmp_path_factory.mktemp("console")
    with FakeOpenAI() as openai, FakeOllama(pull_step_s=0.12) as ollama:
        # The embedded monitor the pages rely on, also when REDIS_URL is set (CI's second run),
        # where it would otherwise be left to a separate `manage.py monitor`.
        server = srv.prepare(tmp, {"NO_DEMO": "0", "MONITOR_EMBEDDED": "true"})
        server.manage("shell", "-c", setup_script(config(openai, ollama)))
        key = server.manage("create_api_key", "browser-tests", "--scopes", "gateway,read,admin").stdout.strip()
        key = key.splitlines()[-1]
        srv.start(server, tmp)
        try:
            yield Console(server, openai, ollama, key)
        finally:
            server.stop()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where screenshots go: docs/screenshots/ with UPDATE_SCREENSHOTS=1 (for the README),
    else a temporary directory, so a test run leaves the working tree alone."""
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return DOCS_SCREENSHOTS
    return tmp_path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def sign_in(page: Any, url: str) -> None:
    page.goto(url + "/login/")
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(url + "/")


@pytest.fixture
def page(browser: Any, console: Console) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1360, "height": 900}, color_scheme="light")
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, console.url)
    yield page
    context.close()
    assert errors == [], errors  # no script error on any page

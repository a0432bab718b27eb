"""The five reference stories, end to end: each test loads its example file from examples/
itself, points it at fake providers, and drives the gateway, the operations API and the
console the way an application and an operator would.

Loading a story (`load_story`) is what an operator does, plus one step a test must add:
1. the environment variables the file names (`env:NAME`) are set, to the fakes' keys;
2. the file is imported with `manage.py import_config`, unchanged;
3. the configuration is read back with GET /api/config, every provider's `base_url` is
   pointed at its fake (a test never reaches the internet), a few listed settings are made
   test-sized (`tweak`), and it is written with PUT /api/config.
So the file's names, kinds, models, prices, routes and strategies are what the test runs.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Callable, Iterable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command

from providers.config import load_document
from tests.conftest import auth

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
ENV_REFERENCE = re.compile(r"env:([A-Z0-9_]+)")

Tweak = Callable[[dict[str, Any]], None]


def example_path(story: str) -> Path:
    return EXAMPLES / f"{story}.yaml"


def env_names(story: str) -> set[str]:
    """The environment variables the example file names."""
    return set(ENV_REFERENCE.findall(example_path(story).read_text()))


def provider_entry(config: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in config["providers"] if p["name"] == name)


def route_entry(config: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in config["routes"] if r["name"] == name)


@pytest.fixture
def load_story(gateway, key, monkeypatch):  # type: ignore[no-untyped-def]
    """`await load_story(story, base_urls={provider: url}, env={NAME: value}, tweak=fn)`;
    returns the configuration as the gateway then runs it (GET /api/config)."""

    async def load(
        story: str, *, base_urls: dict[str, str], env: dict[str, str], tweak: Tweak | None = None
    ) -> dict[str, Any]:
        path = example_path(story)
        assert set(env) == env_names(story), "give every env: reference of the file a value"
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        await sync_to_async(call_command)("import_config", str(path), verbosity=0)
        config = (await gateway.get("/api/config", headers=auth(key))).json()
        in_file = {p["name"] for p in load_document(path.read_text())["providers"]}
        assert {p["name"] for p in config["providers"]} == in_file
        assert set(base_urls) == in_file, "point every provider of the file at a fake"
        for provider in config["providers"]:
            provider["base_url"] = base_urls[provider["name"]]
        if tweak is not None:
            tweak(config)
        answer = await gateway.put("/api/config", headers=auth(key), json=config)
        assert answer.status_code == 200, answer.text
        return (await gateway.get("/api/config", headers=auth(key))).json()

    return load


@pytest.fixture
def console(async_client):  # type: ignore[no-untyped-def]
    """The console as one user at a time: `client = await console(user)`."""

    async def as_user(user: Any):  # type: ignore[no-untyped-def]
        await async_client.alogout()
        await async_client.aforce_login(user)
        return async_client

    return as_user


async def settle() -> None:
    """Let the engine's event sink write what the calls so far emitted (breaker changes)."""
    from providers.runtime import runtime

    sink = getattr(runtime(), "event_sink", None)
    if sink is not None:
        await sink.written()


async def until(condition: Callable[[], Any], seconds: float = 5.0, step: float = 0.05) -> float:
    """Wait until `condition()` is true (it may be async); returns the seconds it took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return loop.time() - started
        if loop.time() - started > seconds:
            raise AssertionError(f"not true within {seconds} s")
        await asyncio.sleep(step)


def gaps(times: Iterable[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


class FormFields(HTMLParser):
    """The fields a browser would submit with the page's main form: inputs (checked boxes
    only), selects (their selected options) and textareas, by name."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[tuple[str, str]] = []
        self._select: str | None = None
        self._selected: list[str] = []
        self._first_option: str | None = None
        self._textarea: str | None = None
        self._text: list[str] = []
        self._option: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        name = a.get("name", "")
        if tag == "input" and name and a.get("type", "text") not in ("submit", "button", "file", "image"):
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                return
            self.fields.append((name, a.get("value", "on" if a.get("type") == "checkbox" else "")))
        elif tag == "select" and name:
            self._select, self._selected, self._first_option = name, [], None
        elif tag == "option" and self._select is not None:
            self._option = a.get("value")
            if self._first_option is None:
                self._first_option = self._option
            if "selected" in a and self._option is not None:
                self._selected.append(self._option)
        elif tag == "textarea" and name:
            self._textarea, self._text = name, []

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "select" and self._select is not None:
            chosen = self._selected or ([self._first_option] if self._first_option is not None else [])
            self.fields.extend((self._select, value) for value in chosen)
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            self.fields.append((self._textarea, "".join(self._text).removeprefix("\n")))
            self._textarea = None


def form_fields(html: str) -> dict[str, Any]:
    """What submitting the page's form sends, as the test client's `data` (lists for repeats)."""
    parser = FormFields()
    parser.feed(html)
    data: dict[str, Any] = {}
    for name, value in parser.fields:
        if name in data:
            data[name] = [*data[name], value] if isinstance(data[name], list) else [data[name], value]
        else:
            data[name] = value
    return data

"""Fault injection against the real server: one gateway process and two fake upstreams per
module; each test configures providers of its own (fresh breakers, cooldowns and retry
budgets), so no test sees another's state."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.fakes.openai import FakeOpenAI

from .live import LiveGateway, chain, openai_provider

CHAT = {"model": "r", "messages": [{"role": "user", "content": "hello there"}]}
_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    gateway = LiveGateway.start(tmp_path_factory.mktemp("live"))
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def primary() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def fallback() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@dataclass
class Setup:
    """The names one test routes through: route `route` = [first, second]."""

    route: str
    first: str
    second: str
    solo: str  # a route with `first` alone

    def body(self, route: str | None = None, **extra: Any) -> dict[str, Any]:
        return {**CHAT, "model": route or self.route, **extra}


@pytest.fixture
def setup(live: LiveGateway, primary: FakeOpenAI, fallback: FakeOpenAI):  # type: ignore[no-untyped-def]
    """Configure a fresh pair: `first` (on `url`, the primary fake by default) then the fallback."""
    primary.reset()
    fallback.reset()

    def make(url: str | None = None, **first: Any) -> Setup:
        n = next(_numbers)
        names = Setup(f"r{n}", f"first-{n}", f"second-{n}", f"solo{n}")
        live.configure(
            {
                "providers": [
                    openai_provider(names.first, url or primary.url, **first),
                    openai_provider(names.second, fallback.url),
                ],
                "routes": [chain(names.route, names.first, names.second), chain(names.solo, names.first)],
            }
        )
        return names

    yield make
    primary.reset()
    fallback.reset()

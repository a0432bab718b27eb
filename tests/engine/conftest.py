"""Engine tests run on a virtual-time event loop: sleeps and timeouts cost no real time."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping

import pytest

from providers.engine import Engine, FakeClock
from tests.conftest import Clock


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Every engine test runs on a virtual-time loop; the suite's `clock` fixture is its clock."""
    return {"virtual_time": lambda: Clock().new_loop()}


@pytest.fixture
def rng() -> random.Random:
    return random.Random(1234)


@pytest.fixture
def events() -> list[object]:
    return []


@pytest.fixture
def engine(clock: FakeClock, rng: random.Random, events: list[object]) -> Engine:
    engine = Engine(clock=clock, rng=rng)
    engine.subscribe(events.append)
    return engine


@pytest.fixture
def make_breaker(clock: FakeClock, rng: random.Random, events: list[object]):  # type: ignore[no-untyped-def]
    """Build a CircuitBreaker on a fresh local store; its events land in `events`."""
    from providers.engine import BreakerPolicy
    from providers.engine.breaker import CircuitBreaker
    from providers.engine.events import Emitter
    from providers.engine.store import LocalStateStore

    def make(policy: BreakerPolicy | None = None, key: str = "p") -> CircuitBreaker:
        emitter = Emitter()
        emitter.subscribe(events.append)
        return CircuitBreaker(key, (policy or BreakerPolicy()).resolve(30.0), LocalStateStore(), clock, rng, emitter)

    return make

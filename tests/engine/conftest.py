"""Engine tests run on a virtual-time event loop: sleeps and timeouts cost no real time."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping

import pytest

from providers.engine import Engine, FakeClock, VirtualTimeLoop


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    return {"virtual_time": lambda: FakeClock().new_loop()}


@pytest.fixture
async def clock() -> FakeClock:
    """The running loop's clock: advancing it is what virtual time does."""
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeLoop)
    return loop.clock


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
    from providers.engine import BreakerPolicy, CircuitBreaker, LocalStateStore
    from providers.engine.events import Emitter

    def make(policy: BreakerPolicy | None = None, key: str = "p") -> CircuitBreaker:
        emitter = Emitter()
        emitter.subscribe(events.append)
        return CircuitBreaker(key, (policy or BreakerPolicy()).resolve(30.0), LocalStateStore(),
                              clock, rng, emitter)

    return make

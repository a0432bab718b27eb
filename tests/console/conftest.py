"""Console tests: a configuration of simulated providers on the test's runtime (async views
use it), signing in, and htmx request headers. `users`, `configure` and `rt` are the suite's
(tests/conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest

from providers.runtime import Runtime

SIMULATED = {
    "providers": [
        {
            "name": "sim-a",
            "kind": "simulated",
            "models": ["sim-small"],
            "priority": 1,
            "capabilities": ["chat"],
            "options": {"latency_ms": 5, "seed": 1},
        },
        {
            "name": "sim-b",
            "kind": "simulated",
            "models": ["sim-embed"],
            "priority": 2,
            "capabilities": ["embeddings"],
            "options": {"latency_ms": 5, "seed": 2},
        },
    ],
}


async def settle(rt: Runtime) -> None:
    """Let the engine's event sink write what an engine call emitted (before the test reads or
    writes the database itself: the in-memory test database takes one writer at a time)."""
    sink = getattr(rt, "event_sink", None)
    if sink is not None:
        await sink.written()


def htmx(target: str | None = None) -> dict[str, str]:
    """Headers of an htmx request (HX-Request, and HX-Target when it targets an element)."""
    headers = {"HX-Request": "true"}
    if target:
        headers["HX-Target"] = target
    return headers


@pytest.fixture
async def simulated(configure, rt):
    await configure(SIMULATED)
    await rt.refresh(force=True)
    return rt


@pytest.fixture
def login(async_client):  # type: ignore[no-untyped-def]
    async def as_user(user: Any):  # type: ignore[no-untyped-def]
        await async_client.aforce_login(user)
        return async_client

    return as_user

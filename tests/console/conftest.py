"""Console tests: users at each level, a configuration of simulated providers, the runtime
of the test's event loop (async views use it), and htmx request headers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from health.access import OPERATORS
from providers.config import apply_config
from providers.runtime import Runtime, install_runtime

SIMULATED = {
    "providers": [
        {"name": "sim-a", "kind": "simulated", "models": ["sim-small"], "priority": 1, "capabilities": ["chat"],
         "options": {"latency_ms": 5, "seed": 1}},
        {"name": "sim-b", "kind": "simulated", "models": ["sim-embed"], "priority": 2,
         "capabilities": ["embeddings"], "options": {"latency_ms": 5, "seed": 2}},
    ],
}


async def settle(rt: Runtime) -> None:
    """Let the engine's event sink write what an engine call emitted (before the test reads or
    writes the database itself: the in-memory test database takes one writer at a time)."""
    sink = getattr(rt, "event_sink", None)
    await asyncio.sleep(0)
    if sink is not None and sink._task is not None:
        await sink._task


def htmx(target: str | None = None) -> dict[str, str]:
    """Headers of an htmx request (HX-Request, and HX-Target when it targets an element)."""
    headers = {"HX-Request": "true"}
    if target:
        headers["HX-Target"] = target
    return headers


@pytest.fixture
def users(django_user_model) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    from django.contrib.auth.models import Group

    operators, _ = Group.objects.get_or_create(name=OPERATORS)
    # No passwords: the tests sign in with force_login, and hashing one costs half a second.
    made = {
        "plain": django_user_model.objects.create_user("plain"),
        "staff": django_user_model.objects.create_user("viewer", is_staff=True),
        "operator": django_user_model.objects.create_user("oper", is_staff=True),
        "admin": django_user_model.objects.create_superuser("boss", "boss@example.com"),
    }
    made["operator"].groups.add(operators)
    return made


@pytest.fixture
def configure():
    return sync_to_async(lambda doc: apply_config(doc, actor="test", prune=True))


@pytest.fixture
async def rt():
    runtime = install_runtime(Runtime())
    yield runtime
    await runtime.close()


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

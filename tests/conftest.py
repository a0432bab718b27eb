"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os

# Each test's event loop has its own executor threads; a connection they keep open would
# outlive the test (and stop PostgreSQL from dropping the test database), so tests reconnect.
os.environ.setdefault("CONN_MAX_AGE", "0")
# With REDIS_URL (CI's second pass), the gateway's shared state, limits and cache wait this long
# for Redis: on a machine with both cores busy, the production default (50 ms) would make Redis
# look away and every worker fall back to local state. Tests of a slow Redis set their own.
os.environ.setdefault("REDIS_OP_TIMEOUT_S", "2")

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from cryptography.fernet import Fernet

from providers.engine import FakeClock
from providers.engine.clock import VirtualTimeLoop

TEST_KEY = Fernet.generate_key().decode()

# A test's own HTTP client waits for a real server as long as the test may run (pytest-timeout),
# not httpx's 5 s default: on a busy machine a server's first answer (an OpenAPI document built
# on first use, a cold import in a fresh worker) can take longer, and a slow machine must make a
# slow run, not a red one. httpx binds that default object into its signatures, so it is changed
# in place; the application's own clients always pass their timeouts (adapters/client.py,
# health/alerts.py, health/forwarding.py) and are not affected.
_DEFAULT_TIMEOUT = httpx._config.DEFAULT_TIMEOUT_CONFIG
_DEFAULT_TIMEOUT.connect = _DEFAULT_TIMEOUT.read = _DEFAULT_TIMEOUT.write = _DEFAULT_TIMEOUT.pool = 60.0


@pytest.fixture(autouse=True)
def _encryption_key(settings: pytest.FixtureRequest) -> Iterator[None]:
    """Every test encrypts with a known key, whatever .env holds."""
    from providers import crypto

    settings.ENCRYPTION_KEYS = [TEST_KEY]
    crypto.reset_keys()
    yield
    crypto.reset_keys()


class Clock(FakeClock):
    """The suite's one fake clock: the engine's `FakeClock` (`monotonic`, `time`, `advance`)
    that, called, is also a wall clock for the monitor and its lease (`Monitor(now=clock)`)."""

    def __call__(self) -> float:
        return self.time()


@pytest.fixture
async def clock() -> Clock:
    """The test's fake clock. On the engine tests' virtual-time loop it is that loop's clock,
    so waiting moves it; elsewhere it moves only with `advance`, from the real wall time
    (rows the monitor writes are compared with the database's "now")."""
    loop = asyncio.get_running_loop()
    if isinstance(loop, VirtualTimeLoop):
        assert isinstance(loop.clock, Clock)
        return loop.clock
    return Clock(wall=time.time())


@pytest.fixture
def configure() -> Callable[[dict[str, Any]], Awaitable[Any]]:
    """`await configure(document)`: apply a configuration as `PUT /api/config` would, pruning
    what it does not name; returns what `apply_config` returns."""
    from providers.config import apply_config

    return sync_to_async(lambda doc: apply_config(doc, actor="test", prune=True))


@pytest.fixture
async def rt() -> AsyncIterator[Any]:
    """A fresh runtime installed as this process's own (views, the gateway and the monitor
    use it), on the real clock; closed after the test."""
    from providers.runtime import Runtime, install_runtime

    runtime = install_runtime(Runtime())
    yield runtime
    await runtime.close()


@pytest.fixture
def users(django_user_model) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """One user at each level: signed in only (`plain`), staff (sees), operator (acts),
    superuser (`admin`, configures)."""
    from django.contrib.auth.models import Group

    from health.access import OPERATORS

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
def admin_user(django_user_model):  # type: ignore[no-untyped-def]
    return django_user_model.objects.create_superuser("root", "root@example.com", "pw-for-tests-only")


@pytest.fixture
def admin_client_logged(client, admin_user):  # type: ignore[no-untyped-def]
    client.force_login(admin_user)
    return client


@pytest.fixture
def make_key():
    @sync_to_async
    def make(scopes: list[str], **fields: object) -> str:
        import secrets

        from providers.models import ApiKey

        return ApiKey.issue(f"key-{secrets.token_hex(3)}", scopes, **fields)[1]

    return make


@pytest.fixture
async def gateway() -> AsyncIterator[httpx.AsyncClient]:
    from project.asgi import application

    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as client:
        yield client
    from analytics.recorder import flush_all

    await flush_all()


@pytest.fixture
async def key(make_key) -> str:
    return await make_key(["gateway", "read", "admin"])


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


_tests_since_collect = 0


@pytest.fixture(autouse=True)
def _collect_dead_threads_connections():  # type: ignore[no-untyped-def]
    """Each async test's event loop has executor threads; when a loop closes, a connection one
    of its threads opened is left in a reference cycle, and stays open on PostgreSQL until a
    full garbage collection, which a long run seldom makes: the idle sessions pile up towards
    max_connections ("too many clients already"). A full collection every 25 tests ends them."""
    global _tests_since_collect
    yield
    _tests_since_collect += 1
    if _tests_since_collect >= 25:
        import gc

        _tests_since_collect = 0
        gc.collect()


@pytest.fixture(scope="session", autouse=True)
def _end_stray_database_sessions(django_db_setup, django_db_blocker):  # type: ignore[no-untyped-def]
    """Threads of async tests keep connections open; on PostgreSQL they would stop the test
    database from being dropped at the end, so end them first."""
    yield
    with django_db_blocker.unblock():
        from django.db import connection

        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )


@pytest.fixture(autouse=True)
def _fresh_shared_state(settings):  # type: ignore[no-untyped-def]
    """With REDIS_URL (the scale-out run), every test starts from empty shared state, as it
    does from a fresh in-process engine otherwise. CI points REDIS_URL at a database of its own."""
    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        try:
            client.flushdb()
        finally:
            client.close()
    yield

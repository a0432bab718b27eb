"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os

# Each test's event loop has its own executor threads; a connection they keep open would
# outlive the test (and stop PostgreSQL from dropping the test database), so tests reconnect.
os.environ.setdefault("CONN_MAX_AGE", "0")

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from asgiref.sync import sync_to_async
from cryptography.fernet import Fernet

TEST_KEY = Fernet.generate_key().decode()


@pytest.fixture(autouse=True)
def _encryption_key(settings: pytest.FixtureRequest) -> Iterator[None]:
    """Every test encrypts with a known key, whatever .env holds."""
    from providers import crypto

    settings.ENCRYPTION_KEYS = [TEST_KEY]
    crypto.reset_keys()
    yield
    crypto.reset_keys()


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


@pytest.fixture(scope="session", autouse=True)
def _end_stray_database_sessions(django_db_setup, django_db_blocker):  # type: ignore[no-untyped-def]
    """Threads of async tests keep connections open; on PostgreSQL they would stop the test
    database from being dropped at the end, so end them first."""
    yield
    with django_db_blocker.unblock():
        from django.db import connection

        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                               "WHERE datname = current_database() AND pid <> pg_backend_pid()")


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

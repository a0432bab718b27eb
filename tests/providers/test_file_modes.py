"""Secrets at rest and at setup (issue 14 §7): the SQLite database (encrypted secrets, key
hashes, the request log) and `.env` are readable by their owner only, however the process's
umask is set; an ADMIN_PASSWORD that would be silently ignored is an error instead."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from project import envfile


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The common default: new files readable by everyone."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.fixture
def own_database(django_db_blocker) -> Iterator[None]:
    """A connection of our own to a file of our own, outside the test database."""
    with django_db_blocker.unblock():
        yield


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def connect_to(path: Path) -> None:
    """A new connection, as any process makes its first one, with the project's WAL setting."""
    from django.db.utils import ConnectionHandler

    handler = ConnectionHandler(
        {
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(path),
                "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL;"},
            }
        }
    )
    connection = handler["default"]
    try:
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE IF NOT EXISTS t (x)")
            cursor.execute("INSERT INTO t VALUES (1)")
    finally:
        connection.close()


def test_a_new_sqlite_database_and_its_wal_files_are_readable_by_the_owner_only(tmp_path, loose_umask, own_database):
    import providers.models  # noqa: F401  (connects the receiver, as every process does at start)

    database = tmp_path / "db.sqlite3"
    connect_to(database)
    assert mode(database) == 0o600
    connect_to(database)  # the WAL and shared-memory files now exist: created with the file's mode
    companions = [p for p in tmp_path.iterdir() if p.name.startswith("db.sqlite3-")]
    assert all(mode(p) & 0o077 == 0 for p in companions), {p.name: oct(mode(p)) for p in companions}


def test_an_existing_world_readable_database_is_tightened_on_the_next_connection(tmp_path, loose_umask, own_database):
    import providers.models  # noqa: F401

    database = tmp_path / "db.sqlite3"
    database.touch(mode=0o644)
    database.chmod(0o644)
    connect_to(database)
    assert mode(database) == 0o600


def test_env_is_readable_by_the_owner_only_whether_new_or_already_there(tmp_path, loose_umask, capsys):
    target = tmp_path / ".env"
    envfile.main(str(target))
    assert mode(target) == 0o600 and "SECRET_KEY=" in target.read_text()
    target.write_text("SECRET_KEY=mine\n")
    target.chmod(0o644)
    envfile.main(str(target))
    assert mode(target) == 0o600 and target.read_text() == "SECRET_KEY=mine\n"
    assert "owner only" in capsys.readouterr().out


@pytest.mark.django_db
def test_admin_password_without_a_username_is_an_error_not_ignored(monkeypatch, django_user_model):
    monkeypatch.delenv("ADMIN_USERNAME", raising=False)
    monkeypatch.setenv("ADMIN_PASSWORD", "chosen-password-123")
    with pytest.raises(CommandError, match="ADMIN_PASSWORD is set but ADMIN_USERNAME is not"):
        call_command("ensure_admin", stdout=io.StringIO())
    assert not django_user_model.objects.exists()
    monkeypatch.setenv("ADMIN_USERNAME", "ops")  # as the message says
    call_command("ensure_admin", stdout=io.StringIO())
    assert django_user_model.objects.get(username="ops").check_password("chosen-password-123")

"""Database work from async code, outside any request; the SQLite file's permissions.

`sync_to_async(thread_sensitive=False)` runs the function in an executor thread. Those
threads never see Django's request signals, so their connections would never be closed or
health-checked; `db_call` closes obsolete connections after each call, as a request would.

`restrict_sqlite_files` (a `connection_created` receiver, connected in providers/models.py,
which every process loads before it connects) keeps a SQLite database and its -wal/-shm files
readable by their owner only: they hold the encrypted secrets, every API key's hash and the
request log.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections

log = logging.getLogger(__name__)

T = TypeVar("T")


def _closing(fn: Callable[..., T]) -> Callable[..., T]:
    def run(*args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        finally:
            close_old_connections()

    return run


async def db_call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await sync_to_async(_closing(fn), thread_sensitive=False)(*args, **kwargs)


def restrict_sqlite_files(sender: Any, connection: Any, **kwargs: Any) -> None:
    """On each new connection to a SQLite file: take away group and other permissions from the
    file and its -wal/-shm companions (SQLite creates those with the main file's mode, so once
    it is 0600 they are too)."""
    if connection.vendor != "sqlite":
        return
    name = str(connection.settings_dict.get("NAME") or "")
    if not name or name == ":memory:" or name.startswith("file:"):
        return
    for path in (name, f"{name}-wal", f"{name}-shm"):
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
            if mode & 0o077:
                os.chmod(path, mode & 0o700)
        except FileNotFoundError:
            continue
        except OSError as exc:  # not ours to change: say so, keep serving
            log.warning("could not make %s readable by its owner only: %s", path, exc)

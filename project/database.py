"""Database work from async code, outside any request.

`sync_to_async(thread_sensitive=False)` runs the function in an executor thread. Those
threads never see Django's request signals, so their connections would never be closed or
health-checked; `db_call` closes obsolete connections after each call, as a request would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections

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

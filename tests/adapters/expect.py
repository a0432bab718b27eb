"""What adapter tests expect of a call that must fail."""

from __future__ import annotations

import pytest


async def raised(awaitable) -> BaseException:
    """The exception `awaitable` raises (the test fails if it raises none)."""
    with pytest.raises(Exception) as info:
        await awaitable
    return info.value

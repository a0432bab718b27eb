"""Fixtures every adapter test module shares; each module defines its own `fake` server."""

from __future__ import annotations

import httpx
import pytest


@pytest.fixture
async def client():
    async with httpx.AsyncClient() as http:
        yield http


@pytest.fixture(autouse=True)
def _fresh(request):
    """A module's fake starts each test with no faults and no recorded requests."""
    if "fake" in request.fixturenames:
        request.getfixturevalue("fake").reset()

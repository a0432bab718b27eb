"""The shared client keeps no cookies: what one upstream answer sets never rides along on a
later request (another caller's, to any provider)."""

from __future__ import annotations

import pytest

from providers.adapters.client import build_client
from tests.fakes.openai import FakeOpenAI


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_a_cookie_an_upstream_sets_is_never_sent_back(transport, settings):
    settings.PROVIDER_URL_ALLOW = ["127.0.0.1"]
    with FakeOpenAI() as upstream:
        upstream.fault(times=1, path="/v1/models", headers={"Set-Cookie": "session=abc123; Path=/"})
        client = build_client(transport)
        try:
            first = await client.get(upstream.url + "/v1/models")
            assert first.headers.get("set-cookie", "").startswith("session=abc123")  # it was offered
            await client.get(upstream.url + "/v1/models")
        finally:
            await client.aclose()
        later = upstream.requests_to("/v1/models")[-1]
        assert "cookie" not in {name.lower() for name in later.headers}
        assert not client.cookies

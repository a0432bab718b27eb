"""Gateway tests drive the real ASGI application (path router + GatewayHandler) in-process
with httpx, against fake providers on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.openai import API_KEY as OPENAI_KEY
from tests.fakes.openai import FakeOpenAI


@pytest.fixture
def upstream_a() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def upstream_b() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def upstream_anthropic() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as server:
        yield server


def provider(name: str, url: str, *, kind: str = "openai", key: str = OPENAI_KEY, **extra: object) -> dict:
    entry = {
        "name": name,
        "kind": kind,
        "base_url": url,
        "api_key": key,
        "timeout_s": 2,
        "retry": {"max_attempts": 2, "base_delay_s": 0.01, "max_delay_s": 0.05},
    }
    entry.update(extra)
    return entry


@pytest.fixture
def two_openai(configure, upstream_a, upstream_b):
    async def setup(**route: object) -> None:
        await configure(
            {
                "providers": [provider("up-a", upstream_a.url + "/v1"), provider("up-b", upstream_b.url + "/v1")],
                "routes": [
                    {
                        "name": "chain",
                        "capability": "chat",
                        "targets": [
                            {"provider": "up-a", "model": "gpt-4o-mini"},
                            {"provider": "up-b", "model": "gpt-4o"},
                        ],
                        **route,
                    }
                ],
            }
        )

    return setup


from tests.conftest import auth  # noqa: E402,F401  (re-exported for the tests here)

CHAT = {"model": "chain", "messages": [{"role": "user", "content": "hello there"}]}

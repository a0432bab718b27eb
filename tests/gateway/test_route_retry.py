"""A route's own `retry`, end to end: configured like any route, served through the ASGI app
against fake OpenAI servers, with the backoff waited on the engine's fake clock."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from providers.engine import Engine
from providers.runtime import Runtime, install_runtime
from tests.conftest import Clock

from .conftest import CHAT, auth, provider

pytestmark = pytest.mark.django_db(transaction=True)

COMPLETIONS = "/v1/chat/completions"


@pytest.fixture
async def clock() -> Clock:
    """The engine's fake clock, started at the event loop's time: an attempt's timer (on the
    loop) and its deadline (on this clock) agree, and a backoff moves this clock at once."""
    return Clock(start=asyncio.get_running_loop().time(), wall=time.time())


@pytest.fixture
async def fake_time_runtime(clock):
    rt = install_runtime(Runtime(engine=Engine(clock=clock, rng=random.Random(5))))
    yield rt
    await rt.close()


@pytest.fixture
def routes(configure, upstream_a, upstream_b, fake_time_runtime):
    async def setup(provider_attempts: int = 2) -> None:
        retry = {"max_attempts": provider_attempts, "base_delay_s": 0.01, "max_delay_s": 0.05}
        chain = [{"provider": "up-a", "model": "gpt-4o-mini"}, {"provider": "up-b", "model": "gpt-4o"}]
        await configure(
            {
                "providers": [
                    provider("up-a", upstream_a.url + "/v1", retry=retry),
                    provider("up-b", upstream_b.url + "/v1", retry=retry),
                ],
                "routes": [
                    {
                        "name": "patient",
                        "max_attempts": 5,
                        "deadline_s": 300,
                        "retry": {"max_attempts": 3, "base_delay_s": 4, "max_delay_s": 30},
                        "targets": chain,
                    },
                    {"name": "plain", "max_attempts": 5, "targets": chain},
                    {"name": "hasty", "max_attempts": 5, "retry": {"max_attempts": 1}, "targets": chain},
                ],
            }
        )

    return setup


def sent(upstream) -> int:  # type: ignore[no-untyped-def]
    return len(upstream.requests_to("/v1/chat/completions"))


async def test_three_attempts_on_the_route_serve_from_the_first_target_after_two_503s(
    gateway, routes, key, upstream_a, upstream_b, clock
):
    await routes()
    upstream_a.fault(status=503, times=2)
    before = clock.monotonic()

    response = await gateway.post(COMPLETIONS, json={**CHAT, "model": "patient"}, headers=auth(key))

    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-provider"] == "up-a" and response.headers["x-gateway-attempts"] == "3"
    assert (sent(upstream_a), sent(upstream_b)) == (3, 0)
    # The route's backoff was waited (on the fake clock): its bounds, not the providers' 0.05 s.
    waited = clock.monotonic() - before
    assert 0.05 < waited <= 4 + 8, waited


async def test_the_same_providers_on_a_route_without_retry_fail_over_as_before(
    gateway, routes, key, upstream_a, upstream_b
):
    await routes()
    upstream_a.fault(status=503, times=2)

    response = await gateway.post(COMPLETIONS, json={**CHAT, "model": "plain"}, headers=auth(key))

    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-provider"] == "up-b" and response.headers["x-gateway-attempts"] == "3"
    assert (sent(upstream_a), sent(upstream_b)) == (2, 1)


async def test_one_attempt_on_the_route_fails_over_at_once_over_providers_set_to_three(
    gateway, routes, key, upstream_a, upstream_b, clock
):
    await routes(provider_attempts=3)
    upstream_a.fault(status=503, times=2)
    before = clock.monotonic()

    response = await gateway.post(COMPLETIONS, json={**CHAT, "model": "hasty"}, headers=auth(key))

    assert response.status_code == 200
    assert response.headers["x-gateway-provider"] == "up-b" and response.headers["x-gateway-attempts"] == "2"
    assert (sent(upstream_a), sent(upstream_b)) == (1, 1)
    assert clock.monotonic() == before  # nothing waited: no retry

    # The providers' own three attempts still hold on a route that does not override them.
    upstream_a.reset()
    upstream_b.reset()
    upstream_a.fault(status=503, times=2)
    plain = await gateway.post(COMPLETIONS, json={**CHAT, "model": "plain"}, headers=auth(key))
    assert plain.headers["x-gateway-provider"] == "up-a" and (sent(upstream_a), sent(upstream_b)) == (3, 0)

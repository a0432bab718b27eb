"""An API key past 80 % and 100 % of its budget is told to the alert channels, once per
threshold and period, end to end: the key's spend settles from real answers."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async

from health.models import AlertChannel
from providers.models import ApiKey, Provider
from tests.conftest import auth
from tests.fakes.openai import FakeOpenAI
from tests.fakes.webhook import FakeWebhook
from tests.gateway.conftest import CHAT, provider

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def upstream_a():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def receiver():
    with FakeWebhook() as server:
        yield server


@sync_to_async
def make_channel(name: str, target: str, *, providers: tuple[str, ...] = (), **fields: object) -> None:
    channel = AlertChannel(name=name, kind="webhook", **fields)
    channel.set_target(target)
    channel.save()
    if providers:
        channel.providers.set(Provider.objects.filter(name__in=providers))


async def test_a_key_passing_80_and_100_percent_of_its_budget_alerts_the_channels_once_each(
    gateway, configure, upstream_a, receiver, settings
):
    settings.ALERT_RETRY_BASE_S = 0.01
    settings.KEY_SPEND_FLUSH_INTERVAL_S = 0.05
    await configure(
        {
            "providers": [
                provider(
                    "up-a",
                    upstream_a.url + "/v1",
                    models=["gpt-4o-mini"],
                    prices={"gpt-4o-mini": {"input_per_mtok": 1000, "output_per_mtok": 1000}},
                )
            ]
        }
    )
    await make_channel("ops", receiver.url + "/all")
    await make_channel("team-a", receiver.url + "/scoped", providers=("up-a",))  # a provider's own channel
    _, key = await sync_to_async(ApiKey.issue)("budgeted", ["gateway"], budget="0.05", budget_period="day")

    answers = []
    for _ in range(40):
        answer = await gateway.post(
            "/v1/chat/completions", json={**CHAT, "model": "up-a/gpt-4o-mini"}, headers=auth(key)
        )
        answers.append(answer.status_code)
        if answer.status_code != 200:
            break
    assert answers[-1] == 429  # the budget ran out: refused before any call

    async def budget_notices() -> list[str]:
        return [p["title"] for p in receiver.payloads("/all") if p.get("event") == "budget"]

    for _ in range(200):  # the notices go out from the spend's database thread
        if len(await budget_notices()) >= 2:
            break
        await asyncio.sleep(0.05)
    titles = await budget_notices()
    assert len(titles) == 2, titles
    assert "80%" in titles[0] and "100%" in titles[1] and "budgeted" in titles[0]
    assert not [p for p in receiver.payloads("/scoped") if p.get("event") == "budget"]

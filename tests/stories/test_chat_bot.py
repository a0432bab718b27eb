"""Jakey, the chat bot (examples/chat-bot.yaml), under uvicorn: the chat route's strategy switched
while the server runs (through `PUT /api/config` and through `import_config` of an edited file,
which the running gateway picks up); text and pictures on Pollinations failing over to
OpenRouter; a provider disabled and enabled (console and API); usage and failover statistics,
and a provider's statistics reset."""

from __future__ import annotations

import copy
import itertools
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
import yaml
from openai.types.chat import ChatCompletionMessageParam

from tests.fakes.openai import API_KEY as OPENROUTER_KEY
from tests.fakes.openai import FakeOpenAI
from tests.fakes.pollinations import FakePollinations

from .stage import Stage, Template, open_stage, route_entry

pytestmark = pytest.mark.e2e

SLOW_S = 0.03  # Pollinations' free tier, slower than OpenRouter here
HI: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hi bot"}]


@pytest.fixture(scope="module")
def bot(template: Template, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    with ExitStack() as stack:
        fakes = {
            "pollinations-text": stack.enter_context(FakeOpenAI(api_key=None, models=None)),
            "pollinations-image": stack.enter_context(FakePollinations()),
            "openrouter": stack.enter_context(FakeOpenAI(models=None)),
        }
        stage = open_stage(
            template,
            tmp_path_factory.mktemp("chat-bot"),
            "chat-bot",
            fakes,
            paths={"pollinations-text": "/v1", "openrouter": "/v1"},
            env={"OPENROUTER_API_KEY": OPENROUTER_KEY},
        )
        stack.callback(stage.stop)
        yield stage


@pytest.fixture(autouse=True)
def calm(bot: Stage) -> Iterator[None]:
    yield
    bot.calm()


def chat(stage: Stage, n: int = 1) -> list[str]:
    """Who served each of `n` chats, in order (the official SDK; X-Gateway-Provider)."""
    client = stage.openai()
    return [
        client.chat.completions.with_raw_response.create(model="chat", messages=HI).headers["x-gateway-provider"]
        for _ in range(n)
    ]


def test_the_strategy_switched_at_run_time_changes_who_serves(bot):
    # Pollinations answers everything slowly, its health checks too: only its speed differs.
    bot.fakes["pollinations-text"].fault(path="/v1", delay_s=SLOW_S)
    http = bot.http()

    def put(strategy: str) -> None:
        config = http.get("/api/config").json()
        route_entry(config, "chat")["strategy"] = strategy
        assert http.put("/api/config", json=config).status_code == 200

    def imported(strategy: str) -> None:
        """The operator's other way: edit the file, import it beside the running server."""
        config = copy.deepcopy(bot.config)
        route_entry(config, "chat")["strategy"] = strategy
        edited = bot.tmp / f"chat-bot-{strategy}.yaml"
        edited.write_text(yaml.safe_dump(config, sort_keys=False))
        assert "updated 1" in bot.manage("import_config", str(edited))

    # priority (the file's): the first target, every time
    assert chat(bot, 6) == ["pollinations-text"] * 6

    # round robin: the targets take turns, once the gateway has the change
    put("round_robin")
    bot.until(lambda: len(set(chat(bot, 2))) == 2, "round robin picked up")
    turns = chat(bot, 6)
    assert Counter(turns) == {"pollinations-text": 3, "openrouter": 3}
    assert all(a != b for a, b in itertools.pairwise(turns))

    # least latency ("best performance"): the faster OpenRouter, from an edited file
    imported("least_latency")
    bot.until(lambda: chat(bot, 3) == ["openrouter"] * 3, "least latency picked up")
    assert chat(bot, 6) == ["openrouter"] * 6

    # weighted: the file's weights, 3 for Pollinations and 1 for OpenRouter
    put("weighted")
    bot.until(lambda: "pollinations-text" in chat(bot, 4), "weighted picked up")
    weighted = Counter(chat(bot, 40))
    assert 18 <= weighted["pollinations-text"] <= 39 and weighted["openrouter"] >= 1  # 30 expected

    # random: both, about evenly, in no fixed turn (from an edited file, after least latency)
    put("least_latency")
    bot.until(lambda: chat(bot, 3) == ["openrouter"] * 3, "least latency picked up again")
    imported("random")
    bot.until(lambda: "pollinations-text" in chat(bot, 4), "random picked up")
    drawn = chat(bot, 40)
    assert 8 <= Counter(drawn)["pollinations-text"] <= 32  # 20 expected
    assert any(a == b for a, b in itertools.pairwise(drawn))  # not round robin
    put("priority")
    bot.until(lambda: chat(bot, 3) == ["pollinations-text"] * 3, "priority picked up")


def test_chat_and_pictures_fail_over_from_pollinations_to_openrouter(bot):
    client = bot.openai()
    picture = {"model": "pictures", "prompt": "a cat in a spacesuit", "size": "256x256", "response_format": "b64_json"}
    assert chat(bot) == ["pollinations-text"]
    assert client.images.with_raw_response.generate(**picture).headers["x-gateway-provider"] == "pollinations-image"

    bot.fakes["pollinations-text"].fault(path="/v1/chat/completions", status=503)
    bot.fakes["pollinations-image"].fault(path="/prompt/", status=500)
    answer = client.chat.completions.with_raw_response.create(model="chat", messages=HI)
    drawn = client.images.with_raw_response.generate(**picture)

    assert (answer.headers["x-gateway-provider"], answer.headers["x-gateway-model"]) == (
        "openrouter",
        "meta-llama/llama-3.3-70b-instruct",
    )
    assert answer.headers["x-gateway-attempts"] == "2"  # the file: no retry on the free service
    sent = bot.fakes["openrouter"].requests_to("/v1/chat/completions")[-1]
    assert sent.headers["Authorization"] == f"Bearer {OPENROUTER_KEY}"
    assert "Authorization" not in bot.fakes["pollinations-text"].requests_to("/v1/chat/completions")[-1].headers
    assert (drawn.headers["x-gateway-provider"], drawn.headers["x-gateway-model"]) == (
        "openrouter",
        "black-forest-labs/flux-1.1-pro",
    )


def test_a_disabled_provider_is_routed_around_until_enabled(bot):
    boss = bot.console("operator")
    with bot.events() as events:
        assert boss.post("/providers/pollinations-text/disable").status_code == 303
        events.wait("provider.disabled", "pollinations-text")
        around = bot.openai().chat.completions.with_raw_response.create(model="chat", messages=HI)
        assert around.headers["x-gateway-provider"] == "openrouter"
        assert around.headers["x-gateway-attempts"] == "1"  # the disabled provider costs no call

        assert bot.post("/api/providers/pollinations-text/enable").status_code == 200
        events.wait("provider.enabled", "pollinations-text")
    assert chat(bot, 2) == ["pollinations-text"] * 2


def test_usage_and_failovers_are_counted_and_a_providers_statistics_reset(bot):
    client = bot.openai()
    marker = client.chat.completions.with_raw_response.create(model="chat", messages=HI)
    bot.logged(marker.headers["x-request-id"])  # written in order: every earlier call is counted
    before = bot.analytics()

    chat(bot, 3)
    bot.fakes["pollinations-text"].fault(path="/v1/chat/completions", status=503, times=2)
    chat(bot, 2)  # both fail over
    bot.fakes["pollinations-image"].fault(path="/prompt/", status=500, times=1)
    picture = {"model": "pictures", "prompt": "a cat", "size": "256x256", "response_format": "b64_json"}
    client.images.generate(**picture)
    last = client.images.with_raw_response.generate(**picture)
    bot.logged(last.headers["x-request-id"])
    after = bot.analytics()

    def grew(part: dict, was: dict, *fields: str) -> tuple:
        return tuple(part[f] - was[f] for f in fields)

    chat_route, was = after["routes"]["chat"], before["routes"]["chat"]
    assert grew(chat_route, was, "requests", "successes", "failovers") == (5, 5, 2)
    pictures, was_pictures = after["routes"]["pictures"], before["routes"]["pictures"]
    assert grew(pictures, was_pictures, "requests", "failovers", "images") == (2, 1, 2)
    text, was_text = after["providers"]["pollinations-text"], before["providers"]["pollinations-text"]
    assert grew(text, was_text, "requests", "successes", "failures", "failovers") == (5, 3, 2, 2)
    openrouter, was_openrouter = after["providers"]["openrouter"], before["providers"]["openrouter"]
    assert grew(openrouter, was_openrouter, "requests", "served") == (3, 3)
    assert openrouter["cost"] > was_openrouter["cost"]  # the file's prices; Pollinations is free
    assert text["cost"] == was_text["cost"] == 0

    with bot.events() as events:
        reset = bot.post("/api/health/pollinations-text/reset")
        assert reset.status_code == 200, reset.text
        assert events.wait("health.reset", "pollinations-text").data["actor"]

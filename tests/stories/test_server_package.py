"""noa, the server package (examples/server-package.yaml), under daphne: the chains `default`
(Anthropic → llama.cpp → OpenAI), `high-priority` (hedged), `low-cost` and `local-first` serve
as configured, to the OpenAI SDK and to the Anthropic SDK (Messages); each chain's own retry
policy; Anthropic going down fails over at once and opens its breaker, which the events
stream, the event history and /api/breakers show; a request every target failed is an event
too; the operator closes the breaker and Anthropic serves again."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import openai
import pytest

from tests.fakes.anthropic import API_KEY as ANTHROPIC_KEY
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.openai import API_KEY as OPENAI_KEY
from tests.fakes.openai import FakeOpenAI

from .stage import Stage, Template, open_stage

pytestmark = pytest.mark.e2e

CLAUDE, QWEN = "claude-haiku-4-5-20251001", "qwen2.5-0.5b-instruct"
PING = [{"role": "user", "content": "ping"}]


@pytest.fixture(scope="module")
def package(template: Template, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    with ExitStack() as stack:
        fakes = {
            "anthropic": stack.enter_context(FakeAnthropic()),
            "llama-cpp": stack.enter_context(FakeOpenAI(api_key=None, models=None)),
            "openai": stack.enter_context(FakeOpenAI()),
        }
        stage = open_stage(
            template,
            tmp_path_factory.mktemp("server-package"),
            "server-package",
            fakes,
            paths={"llama-cpp": "/v1", "openai": "/v1"},
            server_kind="daphne",
            env={"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "OPENAI_API_KEY": OPENAI_KEY},
        )
        stack.callback(stage.stop)
        stack.callback(lambda: stage.fakes["anthropic"].stop())  # the one restarted below
        yield stage


@pytest.fixture(autouse=True)
def calm(package: Stage) -> Iterator[None]:
    yield
    package.calm()


def execute(stage: Stage, route: str) -> dict:
    answer = stage.execute(capability="chat", route=route, input="ping")
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_four_chains_serve_as_configured_to_either_sdk(package):
    client = package.openai()
    served = {}
    for chain in ("default", "high-priority", "low-cost", "local-first"):
        answer = client.chat.completions.with_raw_response.create(model=chain, messages=PING)
        served[chain] = (answer.headers["x-gateway-provider"], answer.headers["x-gateway-model"])
    assert served == {
        "default": ("anthropic", CLAUDE),
        "high-priority": ("openai", "gpt-4o"),
        "low-cost": ("llama-cpp", QWEN),  # free: its price in the file is 0
        "local-first": ("llama-cpp", QWEN),
    }

    # The product's Anthropic-side code speaks Messages: same chains, same headers.
    message = package.anthropic().messages.with_raw_response.create(
        model="default", max_tokens=64, messages=[{"role": "user", "content": "ping"}]
    )
    assert message.headers["x-gateway-provider"] == "anthropic"
    assert message.parse().content[0].type == "text"

    # Without llama.cpp, low-cost takes the cheaper hosted model and local-first the next in line.
    package.fakes["llama-cpp"].fault(path="/v1/chat/completions", status=503)
    assert execute(package, "low-cost")["model"] == "gpt-4o-mini"
    assert execute(package, "local-first")["provider"] == "anthropic"


def test_each_chain_has_its_own_retry_policy(package):
    # low-cost and local-first give a busy llama.cpp a second try; default goes on at once.
    package.fakes["llama-cpp"].fault(path="/v1/chat/completions", status=503, times=1)
    second_try = execute(package, "local-first")
    assert [(a["provider"], a["status"]) for a in second_try["attempts"]] == [("llama-cpp", 503), ("llama-cpp", 200)]
    assert (second_try["retries"], second_try["failovers"]) == (1, 0)

    package.fakes["anthropic"].fault(path="/v1/messages", status=503, times=1)
    at_once = execute(package, "default")
    assert [(a["provider"], a["status"]) for a in at_once["attempts"]] == [("anthropic", 503), ("llama-cpp", 200)]


def test_high_priority_is_hedged(package):
    # OpenAI silent for 3 s: after the chain's 2 s, Anthropic is asked too and answers first.
    package.fakes["openai"].fault(path="/v1/chat/completions", delay_s=3.0, times=1)
    hedged = execute(package, "high-priority")
    assert hedged["provider"] == "anthropic"
    assert [(a["provider"], a["hedge"]) for a in hedged["attempts"] if a["outcome"] == "success"] == [
        ("anthropic", True)
    ]
    # ... and the answer did not wait for OpenAI's 3 s: its attempt lost the race, cancelled
    assert [(a["provider"], a["outcome"], a["reason"]) for a in hedged["attempts"] if not a["hedge"]] == [
        ("openai", "cancelled", "hedge_lost")
    ]


def test_anthropic_down_fails_over_at_once_opens_its_breaker_and_comes_back(package):
    with package.events() as events:
        package.fakes["anthropic"].stop()  # its port now refuses connections
        for _ in range(3):
            body = execute(package, "default")
            failed, served = body["attempts"]
            assert (failed["provider"], failed["outcome"], failed["reason"]) == (
                "anthropic",
                "failure",
                "connect_error",
            )
            # No retry and no backoff: a refused connection costs one attempt, then llama.cpp.
            assert (served["provider"], body["retries"], body["failovers"]) == ("llama-cpp", 0, 1)

        # The third failure in a row opened the breaker: Anthropic is skipped without a call.
        opened = events.wait("breaker.opened", "anthropic")
        assert (opened.data["from"], opened.data["to"]) == ("closed", "open")
        skipped = execute(package, "default")
        assert [(a["provider"], a["skipped"]) for a in skipped["attempts"]] == [
            ("anthropic", "open"),
            ("llama-cpp", None),
        ]
        breakers = {b["name"]: b for b in package.get("/api/breakers")["breakers"]}
        assert breakers["anthropic"]["state"] == "open" and breakers["anthropic"]["consecutive_failures"] == 3
        history = package.get("/api/events?provider=anthropic&kind=breaker.opened")["events"]
        assert [(e["from"], e["to"]) for e in history][-1:] == [("closed", "open")]
        assert "closed → open" in package.console("viewer").get("/events?provider=anthropic").text

        # Every target failing is a request.failed event naming who was called.
        package.fakes["llama-cpp"].fault(path="/v1/chat/completions", status=503)
        package.fakes["openai"].fault(path="/v1/chat/completions", status=503)
        with pytest.raises(openai.APIStatusError) as failed_all:
            package.openai().chat.completions.create(model="default", messages=PING)
        assert failed_all.value.status_code == 502
        failure = events.wait("request.failed")
        assert failure.data["detail"]["route"] == "default"
        assert failure.data["detail"]["providers"] == ["llama-cpp", "openai"]
        assert "anthropic" in str(failure.data["detail"]["skipped"])
        package.fakes["llama-cpp"].clear_faults()
        package.fakes["openai"].clear_faults()

        # Anthropic comes back; the operator closes the breaker, and it serves `default` again.
        package.fakes["anthropic"] = FakeAnthropic(port=package.fakes["anthropic"].port).start()
        assert package.post("/api/breakers/anthropic/reset").json()["state"] == "closed"
        events.wait("breaker.closed", "anthropic")
        assert execute(package, "default")["provider"] == "anthropic"

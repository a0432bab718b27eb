"""SAMIA, the admin platform (examples/admin-platform.yaml), under uvicorn: translation and chat
through the one execute endpoint; a failing provider tried 5 times with backoff, a provider's 401
never retried nor shown (the credential set aside, an event says so); the assistant ordered by
the health scores the running monitor keeps; the fleet's health summary and the provider
registry filtered and sorted; statistics reset; analytics per provider; configuration changed
only by superusers (console, admin) and admin keys (API)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from tests.fakes.anthropic import API_KEY as ANTHROPIC_KEY
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.deepl import FakeDeepL
from tests.fakes.openai import API_KEY as OPENAI_KEY
from tests.fakes.openai import FakeOpenAI

from .stage import Stage, Template, open_stage

pytestmark = pytest.mark.e2e

BASE_DELAY_S = 0.05  # the file's 0.5 s, made shorter for the test


@pytest.fixture(scope="module")
def platform(template: Template, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    def test_sized(config: dict) -> None:
        for provider in config["providers"]:
            provider["retry"]["base_delay_s"] = BASE_DELAY_S

    with ExitStack() as stack:
        fakes = {
            "deepl": stack.enter_context(FakeDeepL()),
            "openai": stack.enter_context(FakeOpenAI()),
            "anthropic": stack.enter_context(FakeAnthropic()),
        }
        stage = open_stage(
            template,
            tmp_path_factory.mktemp("admin-platform"),
            "admin-platform",
            fakes,
            paths={"openai": "/v1"},
            tweak=test_sized,
            env={
                "DEEPL_API_KEY": "deepl-test-key:fx",
                "OPENAI_API_KEY": OPENAI_KEY,
                "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
            },
        )
        stack.callback(stage.stop)
        yield stage


@pytest.fixture(autouse=True)
def calm(platform: Stage) -> Iterator[None]:
    yield
    platform.calm()


def healthier(stage: Stage, first: str, second: str) -> None:
    """Make the monitor find `second` failing its health check and wait until its score is
    below `first`'s (the probes run now: `POST /api/health/check`)."""
    stage.fakes[second].fault(path="/v1/models", status=500)
    stage.fakes[first].clear_faults()
    assert stage.post("/api/health/check").status_code == 200

    def ranked() -> bool:
        health = stage.health()
        return (health[first]["score"] or 0) > (health[second]["score"] or 0)

    stage.until(ranked, f"{first} scored above {second}")
    stage.fakes[second].clear_faults()


def test_translation_and_chat_share_the_execute_endpoint(platform):
    translated = platform.execute(
        capability="translation", route="translate", input="Hello, world!", options={"target_lang": "DE"}
    )
    answered = platform.execute(capability="chat", route="assistant", input="Summarise ticket 42")

    assert translated.status_code == 200, translated.text
    assert translated.json()["provider"] == "deepl"
    assert translated.json()["output"]["translations"] == [{"detected_source_language": "EN", "text": "Hallo, Welt!"}]
    assert translated.json()["cost"] == pytest.approx(13 * 0.025 / 1000)  # the file's price per 1000 characters
    assert answered.status_code == 200, answered.text
    assert answered.json()["output"]["choices"][0]["message"]["content"] == "Echo: Summarise ticket 42"


def test_a_503_is_tried_five_times_then_the_next_provider_serves(platform):
    healthier(platform, "openai", "anthropic")
    platform.fakes["openai"].fault(path="/v1/chat/completions", status=503)

    answer = platform.execute(capability="chat", route="assistant", input="Status of order 7?")

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [(a["provider"], a["outcome"], a["status"]) for a in body["attempts"]] == [
        *[("openai", "failure", 503)] * 5,
        ("anthropic", "success", 200),
    ]
    assert (body["provider"], body["retries"], body["failovers"]) == ("anthropic", 4, 1)
    assert len(platform.fakes["openai"].requests_to("/v1/chat/completions")) >= 5


def test_a_401_from_the_provider_is_not_retried_nor_shown_and_sets_the_key_aside(platform):
    healthier(platform, "openai", "anthropic")
    platform.fakes["openai"].fault(path="/v1/chat/completions", status=401, error_code="invalid_api_key")
    before = len(platform.fakes["openai"].requests_to("/v1/chat/completions"))

    with platform.events() as events:
        refused = platform.execute(capability="chat", route="assistant", input="Status of order 8?")
        rejected = events.wait("credential.rejected", "openai")

    # The provider refused our key, not the caller's request: tried once, never shown to the
    # caller; the chain falls back and the key is set aside (product.md, "Who is at fault").
    assert refused.status_code == 200, refused.text
    assert [(a["provider"], a["outcome"], a["status"]) for a in refused.json()["attempts"]] == [
        ("openai", "credential_rejected", 401),
        ("anthropic", "success", 200),
    ]
    assert refused.headers["x-gateway-attempts"] == "2" and "invalid_api_key" not in refused.text
    assert len(platform.fakes["openai"].requests_to("/v1/chat/completions")) == before + 1
    assert rejected.data["to"] == "rejected"
    detail = platform.get("/api/providers/openai")
    assert [c["state"] for c in detail["credentials"]] == ["rejected"]
    # Set aside: the next request does not call it at all.
    assert platform.execute(capability="chat", route="assistant", input="Status of order 9?").json()["provider"] == (
        "anthropic"
    )
    assert len(platform.fakes["openai"].requests_to("/v1/chat/completions")) == before + 1


def test_the_assistant_asks_the_provider_the_monitor_finds_healthier_first(platform):
    healthier(platform, "openai", "anthropic")
    first = platform.execute(capability="chat", route="assistant", input="hi").json()
    by_health = [p["name"] for p in platform.get("/api/providers?capability=chat&sort=health_score")["providers"]]

    healthier(platform, "anthropic", "openai")
    second = platform.execute(capability="chat", route="assistant", input="hi").json()

    assert [a["provider"] for a in first["attempts"]] == ["openai"]
    assert by_health == ["openai", "anthropic"]
    # Listed second in the file, Anthropic now goes first: the order is the health score's.
    assert [a["provider"] for a in second["attempts"]] == ["anthropic"]
    assert [p["name"] for p in platform.get("/api/providers?capability=chat&sort=health_score")["providers"]] == [
        "anthropic",
        "openai",
    ]


def test_the_fleet_has_a_health_summary_and_the_registry_filters_and_sorts(platform):
    summary = platform.get("/api/health")["summary"]
    assert summary["total"] == 3
    assert sum(summary[s] for s in ("healthy", "degraded", "unhealthy", "unknown", "disabled", "maintenance")) == 3
    assert 0 <= summary["score"] <= 100

    assert [p["name"] for p in platform.get("/api/providers?capability=translation")["providers"]] == ["deepl"]
    assert [p["name"] for p in platform.get("/api/providers?sort=name")["providers"]] == [
        "anthropic",
        "deepl",
        "openai",
    ]
    assert platform.post("/api/providers/deepl/disable").status_code == 200
    assert [p["name"] for p in platform.get("/api/providers?enabled=false")["providers"]] == ["deepl"]
    assert {p["name"] for p in platform.get("/api/providers?enabled=true")["providers"]} == {"openai", "anthropic"}
    platform.until(lambda: platform.get("/api/health")["summary"]["disabled"] == 1, "deepl counted as disabled")


def test_statistics_are_reset_by_an_operator(platform, reader):
    platform.fakes["openai"].fault(path="/v1/chat/completions", status=503, times=1)
    healthier(platform, "openai", "anthropic")
    assert platform.execute(capability="chat", route="assistant", input="one").status_code == 200
    with platform.events() as events:
        reset = platform.post("/api/health/openai/reset")
        assert reset.status_code == 200, reset.text
        assert events.wait("health.reset", "openai").data["actor"]
    assert platform.post("/api/health/openai/reset", key=reader).status_code == 403


@pytest.fixture(scope="module")
def reader(platform: Stage) -> str:
    """A key for a dashboard: it reads, it does not change anything."""
    out = platform.manage("create_api_key", "dashboard-reader", "--scopes", "read,gateway")
    return out.strip().splitlines()[-1]


def test_analytics_are_kept_per_provider(platform):
    names = ("openai", "anthropic", "deepl")
    healthier(platform, "openai", "anthropic")
    # The request log and the analytics are written in batches, in order: once a marker request
    # is in the log, every earlier one is counted.
    marker = platform.execute(capability="translation", route="translate", input="x", options={"target_lang": "DE"})
    platform.logged(marker.headers["x-request-id"])
    before = {name: platform.analytics(name) for name in names}

    for text in ("one", "two", "three"):
        assert platform.execute(capability="chat", route="assistant", input=text).json()["provider"] == "openai"
    translated = platform.execute(
        capability="translation", route="translate", input="good morning", options={"target_lang": "DE"}
    )
    platform.logged(translated.headers["x-request-id"])
    after = {name: platform.analytics(name) for name in names}

    counts = ("requests", "successes", "failures", "failovers")
    assert {f: after["openai"][f] - before["openai"][f] for f in counts} == {
        "requests": 3,
        "successes": 3,
        "failures": 0,
        "failovers": 0,
    }
    assert after["openai"]["routes"]["assistant"]["requests"] - before["openai"]["routes"]["assistant"]["requests"] == 3
    assert after["openai"]["tokens_in"] > before["openai"]["tokens_in"]
    assert after["openai"]["cost"] > before["openai"]["cost"]  # the file's prices
    assert after["anthropic"]["requests"] == before["anthropic"]["requests"]
    assert after["deepl"]["requests"] - before["deepl"]["requests"] == 1
    assert after["deepl"]["characters"] - before["deepl"]["characters"] == len("good morning")
    assert after["deepl"]["cost"] - before["deepl"]["cost"] == pytest.approx(len("good morning") * 0.025 / 1000)


def test_only_a_superuser_or_an_admin_key_changes_the_configuration(platform, reader):
    for who in ("viewer", "oper"):
        client = platform.console(who)
        assert client.get("/providers/openai").status_code == 200  # they see it
        assert client.post("/providers/openai/disable").status_code == 403
        assert client.post("/admin/providers/provider/add/", data={"name": "x"}).status_code == 403
    assert platform.post("/api/providers/openai/disable", key=reader).status_code == 403
    assert [p["enabled"] for p in platform.get("/api/providers?capability=chat&sort=name")["providers"]] == [True, True]

    with platform.events() as events:
        boss = platform.console("operator")  # ensure_admin's superuser
        assert boss.post("/providers/openai/disable").status_code == 303
        disabled = events.wait("provider.disabled", "openai")
        around = platform.execute(capability="chat", route="assistant", input="hi").json()
        assert [a["provider"] for a in around["attempts"] if a["skipped"] is None] == ["anthropic"]

        enabled = platform.post("/api/providers/openai/enable")
        assert enabled.status_code == 200, enabled.text
        events.wait("provider.enabled", "openai")
    assert disabled.data["actor"] == "operator"
    audit = httpx.get(platform.url + "/api/events?provider=openai", headers=platform.headers()).json()
    assert {"provider.disabled", "provider.enabled"} <= {e["event"] for e in audit["events"]}

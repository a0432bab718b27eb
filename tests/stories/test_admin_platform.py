"""Story 2, the admin platform (examples/admin-platform.yaml): translation and chat through the
one execute endpoint; a failing provider tried 5 times with growing backoff, a 401 never
retried; the assistant ordered by health score from the monitor; analytics per provider;
configuration changed only by superusers, in the console and in the admin."""

from __future__ import annotations

import random
from contextlib import ExitStack

import pytest
from asgiref.sync import sync_to_async

from analytics.recorder import flush_all
from health.monitor import Monitor
from providers.models import AuditLog, Provider
from providers.runtime import runtime
from tests.conftest import auth
from tests.fakes.anthropic import API_KEY as ANTHROPIC_KEY
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.deepl import FakeDeepL
from tests.fakes.openai import API_KEY as OPENAI_KEY
from tests.fakes.openai import FakeOpenAI

from .conftest import form_fields, gaps

pytestmark = pytest.mark.django_db(transaction=True)

BASE_DELAY_S = 0.1  # the file's 0.5 s, made shorter for the test


class UpperBound(random.Random):
    """Full jitter draws U(0, bound); this draws the bound itself, so each backoff is exactly
    min(max_delay, base x 2^(n-1)) and the gaps between attempts can be checked."""

    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.fixture
def fakes():
    with ExitStack() as stack:
        yield {
            "deepl": stack.enter_context(FakeDeepL()),
            "openai": stack.enter_context(FakeOpenAI()),
            "anthropic": stack.enter_context(FakeAnthropic()),
        }


@pytest.fixture
async def platform(load_story, fakes):
    def test_sized(config: dict) -> None:
        for provider in config["providers"]:
            provider["retry"]["base_delay_s"] = BASE_DELAY_S

    return await load_story(
        "admin-platform",
        tweak=test_sized,
        base_urls={
            "deepl": fakes["deepl"].url,
            "openai": fakes["openai"].url + "/v1",
            "anthropic": fakes["anthropic"].url,
        },
        env={"DEEPL_API_KEY": "deepl-test-key:fx", "OPENAI_API_KEY": OPENAI_KEY, "ANTHROPIC_API_KEY": ANTHROPIC_KEY},
    )


async def execute(gateway, key, **payload):  # type: ignore[no-untyped-def]
    return await gateway.post("/api/execute", headers=auth(key), json=payload)


async def test_translation_and_chat_share_the_execute_endpoint(platform, gateway, key):
    translated = await execute(
        gateway, key, capability="translation", route="translate", input="Hello, world!", options={"target_lang": "DE"}
    )
    answered = await execute(gateway, key, capability="chat", route="assistant", input="Summarise ticket 42")

    assert translated.status_code == 200, translated.text
    assert translated.json()["provider"] == "deepl"
    assert translated.json()["output"]["translations"] == [{"detected_source_language": "EN", "text": "Hallo, Welt!"}]
    assert translated.json()["cost"] == pytest.approx(13 * 0.025 / 1000)  # the file's price per 1000 characters
    assert answered.status_code == 200, answered.text
    assert answered.json()["output"]["choices"][0]["message"]["content"] == "Echo: Summarise ticket 42"


async def test_a_503_is_tried_five_times_with_growing_backoff_and_a_401_not_again(platform, gateway, key, fakes):
    runtime().engine.rng = UpperBound()
    runtime().engine.set_scores({"openai": 90.0, "anthropic": 80.0})  # openai first on this route
    fakes["openai"].fault(path="/v1/chat/completions", status=503)

    answer = await execute(gateway, key, capability="chat", route="assistant", input="Status of order 7?")

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [(a["provider"], a["outcome"], a["status"]) for a in body["attempts"]] == [
        *[("openai", "failure", 503)] * 5,
        ("anthropic", "success", 200),
    ]
    assert (body["provider"], body["retries"], body["failovers"]) == ("anthropic", 4, 1)
    arrivals = [r.at for r in fakes["openai"].requests_to("/v1/chat/completions")]
    backoffs = [BASE_DELAY_S * 2**n for n in range(4)]  # 0.1, 0.2, 0.4, 0.8 s
    # Each gap is its backoff plus the attempt: never shorter than its (growing) backoff. How
    # long an attempt takes is the machine's business, so gaps are not compared with each
    # other; the exact schedule is asserted on the fake clock (tests/engine/test_backoff.py).
    assert all(gap >= backoff for gap, backoff in zip(gaps(arrivals), backoffs, strict=True)), gaps(arrivals)
    assert body["latency_ms"] >= sum(backoffs) * 1000

    fakes["openai"].clear_faults()
    fakes["openai"].fault(path="/v1/chat/completions", status=401, error_code="invalid_api_key")
    refused = await execute(gateway, key, capability="chat", route="assistant", input="Status of order 8?")

    # The provider refused our key, not the caller's request: never tried again, never shown to
    # the caller; the chain falls back and the key is set aside (product.md, "Who is at fault").
    assert refused.status_code == 200, refused.text
    body = refused.json()
    assert [(a["provider"], a["outcome"], a["status"]) for a in body["attempts"]] == [
        ("openai", "credential_rejected", 401),
        ("anthropic", "success", 200),
    ]
    assert refused.headers["x-gateway-attempts"] == "2"
    assert len(fakes["openai"].requests_to("/v1/chat/completions")) == 6  # the 5 before, and this one only
    assert "invalid_api_key" not in refused.text
    detail = (await gateway.get("/api/providers/openai", headers=auth(key))).json()
    assert [c["state"] for c in detail["credentials"]] == ["rejected"]


async def test_the_assistant_asks_the_provider_the_monitor_finds_healthier_first(platform, gateway, key, fakes):
    monitor = Monitor(runtime(), rng=random.Random(1))
    fakes["anthropic"].fault(path="/v1/models", status=500)  # its health check fails

    async def tick() -> None:
        await monitor.tick()
        await monitor.wait_for_probes()
        await monitor.tick()

    async def scores() -> dict[str, float]:
        health = (await gateway.get("/api/health", headers=auth(key))).json()["providers"]
        return {h["name"]: h["score"] for h in health}

    await tick()
    before = await scores()
    first = await execute(gateway, key, capability="chat", route="assistant", input="hi")
    fakes["anthropic"].clear_faults()
    fakes["openai"].fault(path="/v1/models", status=500)
    monitor.due.clear()  # probe again now, not at the file's 30 s interval
    await tick()
    after = await scores()
    second = await execute(gateway, key, capability="chat", route="assistant", input="hi")

    assert before["openai"] > before["anthropic"] and first.json()["provider"] == "openai"
    assert after["anthropic"] > after["openai"]
    # Listed second in the file, Anthropic now goes first: the order is the health score's.
    assert [a["provider"] for a in second.json()["attempts"]] == ["anthropic"]


async def test_analytics_are_kept_per_provider(platform, gateway, key, fakes):
    fakes["openai"].fault(path="/v1/chat/completions", status=503, times=1)
    runtime().engine.set_scores({"openai": 90.0, "anthropic": 80.0})
    for text in ("one", "two", "three"):
        assert (await execute(gateway, key, capability="chat", route="assistant", input=text)).status_code == 200
    assert (
        await execute(
            gateway,
            key,
            capability="translation",
            route="translate",
            input="good morning",
            options={"target_lang": "DE"},
        )
    ).status_code == 200
    await flush_all()

    openai = (await gateway.get("/api/analytics/openai?window=1h", headers=auth(key))).json()
    deepl = (await gateway.get("/api/analytics/deepl?window=1h", headers=auth(key))).json()

    assert openai["provider"] == "openai" and deepl["provider"] == "deepl"
    assert (openai["requests"], openai["successes"], openai["failures"], openai["retries"]) == (4, 3, 1, 1)
    assert openai["routes"]["assistant"]["requests"] == 4 and openai["tokens_in"] > 0
    assert (deepl["requests"], deepl["successes"], deepl["characters"]) == (1, 1, len("good morning"))
    assert deepl["cost"] == pytest.approx(len("good morning") * 0.025 / 1000)


async def test_only_a_superuser_changes_the_configuration(platform, users, console):
    provider_id = await sync_to_async(lambda: Provider.objects.get(name="openai").pk)()
    change_page = f"/admin/providers/provider/{provider_id}/change/"

    for who in ("staff", "operator"):
        client = await console(users[who])
        assert (await client.get("/providers/openai")).status_code == 200  # they see it
        assert (await client.post("/providers/openai/disable")).status_code == 403
        assert (await client.get(change_page)).status_code == 403
        assert (await client.post(change_page, {"priority": "9"})).status_code == 403
    assert await sync_to_async(lambda: Provider.objects.get(name="openai").enabled)()

    boss = await console(users["admin"])
    assert (await boss.post("/providers/openai/disable")).status_code == 303
    assert not await sync_to_async(lambda: Provider.objects.get(name="openai").enabled)()
    form = form_fields((await boss.get(change_page)).content.decode())
    form.update({"priority": "9", "enabled": "on"})
    saved = await boss.post(change_page, form)
    assert saved.status_code == 302, saved.content.decode()[:2000]
    row = await sync_to_async(Provider.objects.get)(name="openai")
    assert (row.priority, row.enabled) == (9, True)
    actions = await sync_to_async(
        lambda: list(AuditLog.objects.filter(object_name="openai").exclude(actor="test").values_list("actor", "action"))
    )()
    assert ("boss", "disable") in actions and ("boss", "update") in actions
    assert not [a for a in actions if a[0] in ("viewer", "oper")]

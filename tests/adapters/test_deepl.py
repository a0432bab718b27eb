"""DeepLAdapter against FakeDeepL: translation, languages, usage probe and DeepL's error classes."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest

from providers.adapters.base import Price, ProviderConfig
from providers.adapters.deepl import FREE_URL, PRO_URL, DeepLAdapter
from providers.engine.outcome import Outcome, classify_exception
from tests.fakes.base import free_port
from tests.fakes.deepl import FakeDeepL

from .expect import raised

KEY = "deepl-test-key:fx"


@pytest.fixture(scope="module")
def fake():
    with FakeDeepL(api_key=KEY, character_limit=1_000) as server:
        yield server


def make(url: str, client: httpx.AsyncClient, api_key: str = KEY, **options) -> DeepLAdapter:
    config = ProviderConfig(name="deepl", kind="deepl", base_url=url, api_key=api_key, options=options)
    return DeepLAdapter(config, client)


@pytest.fixture
def adapter(fake, client):
    return make(fake.url, client)


async def test_a_text_is_translated_with_the_detected_source_and_billed_characters(adapter, fake):
    result = await adapter.translate({"text": "Hello, world!", "target_lang": "de"}, model="", timeout=5)

    sent = fake.requests_to("/v2/translate")[-1]
    assert sent.headers["Authorization"] == f"DeepL-Auth-Key {KEY}"
    assert sent.json() == {"text": ["Hello, world!"], "target_lang": "DE", "show_billed_characters": True}
    assert json.loads(result.content) == {"translations": [{"text": "Hallo, Welt!", "detected_source_language": "EN"}]}
    assert result.usage.characters == 13


async def test_a_list_with_source_formality_and_model_type_is_sent_as_deepl_expects(adapter, fake):
    request = {"text": ["Good morning", "Hi"], "target_lang": "DE", "source_lang": "en", "formality": "more"}
    result = await adapter.translate(request, model="quality_optimized", timeout=5)

    sent = fake.requests_to("/v2/translate")[-1].json()
    assert (sent["source_lang"], sent["formality"], sent["model_type"]) == ("EN", "more", "quality_optimized")
    assert [t["text"] for t in result.data["translations"]] == ["Guten Morgen", "[DE] Hi"]
    assert result.usage.characters == len("Good morning") + len("Hi")


async def test_characters_price_per_thousand(adapter):
    result = await adapter.translate({"text": "x" * 400, "target_lang": "FR"}, model="", timeout=5)

    assert result.usage.cost(Price(per_kchar=Decimal("0.025"))) == Decimal("0.01")


async def test_a_free_key_picks_the_free_endpoint_and_a_pro_key_the_pro_one(client):
    free = DeepLAdapter(ProviderConfig(name="d", kind="deepl", base_url="", api_key="k:fx"), client)
    pro = DeepLAdapter(ProviderConfig(name="d", kind="deepl", base_url="", api_key="k"), client)

    assert (free.base_url, pro.base_url) == (FREE_URL, PRO_URL)


async def test_languages_and_the_single_model_list_them(adapter):
    targets = await adapter.languages(timeout=5)
    sources = await adapter.languages(target=False, timeout=5)
    models = await adapter.list_models(timeout=5)

    assert {"language": "DE", "name": "German", "supports_formality": True} in targets
    assert {"language": "EN", "name": "English"} in sources
    assert models[0].capabilities == frozenset({"translation"})
    assert "EN-US" in models[0].details["target_languages"]


async def test_the_probe_reads_usage_without_translating(adapter, fake):
    await adapter.translate({"text": "x" * 300, "target_lang": "IT"}, model="", timeout=5)
    fake.requests.clear()

    details = await adapter.probe(timeout=5)

    assert details == {"characters_used": 300, "character_limit": 1_000, "characters_left": 700}
    assert [r.path for r in fake.requests] == ["/v2/usage"]


async def test_going_past_the_quota_is_456_exhausted(adapter):
    await adapter.translate({"text": "x" * 990, "target_lang": "IT"}, model="", timeout=5)

    error = await raised(adapter.translate({"text": "y" * 20, "target_lang": "IT"}, model="", timeout=5))

    assert error.status == 456
    assert classify_exception(error).outcome is Outcome.EXHAUSTED
    assert json.loads(error.body) == {"message": "Quota Exceeded"}


async def test_too_many_requests_is_rate_limited_with_retry_after(adapter, fake):
    fake.fault(path="/v2/translate", status=429, retry_after="1.5")

    error = await raised(adapter.translate({"text": "a", "target_lang": "DE"}, model="", timeout=5))

    assert classify_exception(error).outcome is Outcome.RATE_LIMITED
    assert classify_exception(error).retry_after == 1.5
    assert error.message == "Too many requests"


async def test_a_bad_key_is_a_403_caller_error_with_deepls_message(fake, client):
    error = await raised(
        make(fake.url, client, api_key="other:fx").translate({"text": "a", "target_lang": "DE"}, model="", timeout=5)
    )

    assert error.status == 403
    assert classify_exception(error).outcome is Outcome.CALLER_ERROR
    assert error.message == "Forbidden"


async def test_a_pro_key_on_the_free_endpoint_is_told_the_right_one(fake, client):
    error = await raised(make(fake.url, client, api_key="pro-key").usage(timeout=5))

    assert error.status == 403
    assert error.message == "Wrong endpoint. Use https://api.deepl.com"


async def test_an_unsupported_target_is_a_400_caller_error(adapter):
    error = await raised(adapter.translate({"text": "a", "target_lang": "EN"}, model="", timeout=5))

    assert error.status == 400
    assert classify_exception(error).outcome is Outcome.CALLER_ERROR
    assert error.message.startswith("Value for 'target_lang' not supported. targetLang='en' is deprecated")


async def test_missing_text_is_refused_before_any_call(adapter, fake):
    error = await raised(adapter.translate({"text": [], "target_lang": "DE"}, model="", timeout=5))

    assert classify_exception(error).outcome is Outcome.CALLER_ERROR
    assert fake.requests_to("/v2/translate") == []


@pytest.mark.parametrize("status", [500, 503, 529])
async def test_server_errors_and_529_are_failures(adapter, fake, status):
    fake.fault(path="/v2/translate", status=status)

    error = await raised(adapter.translate({"text": "a", "target_lang": "DE"}, model="", timeout=5))

    assert classify_exception(error).outcome is Outcome.FAILURE
    assert error.status == status


async def test_an_answer_with_the_wrong_number_of_translations_is_malformed(adapter, fake):
    fake.fault(path="/v2/translate", body='{"translations": []}')

    error = await raised(adapter.translate({"text": "a", "target_lang": "DE"}, model="", timeout=5))

    assert classify_exception(error).reason == "malformed_response"


async def test_a_hang_a_drop_and_a_refused_port_are_failures(adapter, fake, client):
    fake.fault(path="/v2/translate", hang=True, times=1)
    hung = await raised(adapter.translate({"text": "a", "target_lang": "DE"}, model="", timeout=0.2))
    fake.fault(path="/v2/usage", drop=True, times=1)
    dropped = await raised(adapter.usage(timeout=5))
    refused = await raised(make(f"http://127.0.0.1:{free_port()}", client).usage(timeout=2))

    assert [classify_exception(e).outcome for e in (hung, dropped, refused)] == [Outcome.FAILURE] * 3

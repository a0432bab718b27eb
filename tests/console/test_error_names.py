"""Plain-language error names: every key the engine writes has one, shown with the key."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.template import Context, Template

from analytics.error_names import ERROR_NAMES, error_name
from health.models import HealthEvent
from health.templatetags import analytics_extras
from health.uptime import uptime_of
from providers.models import Provider

ROOT = Path(__file__).resolve().parents[2]


def test_the_common_keys_read_as_plain_words():
    assert error_name("http_503") == "Service unavailable"
    assert error_name("open") == "Circuit breaker open"
    assert error_name("read_timeout") == "No answer in time (read timeout)"
    assert error_name("budget_exceeded") == "API key's budget spent"


def test_unknown_keys_fall_back_to_the_status_phrase_the_exception_or_the_key_itself():
    assert error_name("http_418") == "I'm a Teapot"
    assert error_name("unexpected_status_302") == "Found"
    assert error_name("http_599") == "HTTP status 599"
    assert error_name("error:KeyError") == "Unexpected error (KeyError)"
    assert error_name("ReadError") == "Connection broke while reading"
    assert error_name("StreamConsumed" + "Error") == "Unexpected error"
    assert error_name("something_new") == "something_new"
    assert error_name("") == "" and error_name(None) == ""


def test_every_reason_the_engine_or_an_adapter_classifies_and_every_skip_reason_has_a_name():
    sources = [ROOT / "providers/engine/outcome.py", *sorted((ROOT / "providers/adapters").glob("*.py"))]
    reasons = {r for f in sources for r in re.findall(r'Classification\(\s*Outcome\.\w+, "([a-z_]+)"', f.read_text())}
    reasons.discard("ok")  # a success is no error
    result = (ROOT / "providers/engine/result.py").read_text()
    listed = result[result.index("skipped: str | None = None  #") : result.index("(the target cannot")]
    skips = set(re.findall(r"\b([a-z_]{3,})\b", listed.split("#", 1)[1].replace("#", ",")))
    missing = sorted(k for k in reasons | skips if k not in ERROR_NAMES)
    assert len(reasons) > 20 and {"open", "cooldown", "half_open_full", "unsupported"} <= skips
    assert not missing, missing


def test_the_filter_shows_the_name_with_the_raw_key_beside_it_escaped():
    assert analytics_extras.error_name("http_503") == 'Service unavailable (<code class="error-key">http_503</code>)'
    assert analytics_extras.error_name("<b>odd</b>") == "<code>&lt;b&gt;odd&lt;/b&gt;</code>"
    assert analytics_extras.error_name("") == ""


def test_money_carries_the_configured_currency(settings):
    settings.PRICE_CURRENCY = "EUR"
    assert analytics_extras.money(0.01234) == "0.0123 EUR"
    assert analytics_extras.money(None) == "–"
    assert analytics_extras.price_currency() == "EUR"


@pytest.mark.django_db
def test_the_provider_uptime_tag_says_what_it_measured():
    start = datetime(2026, 11, 20, 11, 0, tzinfo=UTC)
    provider = Provider.objects.create(name="p1", kind="openai")
    HealthEvent.objects.create(
        provider=provider, provider_name="p1", at=start, kind=HealthEvent.Kind.STATUS, old="unknown", new="healthy"
    )
    HealthEvent.objects.create(
        provider=provider,
        provider_name="p1",
        at=start + timedelta(minutes=45),
        kind=HealthEvent.Kind.STATUS,
        old="healthy",
        new="unhealthy",
    )
    measured = uptime_of("p1", start, start + timedelta(hours=1))
    html = Template("{% load analytics_extras %}{% uptime_span measured %}").render(Context({"measured": measured}))
    assert html == '<span class="uptime" title="Up 45 min of 60 min monitored">75.0%</span>'
    missing = Template("{% load analytics_extras %}{% uptime_span measured %}").render(
        Context({"measured": uptime_of("nobody", start, start)})
    )
    assert ">–</span>" in missing


class Priced:
    """What `model_price` reads of a `ProviderModel`: its prices as charged."""

    def __init__(self, **prices: object) -> None:
        self._prices = {field: None for field, _ in analytics_extras.PRICE_UNITS} | prices

    def prices(self) -> dict[str, object]:
        return self._prices


@pytest.mark.parametrize(
    ("prices", "text"),
    [
        ({}, "unknown"),  # no price known: not free
        ({"input_price_per_mtok": Decimal("0"), "output_price_per_mtok": Decimal("0")}, "free"),
        (
            {"input_price_per_mtok": Decimal("0.150000"), "output_price_per_mtok": Decimal("0.6")},
            "0.15 in /Mtok · 0.6 out /Mtok",
        ),
        ({"input_price_per_mtok": Decimal("2.5")}, "2.5 in /Mtok · unknown out /Mtok"),
        ({"price_per_image": Decimal("0.04")}, "0.04 /image"),
        ({"price_per_kchar": Decimal("0.3"), "price_per_minute": Decimal("0")}, "0.3 /1k chars · 0 /min"),
    ],
)
def test_a_models_price_says_free_unknown_or_each_known_price_with_its_unit(prices, text):
    assert analytics_extras.model_price(Priced(**prices)) == text

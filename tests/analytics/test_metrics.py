from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from prometheus_client.parser import text_string_to_metric_families

from analytics.recorder import write_batch
from providers.config import apply_config
from tests.conftest import auth

from .conftest import BURST_A, BURST_ROUTE, attempt, record

pytestmark = pytest.mark.django_db(transaction=True)


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(all_samples, name: str, **labels: str) -> float:
    return all_samples[(name, frozenset(labels.items()))]


@pytest.fixture
def written(burst):
    @sync_to_async
    def setup() -> None:
        from health.models import ProviderHealth
        from providers.models import Provider

        apply_config(
            {"providers": [{"name": "a", "kind": "simulated"}, {"name": "b", "kind": "simulated"}]},
            actor="test",
            prune=True,
        )
        ProviderHealth.objects.create(
            provider=Provider.objects.get(name="a"), status="degraded", score=61.5, breaker="open"
        )
        write_batch(burst)
        write_batch([record([attempt("a", ms=ms)], route="embed", latency_ms=ms) for ms in (3, 30, 300, 3000)])

    return setup


async def test_metrics_parse_as_prometheus_text_and_match_the_requests(gateway, key, written):
    await written()
    response = await gateway.get("/metrics", headers=auth(key))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    s = samples(response.text)
    assert value(s, "gateway_requests_total", route="chat", provider="a", outcome="success") == 5
    assert value(s, "gateway_requests_total", route="chat", provider="b", outcome="success") == 4
    assert value(s, "gateway_requests_total", route="chat", provider="", outcome="failure") == 2
    assert value(s, "gateway_requests_total", route="chat", provider="a", outcome="caller_error") == 1
    assert (
        sum(v for (n, labels), v in s.items() if n == "gateway_requests_total" and ("route", "chat") in labels)
        == BURST_ROUTE["requests"]
    )
    assert value(s, "gateway_failovers_total", provider="a", route="chat") == BURST_A["failovers"]
    assert value(s, "gateway_retries_total", provider="a", route="chat") == BURST_A["retries"]
    assert value(s, "gateway_attempts_total", provider="a", route="chat", outcome="failure") == 10
    assert value(s, "gateway_attempts_total", provider="a", route="chat", outcome="skipped") == 1
    assert value(s, "gateway_tokens_total", provider="b", route="chat", direction="in") == 40


async def test_the_latency_histogram_is_cumulative_and_counts_every_request(gateway, key, written):
    await written()
    s = samples((await gateway.get("/metrics", headers=auth(key))).text)
    labels = {"route": "embed", "provider": "a"}
    assert value(s, "gateway_request_duration_seconds_count", **labels) == 4
    assert value(s, "gateway_request_duration_seconds_sum", **labels) == pytest.approx(3.333)
    buckets = sorted(
        (float(dict(labels)["le"]), v)
        for (n, labels), v in s.items()
        if n == "gateway_request_duration_seconds_bucket" and ("route", "embed") in labels
    )
    counts = [v for _, v in buckets]
    assert counts == sorted(counts) and buckets[-1] == (float("inf"), 4)
    below = lambda seconds: max(v for le, v in buckets if le <= seconds)  # noqa: E731
    assert below(0.002) == 0 and below(0.006) == 1 and below(0.05) == 2 and below(1.0) == 3


async def test_breaker_state_and_health_score_gauges_come_from_provider_health(gateway, key, written):
    await written()
    s = samples((await gateway.get("/metrics", headers=auth(key))).text)
    assert value(s, "gateway_provider_health_score", provider="a") == 61.5
    assert value(s, "gateway_breaker_state", provider="a", gateway_breaker_state="open") == 1
    assert value(s, "gateway_breaker_state", provider="a", gateway_breaker_state="closed") == 0
    assert value(s, "gateway_provider_status", provider="a", gateway_provider_status="degraded") == 1


async def test_metrics_need_a_read_key_unless_public(gateway, written, settings):
    await written()
    assert (await gateway.get("/metrics")).status_code == 401
    settings.METRICS_PUBLIC = True
    response = await gateway.get("/metrics")
    assert response.status_code == 200 and "gateway_requests_total" in response.text

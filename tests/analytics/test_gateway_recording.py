"""The real gateway (in-process ASGI, fake upstreams on loopback) records every request once."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.db.models import Sum

from analytics.models import LogQuarantine, ProviderRollup, RequestLog, RouteRollup
from analytics.recorder import flush_all, recorder
from tests.conftest import auth
from tests.gateway.conftest import CHAT, provider

pytestmark = pytest.mark.django_db(transaction=True)

QUIET_BREAKER = {"consecutive_failures": 100, "min_calls": 1000}


def totals(model, **where) -> dict:
    fields = (
        ("requests", "successes", "failures", "caller_errors", "failovers", "retries", "calls")
        if model is RouteRollup
        else (
            "attempts",
            "successes",
            "failures",
            "caller_errors",
            "failovers",
            "retries",
            "served",
            "skipped",
            "tokens_in",
        )
    )
    return model.objects.filter(granularity="h", **where).aggregate(**{f: Sum(f) for f in fields})


async def test_a_burst_through_the_gateway_with_failovers_is_counted_exactly(
    gateway, configure, upstream_a, upstream_b, key, settings
):
    settings.ANALYTICS_FLUSH_INTERVAL_S = 60  # the explicit flush below writes everything
    await configure(
        {
            "providers": [
                provider("up-a", upstream_a.url + "/v1", breaker=QUIET_BREAKER),
                provider("up-b", upstream_b.url + "/v1", breaker=QUIET_BREAKER),
            ],
            "routes": [
                {
                    "name": "chain",
                    "capability": "chat",
                    "targets": [{"provider": "up-a", "model": "gpt-4o-mini"}, {"provider": "up-b", "model": "gpt-4o"}],
                }
            ],
        }
    )

    async def send(n: int, expect: int) -> None:
        for _ in range(n):
            response = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(key))
            assert response.status_code == expect

    await send(5, 200)  # served by up-a
    upstream_a.fault(status=500, times=6)
    await send(3, 200)  # up-a twice (a retry), then up-b
    upstream_a.fault(status=400, error_code="invalid_value", times=1)
    await send(1, 400)  # a caller error, never retried
    upstream_a.fault(status=503)
    upstream_b.fault(status=502)
    # Every target fails: up-a once (the retry budget, spent by now, passes over its retry: a
    # skip), then up-b twice.
    await send(2, 502)
    upstream_a.clear_faults()
    upstream_b.clear_faults()
    await flush_all()

    @sync_to_async
    def check() -> None:
        assert RequestLog.objects.count() == 11
        assert totals(RouteRollup) == {
            "requests": 11,
            "successes": 8,
            "failures": 2,
            "caller_errors": 1,
            "failovers": 5,
            "retries": 5,
            "calls": 21,
        }
        a = totals(ProviderRollup, provider="up-a")
        assert {
            k: a[k]
            for k in ("attempts", "successes", "failures", "caller_errors", "failovers", "retries", "served", "skipped")
        } == {
            "attempts": 14,
            "successes": 5,
            "failures": 8,
            "caller_errors": 1,
            "failovers": 5,
            "retries": 3,
            "served": 6,
            "skipped": 2,
        }
        b = totals(ProviderRollup, provider="up-b")
        assert (b["attempts"], b["successes"], b["failures"], b["failovers"], b["retries"], b["served"]) == (
            7,
            3,
            4,
            0,
            2,
            3,
        )
        raw_tokens = RequestLog.objects.filter(provider="up-b").aggregate(t=Sum("tokens_in"))["t"]
        assert raw_tokens > 0 and b["tokens_in"] == raw_tokens
        # the engine's own counts, as recorded on each successful request, agree with the rollups'
        assert RequestLog.objects.filter(outcome="success").aggregate(f=Sum("failovers"))["f"] == 3
        # ... and so do the counts on every row, failed requests included: one definition
        assert RequestLog.objects.aggregate(f=Sum("failovers"), r=Sum("retries")) == {"f": 5, "r": 5}

    await check()
    body = (await gateway.get("/api/analytics?window=5m", headers=auth(key))).json()
    assert (body["total"]["requests"], body["total"]["failovers"]) == (11, 5)
    assert body["providers"]["up-a"]["failures"] == 8


async def test_a_request_whose_model_carries_a_lone_surrogate_does_not_stop_the_request_log(
    gateway, configure, upstream_a, key, settings
):
    settings.ANALYTICS_FLUSH_INTERVAL_S = 60
    await configure({"providers": [provider("up-a", upstream_a.url + "/v1", breaker=QUIET_BREAKER)]})
    poison = b'{"model": "up-a/gpt-4o-mini\\ud800", "messages": [{"role": "user", "content": "hi"}]}'
    await gateway.post(
        "/v1/chat/completions", content=poison, headers={**auth(key), "Content-Type": "application/json"}
    )
    # a provider's error text with a NUL and a lone surrogate (PostgreSQL refuses both in JSON)
    upstream_a.fault(status=500, times=2, body='{"error": {"message": "bad \\u0000 \\ud800 news"}}')
    await gateway.post("/v1/chat/completions", json={**CHAT, "model": "up-a/gpt-4o-mini"}, headers=auth(key))
    normal = await gateway.post("/v1/chat/completions", json={**CHAT, "model": "up-a/gpt-4o-mini"}, headers=auth(key))
    assert normal.status_code == 200
    await flush_all()

    rows = await sync_to_async(list)(RequestLog.objects.values_list("request_id", "model", "route", "attempts"))
    assert normal.headers["X-Request-Id"] in {r[0] for r in rows}
    # whatever the edge answered the poison request, nothing is left unwritten in the queue
    assert recorder().queue == [] and not recorder().held
    assert all("\ud800" not in model + route for _, model, route, _ in rows)  # stored as valid UTF-8
    errors = [a["error"] for _, _, _, attempts in rows for a in attempts if a["status"] == 500]
    assert errors and all("news" in e and "\x00" not in e and "\ud800" not in e for e in errors)
    text = (await gateway.get("/metrics", headers=auth(key))).text
    assert "gateway_requests_total" in text
    quarantined = await sync_to_async(lambda: sum(q.count for q in LogQuarantine.objects.all()))()
    if quarantined:  # the bounds made it writable; were it refused, /metrics says so
        assert "gateway_request_log_quarantined_total" in text


async def test_junk_route_names_from_callers_collapse_into_one_rollup_dimension(
    gateway, configure, upstream_a, key, settings
):
    settings.ANALYTICS_FLUSH_INTERVAL_S = 60
    await configure(
        {
            "providers": [provider("up-a", upstream_a.url + "/v1", breaker=QUIET_BREAKER, models=["gpt-4o-mini"])],
            "routes": [
                {"name": "chain", "capability": "chat", "targets": [{"provider": "up-a", "model": "gpt-4o-mini"}]}
            ],
        }
    )
    for i in range(40):
        await gateway.post("/v1/chat/completions", json={**CHAT, "model": f"up-a/junk-{i}"}, headers=auth(key))
    for model in ("chain", "up-a/gpt-4o-mini", "gpt-4o-mini"):
        response = await gateway.post("/v1/chat/completions", json={**CHAT, "model": model}, headers=auth(key))
        assert response.status_code == 200
    await flush_all()

    @sync_to_async
    def check() -> None:
        # the raw log keeps what callers sent
        assert RequestLog.objects.filter(route__startswith="up-a/junk-").count() == 40
        routes = dict(RouteRollup.objects.filter(granularity="h").values_list("route").annotate(n=Sum("requests")))
        assert routes == {"(other)": 40, "chain": 1, "up-a/gpt-4o-mini": 1, "gpt-4o-mini": 1}
        assert set(ProviderRollup.objects.values_list("route", flat=True)) <= set(routes)

    await check()
    body = (await gateway.get("/api/analytics?window=5m", headers=auth(key))).json()
    assert set(body["routes"]) == {"(other)", "chain", "up-a/gpt-4o-mini", "gpt-4o-mini"}

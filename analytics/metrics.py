"""Prometheus metrics at `/metrics`, read from the database at scrape time.

Every worker process answers the same: counters and histograms are sums of the day rollups
(kept for ever, and added to in the same transaction as each batch of requests, so they only
grow); other apps add their metrics with `add_collector` in their AppConfig.ready (health's
gauges come from ProviderHealth as the monitor last wrote it). Nothing is counted in process
memory, so several workers, restarts and a separate monitor process change nothing.
Figures lag the requests by the recorder's flush interval (ANALYTICS_FLUSH_INTERVAL_S).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from project.database import db_call
from providers.gateway.auth import authenticate
from providers.gateway.errors import RequestError
from providers.openapi import Response, document

from . import histogram
from .models import ProviderRollup, RouteRollup
from .rollups import ATTEMPT_OUTCOMES, REQUEST_OUTCOMES
from .sums import all_time_sums

# Every third histogram bound (x1.73): fine enough for histogram_quantile, few series.
EXPORTED_BOUNDS = tuple(range(0, len(histogram.BOUNDS_MS), 3))

# Further metrics, read at scrape time (sync: they may query the database), after this app's own.
Collector = Callable[[], Iterable[Metric]]
_collectors: list[Collector] = []


def add_collector(collector: Collector) -> None:
    """Add `collector`'s metrics to /metrics (in an AppConfig.ready)."""
    if collector not in _collectors:
        _collectors.append(collector)


def _le(ms: float) -> str:
    return f"{ms / 1000:.6g}"


def _buckets(sums: dict[str, Any]) -> list[tuple[str, float]]:
    counts = [int(sums[c]) for c in histogram.COLUMNS]
    out: list[tuple[str, float]] = []
    seen = index = 0
    for bound in EXPORTED_BOUNDS:
        while index <= bound:
            seen += counts[index]
            index += 1
        out.append((_le(histogram.BOUNDS_MS[bound]), seen))
    out.append(("+Inf", sum(counts)))
    return out


def _totals(model: type, group: tuple[str, ...], columns: tuple[str, ...]) -> list[dict[str, Any]]:
    """All-time sums per `group` (day rollups are kept for ever), sorted, with the group's fields."""
    return [
        {**dict(zip(group, key, strict=True)), **sums}
        for key, sums in sorted(all_time_sums(model, group, columns).items())
    ]


class GatewayCollector:
    """A prometheus_client collector over the rollups, and the collectors other apps added."""

    def collect(self) -> Iterator[Metric]:
        yield from self.requests()
        yield from self.attempts()
        yield from self.request_log()
        for collector in _collectors:
            yield from collector()

    def requests(self) -> Iterator[Metric]:
        outcomes = tuple(REQUEST_OUTCOMES.items())
        columns = (*(c for _, c in outcomes), "latency_sum_ms", *histogram.COLUMNS)
        requests = CounterMetricFamily(
            "gateway_requests",
            "Client requests by route, serving provider (empty: none) and outcome",
            labels=["route", "provider", "outcome"],
        )
        latency = HistogramMetricFamily(
            "gateway_request_duration_seconds",
            "End-to-end latency of the requests that reached a provider, by route and serving provider",
            labels=["route", "provider"],
        )
        for row in _totals(RouteRollup, ("route", "provider"), columns):
            labels = [row["route"], row["provider"]]
            for outcome, column in outcomes:
                requests.add_metric([*labels, outcome], int(row[column]))
            latency.add_metric(labels, _buckets(row), row["latency_sum_ms"] / 1000)
        yield requests
        yield latency

    def attempts(self) -> Iterator[Metric]:
        outcomes = (*ATTEMPT_OUTCOMES.items(), ("skipped", "skipped"))
        usage = ("tokens_in", "tokens_out", "cost_nano", "failovers", "retries", "served")
        columns = (*(c for _, c in outcomes), *usage, "latency_sum_ms", *histogram.COLUMNS)
        labels_ = ["provider", "route"]
        attempts = CounterMetricFamily(
            "gateway_attempts",
            "Attempts sent to providers (or skipped) by provider, route and outcome",
            labels=[*labels_, "outcome"],
        )
        failovers = CounterMetricFamily(
            "gateway_failovers", "Requests that left a provider for another", labels=labels_
        )
        retries = CounterMetricFamily("gateway_retries", "Retries on the same provider", labels=labels_)
        served = CounterMetricFamily("gateway_served_requests", "Requests answered by a provider", labels=labels_)
        tokens = CounterMetricFamily(
            "gateway_tokens", "Tokens of the answers a provider served", labels=[*labels_, "direction"]
        )
        cost = CounterMetricFamily(
            "gateway_cost", "Cost of the answers a provider served (price unit of the model catalog)", labels=labels_
        )
        latency = HistogramMetricFamily(
            "gateway_attempt_duration_seconds", "Latency of attempts sent to a provider", labels=labels_
        )
        for row in _totals(ProviderRollup, ("provider", "route"), columns):
            labels = [row["provider"], row["route"]]
            for outcome, column in outcomes:
                attempts.add_metric([*labels, outcome], int(row[column]))
            failovers.add_metric(labels, int(row["failovers"]))
            retries.add_metric(labels, int(row["retries"]))
            served.add_metric(labels, int(row["served"]))
            tokens.add_metric([*labels, "in"], int(row["tokens_in"]))
            tokens.add_metric([*labels, "out"], int(row["tokens_out"]))
            cost.add_metric(labels, int(row["cost_nano"]) / 1e9)
            latency.add_metric(labels, _buckets(row), row["latency_sum_ms"] / 1000)
        yield from (attempts, failovers, retries, served, tokens, cost, latency)

    def request_log(self) -> Iterator[Metric]:
        from .models import LogQuarantine

        quarantined = CounterMetricFamily(
            "gateway_request_log_quarantined",
            "Request records the database refused as they were, by "
            "cause (the error's class); written in a degraded form (ASCII text) where possible",
            labels=["cause"],
        )
        degraded = CounterMetricFamily(
            "gateway_request_log_degraded",
            "Quarantined request records written in their degraded form (they still count)",
            labels=["cause"],
        )
        for row in LogQuarantine.objects.order_by("cause"):
            quarantined.add_metric([row.cause], row.count)
            degraded.add_metric([row.cause], row.degraded)
        yield from (quarantined, degraded)


def render_metrics() -> bytes:
    """The exposition text (sync: it reads the database)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GatewayCollector())
    return generate_latest(registry)


@document(
    "GET",
    "/metrics",
    "Prometheus metrics: requests, attempts, failovers, retries, latency "
    "histograms, tokens, cost, breaker states and health scores (no key when METRICS_PUBLIC)",
    scope="read",
    tags=["meta"],
    responses={200: Response("Prometheus text format 0.0.4", content_type="text/plain")},
    errors=(401, 403),
)
async def metrics(request: HttpRequest) -> HttpResponse:
    if not settings.METRICS_PUBLIC:
        try:
            await authenticate(request, "read")
        except RequestError as exc:
            return exc.response()
    return HttpResponse(await db_call(render_metrics), content_type=CONTENT_TYPE_LATEST)

"""The monitor's last reading of each provider (ProviderHealth), for the layers below that
show it without importing this app: /api/providers' status and score (`provider_health`, a
reader of providers.api) and the health gauges on /metrics (`health_metrics`, a collector of
analytics.metrics). Both are plugged in by HealthConfig.ready, and both read the database
(sync), so every worker answers the same.

This module registers no view: importing it in `ready` leaves the order in which the API's
views enter the OpenAPI document as the URL configuration makes it.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric, StateSetMetricFamily

from providers.api import HealthSummary

from .models import ProviderHealth

BREAKER_STATES = ("closed", "open", "half_open", "forced_open", "disabled")
STATUSES = ("healthy", "degraded", "unhealthy", "unknown", "disabled", "maintenance")


def provider_health() -> dict[str, HealthSummary]:
    """Each provider's status and score as the monitor last saved them, by name."""
    return {
        h.provider.name: HealthSummary(h.status, h.score) for h in ProviderHealth.objects.select_related("provider")
    }


def health_metrics() -> Iterator[Metric]:
    """Score, breaker state and status per provider, as gauges."""
    score = GaugeMetricFamily(
        "gateway_provider_health_score", "Health score (0-100) as the monitor last computed it", labels=["provider"]
    )
    breaker = StateSetMetricFamily("gateway_breaker_state", "Circuit breaker state", labels=["provider"])
    status = StateSetMetricFamily("gateway_provider_status", "Health status", labels=["provider"])
    for h in ProviderHealth.objects.select_related("provider").order_by("provider__name"):
        name = h.provider.name
        if h.score is not None:
            score.add_metric([name], float(h.score))
        breaker.add_metric([name], {s: h.breaker == s for s in BREAKER_STATES})
        status.add_metric([name], {s: h.status == s for s in STATUSES})
    yield from (score, breaker, status)

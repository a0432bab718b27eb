"""The demo configuration `make run` loads into an empty database: simulated providers only,
so the console has something alive to show with no account anywhere. Everything it creates
is marked `is_demo` and goes away in one action (`manage.py demo --remove`, the admin, or
the console's banner)."""

from __future__ import annotations

from django.db import transaction

from providers.config import apply_config, load_document
from providers.models import AuditLog, Provider, Route

DEMO_CONFIG = """
providers:
  - name: demo-fast
    kind: simulated
    models: [sim-small, sim-embed]
    priority: 1
    options: {latency_ms: 80, latency_jitter_ms: 40, error_rate: 0.01, seed: 1}
  - name: demo-flaky
    kind: simulated
    models: [sim-large]
    priority: 2
    options: {latency_ms: 250, latency_jitter_ms: 150, error_rate: 0.2, rate_limit_rate: 0.05,
              retry_after_s: 5, seed: 2, outage: {period_s: 600, down_s: 90}}
  - name: demo-slow
    kind: simulated
    models: [sim-large]
    priority: 3
    options: {latency_ms: 900, latency_jitter_ms: 300, error_rate: 0.02, seed: 3}
routes:
  - name: demo
    capability: chat
    strategy: priority
    description: Demo route over simulated providers
    targets:
      - {provider: demo-flaky, model: sim-large}
      - {provider: demo-fast, model: sim-small}
      - {provider: demo-slow, model: sim-large}
"""


def load_demo() -> bool:
    """Load the demo into an empty configuration; False (and nothing done) otherwise."""
    if Provider.objects.exists() or Route.objects.exists():
        return False
    with transaction.atomic():
        apply_config(load_document(DEMO_CONFIG), actor="demo")
        Provider.objects.filter(name__startswith="demo-").update(is_demo=True)
        Route.objects.filter(name="demo").update(is_demo=True)
    return True


def remove_demo(actor: str = "demo") -> int:
    """Delete everything the demo created; returns how many rows went."""
    with transaction.atomic():
        routes = list(Route.objects.filter(is_demo=True))
        providers = list(Provider.objects.filter(is_demo=True))
        objs: list[Route | Provider] = [*routes, *providers]
        for obj in objs:
            obj.delete()
            AuditLog.objects.create(
                actor=actor,
                action="delete",
                object_type=type(obj).__name__.lower(),
                object_name=obj.name,
                changes={"demo": True},
            )
    return len(routes) + len(providers)


def demo_present() -> bool:
    return Provider.objects.filter(is_demo=True).exists()

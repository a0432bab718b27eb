"""The configuration loads with a thousand providers on one route (SQLite refuses an
expression of a thousand OR terms: the targets come with their providers in one query)."""

from __future__ import annotations

import pytest

from providers.models import Provider, Route, RouteTarget
from providers.snapshot import load_snapshot

pytestmark = pytest.mark.django_db


def test_a_route_over_1100_providers_loads_with_every_target():
    Provider.objects.bulk_create(
        Provider(name=f"p{i:04d}", kind="simulated", configured_models=["m"]) for i in range(1100)
    )
    route = Route.objects.create(name="wide", capability="chat")
    ids = Provider.objects.order_by("name").values_list("id", flat=True)
    RouteTarget.objects.bulk_create(
        RouteTarget(route=route, provider_id=pk, model="m", position=i) for i, pk in enumerate(ids)
    )
    snapshot = load_snapshot()
    targets = snapshot.routes["wide"].targets
    assert len(targets) == 1100
    assert [t.provider for t in targets[:3]] == ["p0000", "p0001", "p0002"]  # in position order

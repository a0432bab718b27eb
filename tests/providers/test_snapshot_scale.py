"""Every reader of the routes works with a thousand providers on one route: the snapshot, the
configuration export and import, the console's routes page and the admin's route list. (SQLite
refuses an expression of a thousand OR terms, which a second prefetch of the targets'
providers builds: `Route.objects.with_targets()` joins them in the targets' query.)"""

from __future__ import annotations

import io

import pytest
import yaml
from django.core.management import call_command
from django.urls import reverse

from providers.models import Provider, Route, RouteTarget
from providers.snapshot import load_snapshot

pytestmark = pytest.mark.django_db

WIDE = 1100


@pytest.fixture
def wide() -> Route:
    Provider.objects.bulk_create(
        Provider(name=f"p{i:04d}", kind="simulated", configured_models=["m"]) for i in range(WIDE)
    )
    route = Route.objects.create(name="wide", capability="chat")
    ids = Provider.objects.order_by("name").values_list("id", flat=True)
    RouteTarget.objects.bulk_create(
        RouteTarget(route=route, provider_id=pk, model="m", position=i) for i, pk in enumerate(ids)
    )
    return route


def test_a_route_over_1100_providers_loads_with_every_target(wide):
    targets = load_snapshot().routes["wide"].targets
    assert len(targets) == WIDE
    assert [t.provider for t in targets[:3]] == ["p0000", "p0001", "p0002"]  # in position order


def test_a_route_over_1100_providers_is_exported_and_imported(wide, tmp_path):
    out = io.StringIO()
    call_command("export_config", stdout=out)
    doc = yaml.safe_load(out.getvalue())
    (route,) = doc["routes"]
    assert len(route["targets"]) == WIDE
    route["name"] = "wide-copy"
    path = tmp_path / "wide.yaml"
    path.write_text(yaml.safe_dump(doc))
    call_command("import_config", str(path), stdout=io.StringIO())
    copy = Route.objects.get(name="wide-copy")
    assert copy.targets.count() == WIDE and Route.objects.get(name="wide").targets.count() == WIDE


@pytest.mark.django_db(transaction=True)  # the console reads on its own thread's connection
def test_the_console_and_the_admin_list_a_route_over_1100_providers(wide, admin_client_logged):
    page = admin_client_logged.get(reverse("health-config-routes"))
    assert page.status_code == 200 and b"wide" in page.content
    listed = admin_client_logged.get(reverse("admin:providers_route_changelist"))
    assert listed.status_code == 200 and b"wide" in listed.content

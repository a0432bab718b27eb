"""Route names from callers never make unbounded analytics dimensions."""

from __future__ import annotations

import secrets
from types import SimpleNamespace

import pytest
from asgiref.sync import sync_to_async

from analytics import queries
from analytics.dimensions import OTHER, rollup_route
from analytics.models import ErrorRollup, ProviderRollup, RequestLog, RouteRollup
from analytics.recorder import flush_all, record_request
from providers.runtime import install_runtime

from .conftest import NOW, attempt, record

SNAPSHOT = SimpleNamespace(
    routes={"chain": object()},
    providers={
        "openai-main": SimpleNamespace(models=("gpt-4o", "gpt-4o-mini")),
        "local": SimpleNamespace(models=("llama3",)),
    },
)


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("chain", "chain"),
        ("openai-main/gpt-4o", "openai-main/gpt-4o"),
        ("openai-main/", "openai-main/"),
        ("llama3", "llama3"),
        ("", ""),
        ("openai-main/junk-1", OTHER),
        ("nobody/gpt-4o", OTHER),
        ("unknown-route", OTHER),
        ("chain/x", OTHER),
        ("x" * 200, OTHER),
    ],
)
def test_only_names_the_configuration_knows_are_kept_apart(name, kept):
    assert rollup_route(name, SNAPSHOT) == kept


@pytest.mark.django_db(transaction=True)
async def test_two_thousand_junk_route_names_make_one_rollup_route_and_a_small_analytics_page(settings):
    settings.ANALYTICS_FLUSH_INTERVAL_S = 60
    install_runtime(SimpleNamespace(snapshot=SNAPSHOT))  # what resolved the requests
    for i in range(2000):
        name = f"openai-main/{secrets.token_hex(6)}" if i % 2 else f"route-{i}"
        record_request(
            record(
                [attempt("openai-main", "failure", 5, status=404, reason="http_404")],
                route=name,
                at=NOW,
                request_id=f"junk{i}",
            )
        )
    record_request(record([attempt("openai-main", model="gpt-4o")], route="chain", at=NOW))
    await flush_all()

    @sync_to_async
    def check() -> None:
        assert RequestLog.objects.count() == 2001
        assert RequestLog.objects.filter(route__startswith="openai-main/").count() == 1000  # raw names kept
        for model in (RouteRollup, ProviderRollup):
            assert set(model.objects.values_list("route", flat=True)) == {OTHER, "chain"}, model
        assert set(ErrorRollup.objects.values_list("route", flat=True)) == {OTHER}
        page = queries.page("5m", now=NOW)
        assert set(page["routes"]) == {OTHER, "chain"} and page["routes"][OTHER]["requests"] == 2000
        assert len(page["breakdown"]) == 2

    await check()

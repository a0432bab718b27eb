"""Kept request and response bodies in the request log: written beside their RequestLog rows
(RequestBody) in the same batch only while REQUEST_BODY_RETENTION_DAYS keeps them, bounded,
pruned by that retention (all of them once it is 0), and shown by `GET /api/requests/<id>` to
admin keys only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command

from analytics.models import RequestBody, RequestLog
from analytics.recorder import flush_all, write_batch
from analytics.records import BODY_MARKER_ROOM, bound, degrade
from analytics.retention import apply_retention
from tests.conftest import auth
from tests.gateway.conftest import CHAT, provider

from .conftest import NOW, attempt, record

pytestmark = pytest.mark.django_db


def with_bodies(request_id: str, age: timedelta = timedelta(0), request: str = '{"q": 1}', response: str = "ok"):
    return bound(
        record(
            [attempt("a")],
            request_id=request_id,
            at=NOW - age,
            request_body=request,
            response_body=response,
        )
    )


def test_bodies_are_written_beside_their_rows_when_kept(settings):
    settings.REQUEST_BODY_RETENTION_DAYS = 7
    write_batch([with_bodies("one", request='{"messages": []}', response='{"id": "x"}'), record([attempt("a")])])

    assert RequestLog.objects.count() == 2
    (row,) = RequestBody.objects.all()
    assert (row.request_id, row.at, row.request_body, row.response_body) == (
        "one",
        NOW,
        '{"messages": []}',
        '{"id": "x"}',
    )


def test_no_body_row_is_written_while_bodies_are_not_kept():
    write_batch([with_bodies("one")])
    assert RequestLog.objects.count() == 1
    assert RequestBody.objects.count() == 0


def test_bound_drops_nul_keeps_newlines_and_caps_a_body(settings):
    settings.REQUEST_BODY_MAX_BYTES = 50
    rec = with_bodies("one", request="line one\nline\x00 two\t!", response="x" * 1000)
    assert rec.request_body == "line one\nline two\t!"
    assert rec.response_body == "x" * (50 + BODY_MARKER_ROOM)
    assert degrade(record([attempt("a")], request_body="café \ud800")).request_body == "caf\\xe9 \\ud800"


def test_the_request_log_columns_are_not_the_bodies():
    from analytics.records import COLUMNS

    assert "request_body" not in COLUMNS and "response_body" not in COLUMNS


def test_bodies_older_than_the_retention_are_pruned_and_all_once_it_is_off(settings):
    settings.REQUEST_BODY_RETENTION_DAYS = 2
    settings.ANALYTICS_PRUNE_CHUNK = 2
    write_batch([with_bodies(f"old-{i}", timedelta(days=3, minutes=i)) for i in range(3)])
    write_batch([with_bodies("new", timedelta(days=1))])

    assert apply_retention(now=NOW)["bodies"] == 3
    assert list(RequestBody.objects.values_list("request_id", flat=True)) == ["new"]
    assert RequestLog.objects.count() == 4  # the log keeps its own retention (7 days)
    assert apply_retention(now=NOW)["bodies"] == 0
    assert apply_retention(now=NOW + timedelta(days=1, seconds=1))["bodies"] == 1

    write_batch([with_bodies("kept-then-off")])
    settings.REQUEST_BODY_RETENTION_DAYS = 0
    assert apply_retention(now=NOW + timedelta(seconds=1))["bodies"] == 1
    assert RequestBody.objects.count() == 0


def test_a_body_goes_with_its_row_when_the_log_keeps_less_than_the_bodies(settings):
    settings.REQUEST_BODY_RETENTION_DAYS = 30
    settings.ANALYTICS_RAW_RETENTION_DAYS = 7
    write_batch([with_bodies("old", timedelta(days=8)), with_bodies("recent", timedelta(days=6))])

    deleted = apply_retention(now=NOW)
    assert (deleted["raw"], deleted["bodies"]) == (1, 1)
    assert list(RequestBody.objects.values_list("request_id", flat=True)) == ["recent"]
    assert list(RequestLog.objects.values_list("request_id", flat=True)) == ["recent"]
    settings.ANALYTICS_RAW_RETENTION_DAYS = 0  # the log kept for ever: the bodies' own retention
    write_batch([with_bodies("older", timedelta(days=31))])
    assert apply_retention(now=NOW)["bodies"] == 1 and RequestLog.objects.filter(request_id="older").exists()


def test_the_prune_command_says_that_bodies_are_not_kept(capsys):
    call_command("prune_analytics")
    assert "bodies: deleted 0 rows (REQUEST_BODY_RETENTION_DAYS is 0: none are kept)" in capsys.readouterr().out


# -- the API -------------------------------------------------------------------------------------


@sync_to_async
def issued(scopes: list[str]) -> str:
    import secrets

    from providers.models import ApiKey

    return ApiKey.issue(f"key-{secrets.token_hex(3)}", scopes)[1]


@pytest.fixture
async def routed(configure, upstream_a, settings):
    settings.ANALYTICS_FLUSH_INTERVAL_S = 60  # the explicit flush writes everything
    await configure(
        {
            "providers": [provider("up-a", upstream_a.url + "/v1")],
            "routes": [{"name": "chain", "capability": "chat", "targets": ["up-a/gpt-4o-mini"]}],
        }
    )


@pytest.mark.django_db(transaction=True)
async def test_the_api_shows_bodies_to_an_admin_key_and_not_to_a_read_key(gateway, routed, settings):
    settings.REQUEST_BODY_RETENTION_DAYS = 1
    admin, reader = await issued(["gateway", "admin"]), await issued(["read"])
    answer = await gateway.post("/v1/chat/completions", json=CHAT, headers=auth(admin))
    assert answer.status_code == 200
    await flush_all()
    path = f"/api/requests/{answer.headers['X-Request-Id']}"

    shown = (await gateway.get(path, headers=auth(admin))).json()
    assert '"hello there"' in shown["request_body"] and shown["response_body"] == answer.text
    hidden = await gateway.get(path, headers=auth(reader))
    assert hidden.status_code == 200 and hidden.json()["route"] == "chain"
    assert "request_body" not in hidden.json() and "response_body" not in hidden.json()

    settings.REQUEST_BODY_RETENTION_DAYS = 0  # off: nothing is shown, even before the next prune
    off = (await gateway.get(path, headers=auth(admin))).json()
    assert off["request_body"] is None and off["response_body"] is None


@pytest.mark.django_db(transaction=True)
async def test_the_schema_documents_the_bodies_as_admin_only(gateway, key):
    schema = (await gateway.get("/api/schema", headers=auth(key))).json()
    detail = schema["components"]["schemas"]["RequestDetail"]["properties"]
    for name in ("request_body", "response_body"):
        assert "admin keys only" in detail[name]["description"]
    assert "request_body" not in schema["components"]["schemas"]["RequestDetail"].get("required", [])

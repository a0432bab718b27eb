"""The configuration pages: typed provider and route forms saved through the importer (its
rules, its audit rows), write-only secrets, env: references with whether they are set, the
connection test, the targets' order, deletion, and who may do what."""

from __future__ import annotations

import re

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group

from health.access import OPERATORS
from providers.models import AuditLog, Provider, Route, RouteTarget

from .conftest import htmx

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "sk-live-abcdefghijklmnop1234"


@sync_to_async
def audit_rows(object_type: str) -> list[tuple[str, str, str, list[str]]]:
    rows = AuditLog.objects.filter(object_type=object_type).order_by("at", "id")
    return [(r.actor, r.action, r.object_name, sorted(r.changes)) for r in rows]


@sync_to_async
def provider(name: str) -> Provider:
    return Provider.objects.prefetch_related("secrets").get(name=name)


@sync_to_async
def chain(route: str) -> list[tuple[str, str]]:
    rows = RouteTarget.objects.filter(route__name=route).order_by("position")
    return [(t.provider.name, t.model) for t in rows.select_related("provider")]


def form(**fields: object) -> dict[str, object]:
    """A provider form as a browser posts it: every field, most left empty (their defaults)."""
    data: dict[str, object] = {"kind": "simulated", "enabled": "on", "priority": "1", "weight": "1"}
    data.update(fields)
    return data


async def test_a_superuser_creates_a_simulated_provider_that_the_importer_saves_and_audits(simulated, login, users):
    client = await login(users["admin"])
    response = await client.post(
        "/config/providers/new",
        form(name="drill", models="sim-chat, sim-embed", capabilities=["chat"], options__error_rate="0.25",
             breaker__consecutive_failures="3", options_extra='{"seed": 4}'),
    )  # fmt: skip
    assert response.status_code == 303 and response["Location"] == "/config/providers/drill"
    row = await provider("drill")
    assert (row.kind, row.configured_models, row.capabilities) == ("simulated", ["sim-chat", "sim-embed"], ["chat"])
    assert row.options == {"seed": 4, "error_rate": 0.25}
    assert row.breaker_consecutive_failures == 3 and row.retry_max_attempts == 2  # left empty: the default
    actor, action, name, changed = (await audit_rows("provider"))[-1]
    assert (actor, action, name) == ("boss", "create", "drill") and "options" in changed
    page = (await client.get(response["Location"])).content.decode()
    assert "Provider drill created." in page
    # runtime refreshed at once: the running process routes to it
    assert "drill" in (await simulated.current()).providers


async def test_a_bad_value_is_refused_at_its_field_with_the_importers_message_and_nothing_is_saved(
    simulated, login, users
):
    client = await login(users["admin"])
    response = await client.post(
        "/config/providers/new", form(name="bad", breaker__failure_rate="2", options__error_rate="0.9",
                                      options__timeout_rate="0.5"),
    )  # fmt: skip
    assert response.status_code == 400
    html = response.content.decode()
    assert "Nothing was saved" in html
    # the importer's own words, each at the field whose config path it names
    assert '<ul class="errorlist" id="id_breaker__failure_rate_error"><li>must be &gt; 0 and &lt;= 1</li>' in html
    assert re.search(r'id="id_options__error_rate_error"><li>error_rate \+ [^<]* must not exceed 1</li>', html)
    assert not await sync_to_async(Provider.objects.filter(name="bad").exists)()
    assert all(name != "bad" for _, _, name, _ in await audit_rows("provider"))


async def test_a_name_that_exists_is_not_overwritten_by_a_new_provider(simulated, login, users):
    client = await login(users["admin"])
    response = await client.post("/config/providers/new", form(name="sim-a", priority="9"))
    assert (
        response.status_code == 400 and "a provider named &#x27;sim-a&#x27; exists already" in response.content.decode()
    )
    assert (await provider("sim-a")).priority == 1


async def test_the_key_is_never_rendered_back_and_an_empty_input_keeps_it(simulated, login, users):
    client = await login(users["admin"])
    created = await client.post(
        "/config/providers/new",
        {"name": "keyed", "kind": "openai", "base_url": "https://api.openai.com/v1", "api_key": SECRET,
         "enabled": "on", "models": "gpt-4o-mini"},
    )  # fmt: skip
    assert created.status_code == 303
    page = (await client.get("/config/providers/keyed")).content.decode()
    assert SECRET not in page and SECRET[-4:] in page  # masked: head and last four
    assert re.search(r'<input type="password" name="api_key"[^>]*>', page)
    assert 'value="' + SECRET not in page
    saved = await client.post(
        "/config/providers/keyed",
        {"kind": "openai", "base_url": "https://api.openai.com/v1", "api_key": "", "enabled": "on",
         "models": "gpt-4o-mini", "priority": "5"},
    )  # fmt: skip
    assert saved.status_code == 303
    row = await provider("keyed")
    assert row.priority == 5
    assert [await sync_to_async(s.value)() for s in row.secrets.all()] == [SECRET]
    assert (await audit_rows("provider"))[-1] == ("boss", "update", "keyed", ["priority"])


async def test_an_env_key_that_is_not_set_is_warned_about_on_the_list_and_the_form(
    simulated, login, users, monkeypatch
):
    monkeypatch.delenv("CONSOLE_TEST_UNSET_KEY", raising=False)
    monkeypatch.setenv("CONSOLE_TEST_SET_KEY", "sk-from-env-1234567890")
    client = await login(users["admin"])
    for name, env in (("unset-env", "CONSOLE_TEST_UNSET_KEY"), ("set-env", "CONSOLE_TEST_SET_KEY")):
        response = await client.post(
            "/config/providers/new", {"name": name, "kind": "openai", "api_key": f"env:{env}", "enabled": "on"}
        )
        assert response.status_code == 303, response.content.decode()[:2000]
    listing = (await client.get("/config/providers")).content.decode()
    unset_row = re.search(r'<tr id="config-provider-unset-env">.*?</tr>', listing, re.S)
    set_row = re.search(r'<tr id="config-provider-set-env">.*?</tr>', listing, re.S)
    assert unset_row and "env:CONSOLE_TEST_UNSET_KEY is not set" in unset_row.group(0)
    assert set_row and "not set" not in set_row.group(0)
    page = (await client.get("/config/providers/unset-env")).content.decode()
    assert "env:CONSOLE_TEST_UNSET_KEY is not set in the server&#x27;s environment" in page
    assert re.search(r"<code>env:CONSOLE_TEST_UNSET_KEY</code> <span class=\"pill status-unhealthy\">not set", page)


async def test_saving_the_form_as_it_is_shown_changes_nothing(simulated, login, users):
    client = await login(users["admin"])
    before = await audit_rows("provider")
    response = await client.post(
        "/config/providers/sim-a",
        form(models="sim-small", capabilities=["chat"], options__latency_ms="5", options__seed="1"),
    )
    assert response.status_code == 303
    assert await audit_rows("provider") == before
    assert "Nothing changed." in (await client.get("/config/providers/sim-a")).content.decode()


async def test_the_kind_select_swaps_in_the_kinds_own_fields_with_how_to_make_it_fail(simulated, login, users):
    client = await login(users["admin"])
    response = await client.get("/config/providers/new?kind=simulated", headers=htmx("kind-options"))
    html = response.content.decode()
    assert html.lstrip().startswith('<fieldset id="kind-options"')
    assert 'name="options__error_rate"' in html and "1 fails every call" in html
    other = (await client.get("/config/providers/new?kind=openai", headers=htmx("kind-options"))).content.decode()
    assert 'name="options__error_rate"' not in other and 'name="options_extra"' in other


async def test_test_connection_runs_one_probe_and_shows_it_in_place(simulated, login, users, configure):
    client = await login(users["operator"])
    response = await client.post("/config/providers/sim-a/test", headers=htmx())
    html = response.content.decode()
    assert response.status_code == 200 and 'id="test-result"' in html and "Connected" in html and " ms" in html
    failing = await client.post(
        "/config/providers/new", form(name="down", options__error_rate="1"), headers={}
    )  # an operator may not create
    assert failing.status_code == 403
    admin = await login(users["admin"])
    assert (await admin.post("/config/providers/new", form(name="down", options__error_rate="1"))).status_code == 303
    html = (await admin.post("/config/providers/down/test", headers=htmx())).content.decode()
    assert "Failed" in html
    assert [r[:3] for r in await sync_to_async(list)(
        AuditLog.objects.filter(action="check_now").order_by("id").values_list("actor", "object_name", "changes")
    )] == [("oper", "sim-a", {"ok": True}), ("boss", "down", {"ok": False})]  # fmt: skip


async def test_staff_see_the_forms_read_only_and_cannot_save(simulated, login, users):
    client = await login(users["staff"])
    listing = await client.get("/config/providers")
    assert listing.status_code == 200 and "New provider" not in listing.content.decode()
    page = (await client.get("/config/providers/sim-a")).content.decode()
    assert '<fieldset class="config-body" disabled>' in page and "Save changes" not in page
    assert (await client.post("/config/providers/sim-a", form(priority="7"))).status_code == 403
    assert (await client.get("/config/providers/new")).status_code == 403
    assert (await client.post("/config/providers/sim-a/test")).status_code == 403
    assert (await provider("sim-a")).priority == 1
    await client.alogout()
    anonymous = await client.get("/config/routes")
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/")


def route_form(name: str | None, targets: list[tuple[str, str]], **fields: str) -> dict[str, object]:
    data: dict[str, object] = {"capability": "chat", "strategy": "priority", "enabled": "on", **fields}
    if name is not None:
        data["name"] = name
    data["target_provider"] = [p for p, _ in targets]
    data["target_model"] = [m for _, m in targets]
    data["target_weight"] = ["" for _ in targets]
    return data


async def test_a_route_is_created_from_existing_providers_and_reordered_by_the_posted_order(simulated, login, users):
    client = await login(users["admin"])
    new = await client.get("/config/routes/new")
    html = new.content.decode()
    assert '<optgroup label="sim-a" data-provider="sim-a"><option value="sim-small"' in html
    response = await client.post("/config/routes/new", route_form("both", [("sim-a", "sim-small"), ("sim-b", "")]))
    assert response.status_code == 303 and response["Location"] == "/config/routes/both"
    assert await chain("both") == [("sim-a", "sim-small"), ("sim-b", "")]
    response = await client.post("/config/routes/both", route_form(None, [("sim-b", ""), ("sim-a", "sim-small")]))
    assert response.status_code == 303
    assert await chain("both") == [("sim-b", ""), ("sim-a", "sim-small")]
    assert [r[1:] for r in await audit_rows("route")] == [
        ("create", "both", ["targets"]),
        ("update", "both", ["targets"]),
    ]
    listing = (await client.get("/config/routes")).content.decode()
    assert re.search(r"<li><code>sim-b</code></li><li><code>sim-a/sim-small</code></li>", listing)


@sync_to_async
def route_retry(name: str) -> tuple[object, object, object]:
    row = Route.objects.get(name=name)
    return (row.retry_max_attempts, row.retry_base_delay_s, row.retry_max_delay_s)


async def test_a_routes_own_retries_are_set_shown_again_checked_and_cleared_on_the_form(simulated, login, users):
    client = await login(users["admin"])
    retries = {"retry__max_attempts": "3", "retry__base_delay_s": "0.2", "retry__max_delay_s": "2"}
    created = await client.post("/config/routes/new", route_form("retried", [("sim-a", "")], **retries))
    assert created.status_code == 303
    assert await route_retry("retried") == (3, 0.2, 2.0)
    shown = (await client.get("/config/routes/retried")).content.decode()
    assert re.search(r'name="retry__max_attempts"[^>]*value="3"', shown)
    assert re.search(r'name="retry__base_delay_s"[^>]*value="0.2"', shown)
    # the importer's rule, at its field: a longest backoff under the first is refused
    bad = await client.post(
        "/config/routes/retried",
        route_form(None, [("sim-a", "")], retry__base_delay_s="5", retry__max_delay_s="1"),
    )
    assert bad.status_code == 400 and await route_retry("retried") == (3, 0.2, 2.0)
    assert "has-error" in bad.content.decode()
    cleared = await client.post("/config/routes/retried", route_form(None, [("sim-a", "")]))
    assert cleared.status_code == 303
    assert await route_retry("retried") == (None, None, None)  # each provider's own again


async def test_a_row_button_without_javascript_moves_the_row_and_saves_nothing(simulated, login, users):
    client = await login(users["admin"])
    data = route_form("draft", [("sim-a", "sim-small"), ("sim-b", "")])
    data["op"] = "up:1"
    html = (await client.post("/config/routes/new", data)).content.decode()
    first, second = re.findall(r'name="target_provider".*?<option value="([\w-]+)" selected', html, re.S)[:2]
    assert (first, second) == ("sim-b", "sim-a")
    assert not await sync_to_async(Route.objects.filter(name="draft").exists)()
    data["op"] = "add"
    html = (await client.post("/config/routes/new", data)).content.decode()
    assert html.count('name="target_provider"') == 3


async def test_an_unknown_provider_in_a_target_is_named_on_its_row(simulated, login, users):
    client = await login(users["admin"])
    response = await client.post("/config/routes/new", route_form("r", [("sim-a", ""), ("ghost", "x")]))
    assert response.status_code == 400
    html = response.content.decode()
    assert re.search(r'<ul class="errorlist row-errors"><li>provider: unknown provider &#x27;ghost&#x27;</li>', html)
    assert not await sync_to_async(Route.objects.filter(name="r").exists)()


async def test_a_provider_in_a_route_is_not_deleted_and_a_route_is_after_confirmation(simulated, login, users):
    client = await login(users["admin"])
    assert (await client.post("/config/routes/new", route_form("only", [("sim-a", "")]))).status_code == 303
    confirm = (await client.get("/config/providers/sim-a/delete")).content.decode()
    assert "It is a target of only" in confirm
    refused = await client.post("/config/providers/sim-a/delete")
    assert refused.status_code == 400 and await sync_to_async(Provider.objects.filter(name="sim-a").exists)()
    assert "Delete the route only?" in (await client.get("/config/routes/only/delete")).content.decode()
    assert (await client.post("/config/routes/only/delete")).status_code == 303
    assert (await client.post("/config/providers/sim-a/delete")).status_code == 303
    assert not await sync_to_async(Provider.objects.filter(name="sim-a").exists)()
    assert ("boss", "delete", "only", []) in await audit_rows("route")
    assert ("boss", "delete", "sim-a", []) in await audit_rows("provider")


@pytest.mark.django_db(transaction=False)  # migrations' rows survive (a transactional test flushes them)
def test_the_operators_group_exists_after_migrating():
    assert Group.objects.filter(name=OPERATORS).exists()

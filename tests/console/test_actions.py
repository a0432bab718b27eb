"""Each action's effect, its AuditLog row under the user's name and its event; plain form
posts redirect with a message, htmx posts get the changed fragments."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.utils import timezone

from health import pulls
from health.models import HealthEvent, ProbeResult
from providers.models import AuditLog, MaintenanceWindow, Provider, ProviderModel
from tests.fakes.ollama import FakeOllama
from tests.fakes.sdwebui import FakeSDWebUI

from .conftest import htmx, settle

pytestmark = pytest.mark.django_db(transaction=True)


@sync_to_async
def audit_rows(action: str) -> list[tuple[str, str, dict]]:
    return list(AuditLog.objects.filter(action=action).values_list("actor", "object_name", "changes"))


@sync_to_async
def action_events(name: str) -> list[tuple[str, str, str]]:
    return list(
        HealthEvent.objects.filter(kind="action", provider_name=name)
        .order_by("at", "id")
        .values_list("new", "actor", "reason")
    )


@sync_to_async
def provider_row(name: str) -> Provider:
    return Provider.objects.get(name=name)


async def test_check_now_probes_and_is_audited(simulated, login, users):
    client = await login(users["operator"])
    response = await client.post("/providers/sim-a/check")
    assert response.status_code == 303 and response["Location"] == "/providers/sim-a"
    assert await sync_to_async(ProbeResult.objects.filter(provider__name="sim-a").count)() == 1
    assert await audit_rows("check_now") == [("oper", "sim-a", {"ok": True})]
    assert await action_events("sim-a") == [("check_now", "oper", "")]
    page = (await client.get("/providers/sim-a")).content.decode()
    assert "Checked sim-a: ok in" in page  # the message, shown once on the next page


async def test_an_htmx_action_answers_with_the_changed_fragments_out_of_band(simulated, login, users):
    client = await login(users["operator"])
    response = await client.post("/providers/sim-a/check", headers=htmx())
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html
    assert '<div id="flash"' in html and "Checked sim-a: ok in" in html
    for part in ('id="summary-sim-a"', 'id="config-sim-a"', 'id="events-sim-a"'):
        assert part in html
    assert "check_now" in html  # the new event is in the history


async def test_reset_closes_a_breaker_and_is_audited(simulated, login, users):
    await simulated.engine.force_open("sim-a", 600)
    await settle(simulated)
    client = await login(users["operator"])
    assert (await client.post("/providers/sim-a/reset")).status_code == 303
    assert simulated.engine.snapshot("sim-a").state == "closed"
    assert await audit_rows("reset_breaker") == [("oper", "sim-a", {})]
    assert [e[0] for e in await action_events("sim-a")] == ["reset_breaker"]


async def test_force_open_holds_the_breaker_open_for_the_minutes_given(simulated, login, users):
    client = await login(users["operator"])
    before = time.time()
    response = await client.post("/providers/sim-a/force-open", {"minutes": "15"}, headers=htmx())
    assert response.status_code == 200
    snap = simulated.engine.snapshot("sim-a")
    assert snap.state == "forced_open"
    # 15 minutes from the moment of the action, which lies between `before` and now (the
    # snapshot turns the monotonic deadline into wall time: allow a millisecond for that)
    assert snap.open_until is not None
    assert before + 15 * 60 - 0.001 <= snap.open_until <= time.time() + 15 * 60 + 0.001
    assert await audit_rows("force_open") == [("oper", "sim-a", {"minutes": 15})]
    assert await action_events("sim-a") == [("force_open", "oper", "for 15 minutes")]
    assert "forced open" in response.content.decode()  # the summary's breaker


@pytest.mark.parametrize("minutes", ["", "0", "abc", "10081"])
async def test_force_open_refuses_bad_minutes(simulated, login, users, minutes):
    client = await login(users["operator"])
    response = await client.post("/providers/sim-a/force-open", {"minutes": minutes}, headers=htmx())
    assert response.status_code == 400
    assert "flash-error" in response.content.decode()
    assert simulated.engine.snapshot("sim-a").state == "closed"
    assert await audit_rows("force_open") == []


async def test_disable_and_enable_change_the_provider_and_are_audited(simulated, login, users):
    client = await login(users["admin"])
    response = await client.post("/providers/sim-a/disable", headers=htmx())
    assert response.status_code == 200
    assert (await provider_row("sim-a")).enabled is False
    assert (await simulated.current()).providers["sim-a"].enabled is False  # taken in at once
    html = response.content.decode()
    assert "status-disabled" in html and 'action="/providers/sim-a/enable"' in html
    assert (await client.post("/providers/sim-a/enable")).status_code == 303
    assert (await provider_row("sim-a")).enabled is True
    assert await audit_rows("disable") == [("boss", "sim-a", {"enabled": [True, False]})]
    assert await audit_rows("enable") == [("boss", "sim-a", {"enabled": [False, True]})]
    assert [e[0] for e in await action_events("sim-a")] == ["disable", "enable"]


async def test_a_maintenance_window_starts_now_and_ends_on_demand(simulated, login, users):
    client = await login(users["admin"])
    before = timezone.now()
    response = await client.post(
        "/providers/sim-a/maintenance/start", {"minutes": "45", "reason": "driver upgrade"}, headers=htmx()
    )
    assert response.status_code == 200
    window = await sync_to_async(MaintenanceWindow.objects.get)(provider__name="sim-a")
    assert window.created_by == "boss" and window.reason == "driver upgrade"
    # 45 minutes from the moment of the action, which lies between `before` and now
    assert before + timedelta(minutes=45) <= window.ends_at <= timezone.now() + timedelta(minutes=45)
    assert (await simulated.current()).providers["sim-a"].maintenance is True
    html = response.content.decode()
    assert "status-maintenance" in html and "driver upgrade" in html
    assert (await client.post("/providers/sim-a/maintenance/end")).status_code == 303
    assert (await simulated.current()).providers["sim-a"].maintenance is False
    rows = await audit_rows("maintenance_start")
    assert rows[0][:2] == ("boss", "sim-a") and rows[0][2]["minutes"] == 45
    assert await audit_rows("maintenance_end") == [("boss", "sim-a", {"ended": 1})]


async def test_removing_the_demo_deletes_its_providers(configure, rt, login, users):
    from providers.demo import demo_present, load_demo

    await sync_to_async(load_demo)()
    client = await login(users["admin"])
    response = await client.post("/demo/remove")
    assert response.status_code == 303 and response["Location"] == "/"
    assert await sync_to_async(demo_present)() is False
    assert len(await sync_to_async(list)(AuditLog.objects.filter(actor="boss", action="delete"))) == 4


@pytest.fixture
def ollama():
    with FakeOllama(pull_step_s=0.01) as server:
        yield server


async def test_pulling_an_ollama_model_streams_progress_to_the_end(configure, rt, login, users, ollama):
    await configure({"providers": [{"name": "local", "kind": "ollama", "base_url": ollama.url}]})
    layer = get_channel_layer()
    listener = await layer.new_channel()
    await layer.group_add("provider.local", listener)
    client = await login(users["operator"])
    response = await client.post("/providers/local/pull", {"model": "qwen2.5:0.5b"}, headers=htmx())
    assert response.status_code == 200
    assert "Pulling qwen2.5:0.5b onto local" in response.content.decode()
    state = await asyncio.wait_for(pulls.task("local"), 10)
    assert state["done"] and state["error"] == "" and state["percent"] == 100.0
    pushed = []
    with contextlib.suppress(TimeoutError):
        while True:
            pushed.append(await asyncio.wait_for(layer.receive(listener), 0.2))
    assert all(m["type"] == "pull.progress" and m["model"] == "qwen2.5:0.5b" for m in pushed)
    assert [m["done"] for m in pushed].count(True) == 1 and pushed[-1]["done"] and pushed[-1]["percent"] == 100.0
    assert all(m["percent"] < 100 for m in pushed[:-1])  # 100% only once it is done
    assert any(0 < m["percent"] < 100 for m in pushed)
    assert "qwen2.5:0.5b" in ollama.models
    assert await audit_rows("pull_model") == [("oper", "local", {"model": "qwen2.5:0.5b"})]
    assert [e[2] for e in await action_events("local")] == ["started pulling qwen2.5:0.5b", "pulled qwen2.5:0.5b"]
    page = (await client.get("/providers/local", headers=htmx("pull-local"))).content.decode()
    assert page.lstrip().startswith('<div id="pull-local"') and 'value="100.0"' in page and "done" in page


async def test_a_failed_pull_says_why(configure, rt, login, users, ollama):
    await configure({"providers": [{"name": "local", "kind": "ollama", "base_url": ollama.url}]})
    client = await login(users["operator"])
    await client.post("/providers/local/pull", {"model": "no-such-model"})
    state = await asyncio.wait_for(pulls.task("local"), 10)
    assert state["done"] and "file does not exist" in state["error"]
    page = (await client.get("/providers/local")).content.decode()
    assert "file does not exist" in page


async def test_a_pull_that_failed_before_the_answer_says_so_not_pulling(
    configure, rt, login, users, ollama, monkeypatch
):
    await configure({"providers": [{"name": "local", "kind": "ollama", "base_url": ollama.url}]})
    start = pulls.start

    async def start_and_finish(*args, **kwargs):  # the pull fails before the answer is rendered
        job = await start(*args, **kwargs)
        await asyncio.wait_for(asyncio.shield(job), 10)
        return job

    monkeypatch.setattr(pulls, "start", start_and_finish)
    client = await login(users["operator"])
    response = await client.post("/providers/local/pull", {"model": "no-such-model"}, headers=htmx())
    html = response.content.decode()
    assert response.status_code == 200
    flash = html[html.index('<div id="flash"') : html.index("</div>", html.index('<div id="flash"'))]
    assert "The pull of no-such-model failed" in flash and "Pulling" not in flash
    assert "data-version=" in flash  # the page keeps the newer of this and the socket's pushes


async def test_only_ollama_providers_pull(simulated, login, users):
    client = await login(users["operator"])
    response = await client.post("/providers/sim-a/pull", {"model": "llama3.2"}, headers=htmx())
    assert response.status_code == 400 and "only Ollama providers pull models" in response.content.decode()


async def test_switching_the_sd_webui_model_loads_it_and_is_audited(configure, rt, login, users):
    with FakeSDWebUI() as sd:
        await configure({"providers": [{"name": "sd", "kind": "sdwebui", "base_url": sd.url}]})
        wanted = sd.checkpoints[1]["title"]
        client = await login(users["operator"])
        page = (await client.get("/providers/sd")).content.decode()
        assert sd.checkpoints[0]["title"] in page  # the loaded checkpoint
        response = await client.post("/providers/sd/sd-model", {"model": wanted}, headers=htmx())
        assert response.status_code == 200 and f"sd loaded {wanted}" in response.content.decode()
        assert sd.options["sd_model_checkpoint"] == wanted
        assert await audit_rows("switch_model") == [("oper", "sd", {"model": wanted})]
        bad = await client.post("/providers/sd/sd-model", {"model": "nope.safetensors"}, headers=htmx())
        assert bad.status_code == 400 and "did not load nope.safetensors" in bad.content.decode()


async def test_discovered_servers_are_offered_and_registered_by_a_superuser(
    configure, rt, login, users, ollama, settings
):
    settings.DISCOVERY_HOSTS = ["127.0.0.1"]
    settings.DISCOVERY_OLLAMA_PORTS = [ollama.port]
    settings.DISCOVERY_SDWEBUI_PORTS = []
    settings.DISCOVERY_OPENAI_PORTS = []
    client = await login(users["admin"])
    page = (await client.get("/discover")).content.decode()
    assert ollama.url in page and 'value="local-ollama-' in page
    response = await client.post(
        "/discover/register", {"name": "found", "kind": "ollama", "base_url": ollama.url, "models": ["llama3.2:latest"]}
    )
    assert response.status_code == 303 and response["Location"] == "/providers/found"
    provider = await provider_row("found")
    assert provider.kind == "ollama" and provider.discovered and provider.base_url == ollama.url
    assert await audit_rows("create") == [("boss", "found", {"discovered": ollama.url, "models": ["llama3.2:latest"]})]
    assert await action_events("found") == [("register", "boss", f"discovered ollama at {ollama.url}")]
    again = (await client.get("/discover")).content.decode()
    assert "Registered as" in again
    twice = await client.post("/discover/register", {"name": "other", "kind": "ollama", "base_url": ollama.url})
    assert twice.status_code == 303 and twice["Location"] == "/providers/found"
    bad = await client.post(
        "/discover/register", {"name": "Bad Name", "kind": "ollama", "base_url": "http://127.0.0.1:1"}
    )
    assert bad.status_code == 303 and bad["Location"] == "/discover"
    assert not await sync_to_async(Provider.objects.filter(base_url="http://127.0.0.1:1").exists)()


async def test_the_provider_page_lists_models_with_context_windows(simulated, login, users):
    await sync_to_async(ProviderModel.objects.create)(
        provider=await provider_row("sim-a"), name="big-model", context_window=131072, source="discovered"
    )
    client = await login(users["staff"])
    html = (await client.get("/providers/sim-a")).content.decode()
    assert "big-model" in html and "131072 tokens" in html

"""The provider form's flap damping fields: two typed number inputs in the health-check
section, empty meaning the global default (which they name); what is posted is saved through the
importer, and a bad value is refused at its field with a clear message, not a 500."""

from __future__ import annotations

import re

import pytest
from asgiref.sync import sync_to_async

from providers.models import Provider

pytestmark = pytest.mark.django_db(transaction=True)


@sync_to_async
def flap(name: str) -> tuple[int | None, float | None]:
    row = Provider.objects.get(name=name)
    return row.health_flap_checks, row.health_flap_seconds


def sim_a(**fields: object) -> dict[str, object]:
    """sim-a's form (tests/console/conftest.py) as a browser posts it, with `fields` over it."""
    data: dict[str, object] = {
        "kind": "simulated",
        "enabled": "on",
        "priority": "1",
        "weight": "1",
        "models": "sim-small",
        "capabilities": ["chat"],
        "options__latency_ms": "5",
        "options__seed": "1",
    }
    data.update(fields)
    return data


def health_fieldset(html: str) -> str:
    match = re.search(r"<legend>Health check</legend>(.*?)</fieldset>", html, re.S)
    assert match, "no health-check fieldset"
    return match[1]


def number_input(html: str, name: str) -> str:
    match = re.search(rf'<input type="number" name="{name}"[^>]*>', html)
    assert match, f"no number input {name}"
    return match[0]


async def test_the_health_check_section_has_two_number_inputs_naming_the_global_default(
    simulated, login, users, settings
):
    settings.HEALTH_FLAP_CHECKS = 3
    settings.HEALTH_FLAP_SECONDS = 12.5
    client = await login(users["admin"])
    response = await client.get("/config/providers/sim-a")
    assert response.status_code == 200
    section = health_fieldset(response.content.decode())
    checks = number_input(section, "health_check__flap_checks")
    seconds = number_input(section, "health_check__flap_seconds")
    assert 'placeholder="global default (3)"' in checks and "value=" not in checks
    assert 'placeholder="global default (12.5)"' in seconds and "value=" not in seconds
    assert "Empty: the global default (3)." in section


async def test_a_post_sets_them_and_the_form_shows_them_back(simulated, login, users):
    client = await login(users["admin"])
    response = await client.post(
        "/config/providers/sim-a", sim_a(health_check__flap_checks="1", health_check__flap_seconds="30")
    )
    assert response.status_code == 303, response.content.decode()[:2000]
    assert await flap("sim-a") == (1, 30.0)
    # the running process has it at once (the monitor's damping reads the snapshot)
    entry = (await simulated.current()).providers["sim-a"]
    assert (entry.flap_checks, entry.flap_seconds) == (1, 30.0)
    section = health_fieldset((await client.get("/config/providers/sim-a")).content.decode())
    assert 'value="1"' in number_input(section, "health_check__flap_checks")
    assert 'value="30.0"' in number_input(section, "health_check__flap_seconds")


async def test_emptying_them_puts_the_provider_back_on_the_global_default(simulated, login, users):
    client = await login(users["admin"])
    await client.post("/config/providers/sim-a", sim_a(health_check__flap_checks="4", health_check__flap_seconds="9"))
    assert await flap("sim-a") == (4, 9.0)
    response = await client.post(
        "/config/providers/sim-a", sim_a(health_check__flap_checks="", health_check__flap_seconds="")
    )
    assert response.status_code == 303
    assert await flap("sim-a") == (None, None)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("health_check__flap_checks", "0", "must be &gt;= 1 and &lt;= 1000"),
        ("health_check__flap_checks", "-1", "must be &gt;= 1 and &lt;= 1000"),
        ("health_check__flap_checks", "1001", "must be &gt;= 1 and &lt;= 1000"),
        ("health_check__flap_checks", "three", "Enter a whole number."),
        ("health_check__flap_checks", "1.5", "Enter a whole number."),
        ("health_check__flap_seconds", "-1", "must be &gt;= 0 and &lt;= 86400"),
        ("health_check__flap_seconds", "a minute", "Enter a number."),
    ],
)
async def test_a_bad_value_is_refused_at_its_field_and_nothing_is_saved(simulated, login, users, field, value, message):
    client = await login(users["admin"])
    response = await client.post("/config/providers/sim-a", sim_a(**{field: value}))
    assert response.status_code == 400
    html = response.content.decode()
    assert "Nothing was saved" in html
    assert f'<ul class="errorlist" id="id_{field}_error"><li>{message}</li>' in html
    assert await flap("sim-a") == (None, None)


async def test_a_new_provider_can_be_created_with_them(simulated, login, users):
    client = await login(users["admin"])
    response = await client.post(
        "/config/providers/new",
        {"name": "drill", "kind": "simulated", "enabled": "on", "health_check__flap_checks": "5"},
    )
    assert response.status_code == 303
    assert await flap("drill") == (5, None)

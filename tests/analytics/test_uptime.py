"""Uptime per provider per window: time healthy or degraded over time monitored, from the
status history, maintenance left out (health/uptime.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from health.models import HealthEvent, ProviderHealth
from health.uptime import measure, uptime, uptime_of
from providers.models import MaintenanceWindow, Provider

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
HOUR = 3600.0


def test_degraded_counts_as_up_and_unhealthy_as_down():
    result = measure([(600, "degraded"), (1200, "unhealthy"), (1800, "healthy")], "healthy", 0, HOUR, [])
    assert result.monitored_s == HOUR and result.up_s == HOUR - 600 and result.ratio == round(5 / 6, 6)


def test_unknown_and_disabled_time_is_not_monitored():
    result = measure([(900, "healthy"), (1800, "disabled"), (2700, "unhealthy")], "unknown", 0, HOUR, [])
    assert result.monitored_s == 1800 and result.up_s == 900 and result.ratio == 0.5


def test_maintenance_is_left_out_whether_a_window_or_a_status():
    pauses = [(0, 600), (300, 900)]  # overlapping windows count once
    result = measure([(1800, "maintenance"), (2400, "unhealthy")], "unhealthy", 0, HOUR, pauses)
    assert result.maintenance_s == 900 + 600
    assert result.monitored_s == HOUR - 1500 and result.up_s == 0 and result.ratio == 0.0


def test_nothing_monitored_has_no_ratio_rather_than_zero_or_a_hundred():
    assert measure([], "unknown", 0, HOUR, []).ratio is None
    assert measure([], "healthy", 0, HOUR, [(0, HOUR)]).ratio is None


def test_changes_outside_the_window_are_clamped_to_it():
    result = measure([(-100, "unhealthy"), (HOUR / 2, "healthy"), (HOUR + 50, "unhealthy")], "healthy", 0, HOUR, [])
    assert result.up_s == HOUR / 2 and result.monitored_s == HOUR


def status(provider: Provider, minutes_ago: float, old: str, new: str) -> None:
    HealthEvent.objects.create(
        provider=provider,
        provider_name=provider.name,
        at=NOW - timedelta(minutes=minutes_ago),
        kind=HealthEvent.Kind.STATUS,
        old=old,
        new=new,
    )


@pytest.mark.django_db
def test_each_provider_is_measured_from_its_own_history():
    flaky = Provider.objects.create(name="flaky", kind="openai")
    steady = Provider.objects.create(name="steady", kind="openai")
    fresh = Provider.objects.create(name="fresh", kind="openai")
    status(flaky, 300, "unknown", "healthy")  # before the window: sets its start
    status(flaky, 45, "healthy", "unhealthy")
    status(flaky, 30, "unhealthy", "healthy")
    status(steady, 90, "unknown", "degraded")
    MaintenanceWindow.objects.create(
        provider=steady, starts_at=NOW - timedelta(minutes=20), ends_at=NOW - timedelta(minutes=10)
    )
    status(fresh, 15, "unknown", "unhealthy")
    result = uptime(NOW - timedelta(hours=1), NOW)
    assert set(result) == {"flaky", "fresh", "steady"}
    assert result["flaky"].ratio == 0.75 and result["flaky"].monitored_s == HOUR
    assert result["steady"].ratio == 1.0 and result["steady"].monitored_s == HOUR - 600
    assert result["steady"].maintenance_s == 600
    assert result["fresh"].ratio == 0.0 and result["fresh"].monitored_s == 900  # unknown before its first check
    assert uptime(NOW - timedelta(hours=1), NOW, ["flaky"]).keys() == {"flaky"}
    assert uptime_of("nobody", NOW - timedelta(hours=1), NOW) is None


@pytest.mark.django_db
def test_a_provider_with_no_recorded_change_holds_its_current_status_since_it_was_created():
    quiet = Provider.objects.create(name="quiet", kind="openai")
    Provider.objects.filter(pk=quiet.pk).update(created_at=NOW - timedelta(minutes=30))
    ProviderHealth.objects.create(provider=quiet, status="healthy")
    Provider.objects.create(name="never", kind="openai")
    result = uptime(NOW - timedelta(hours=1), NOW)
    assert result["quiet"].monitored_s == 1800 and result["quiet"].ratio == 1.0
    assert result["never"].ratio is None  # never checked: unknown, not down

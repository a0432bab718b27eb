"""The alert rules as pure functions: what counts as bad, and what one evaluation sends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from health.alerts import (
    BAD,
    GOOD,
    NEUTRAL,
    QUIET,
    SILENCED,
    Counts,
    Observation,
    Rules,
    decide,
    verdict,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RULES = Rules(failure_threshold=3, success_threshold=2, reminder_interval_s=60, notify_recovery=True)


def obs(status="healthy", breaker="closed", enabled=True, maintenance=False):
    return Observation("p1", status, breaker, enabled, maintenance, "why", T0)


def run(seen, rules=RULES, counts=QUIET, step_s=1):
    sent = []
    for i, v in enumerate(seen):
        counts, event = decide(counts, rules, v, T0 + timedelta(seconds=i * step_s))
        sent.append(event)
    return counts, sent


def test_unhealthy_or_an_open_breaker_is_bad():
    assert verdict(obs("unhealthy")) == BAD
    assert verdict(obs("healthy", "open")) == BAD
    assert verdict(obs("degraded", "closed")) == GOOD


def test_a_breaker_forced_open_by_an_operator_is_not_bad():
    assert verdict(obs("healthy", "forced_open")) == GOOD


def test_disabled_and_maintenance_silence_even_a_failing_provider():
    assert verdict(obs("unhealthy", "open", enabled=False)) == SILENCED
    assert verdict(obs("unhealthy", "open", maintenance=True)) == SILENCED
    assert verdict(obs("maintenance")) == SILENCED


def test_unknown_and_half_open_are_neither_bad_nor_good():
    assert verdict(obs("unknown")) == NEUTRAL
    assert verdict(obs("degraded", "half_open")) == NEUTRAL


def test_the_alert_goes_out_on_the_threshold_th_bad_evaluation_and_only_once():
    _, sent = run([BAD] * 6, step_s=1)
    assert sent == [None, None, "alert", None, None, None]


def test_a_good_evaluation_before_the_threshold_starts_the_count_again():
    counts, sent = run([BAD, BAD, GOOD, BAD, BAD])
    assert sent == [None] * 5
    assert counts.bad == 2 and not counts.firing


def test_a_reminder_goes_out_every_interval_while_still_bad():
    _, sent = run([BAD] * 10, step_s=30)  # alert at 60 s, reminders at 120 s and 180 s, 240 s
    assert sent.count("alert") == 1
    assert [i for i, e in enumerate(sent) if e == "reminder"] == [4, 6, 8]


def test_no_reminder_without_an_interval():
    _, sent = run([BAD] * 10, rules=Rules(3, 2, None, True), step_s=3600)
    assert sent.count("reminder") == 0


def test_one_recovery_after_the_success_threshold_then_the_next_incident_alerts_again():
    counts, sent = run([BAD, BAD, BAD, GOOD, BAD, GOOD, GOOD, GOOD, BAD, BAD, BAD])
    assert sent == [None, None, "alert", None, None, None, "recovery", None, None, None, "alert"]
    assert counts.firing


def test_recovery_without_notify_recovery_ends_the_incident_silently():
    counts, sent = run([BAD, BAD, BAD, GOOD, GOOD], rules=Rules(3, 2, 60, False))
    assert sent == [None, None, "alert", None, None]
    assert counts == QUIET


def test_silence_ends_the_incident_without_a_notice_and_the_counts_start_afresh():
    counts, sent = run([BAD, BAD, BAD, SILENCED, BAD, BAD])
    assert sent == [None, None, "alert", None, None, None]
    assert counts == Counts(bad=2)


def test_neutral_evaluations_keep_the_counts():
    counts, sent = run([BAD, BAD, NEUTRAL, NEUTRAL, BAD])
    assert sent == [None, None, None, None, "alert"]
    assert counts.firing

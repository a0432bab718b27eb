from __future__ import annotations

import pytest

from health.scores import Inputs, Weights, debounce, score, status_of


def inputs(**kw):
    base = dict(
        enabled=True,
        maintenance=False,
        breaker="closed",
        cooling=None,
        probe="ok",
        success_rate=1.0,
        calls=20,
        p95_ms=1500.0,
        target_p95_ms=3000.0,
    )
    base.update(kw)
    return Inputs(**base)


def test_a_perfect_provider_scores_100_with_its_parts_named():
    result = score(inputs())
    assert result.total == 100.0
    assert result.parts == {"probe": 40.0, "latency": 30.0, "reliability": 30.0, "state_factor": 1.0}


def test_slowness_and_failures_lower_their_own_parts():
    result = score(inputs(probe="slow", p95_ms=6000.0, success_rate=0.8))
    assert result.parts["probe"] == 20.0
    assert result.parts["latency"] == 15.0  # 30 x 3000/6000
    assert result.parts["reliability"] == 24.0
    assert result.total == 59.0


@pytest.mark.parametrize(
    ("breaker", "cooling", "factor"),
    [
        ("half_open", None, 0.3),
        ("open", None, 0.0),
        ("forced_open", None, 0.0),
        ("closed", "rate_limited", 0.0),
        ("closed", "exhausted", 0.0),
    ],
)
def test_the_state_factor_scales_the_whole(breaker, cooling, factor):
    result = score(inputs(breaker=breaker, cooling=cooling))
    assert result.parts["state_factor"] == factor
    assert result.total == round(100 * factor, 1)


def test_custom_weights_are_applied():
    assert score(inputs(probe="failed"), Weights(probe=20, latency=40, reliability=40)).total == 80.0


def test_no_data_means_no_score_and_unknown_status():
    blank = inputs(probe=None, success_rate=None, calls=0, p95_ms=None)
    assert score(blank).total is None
    assert status_of(blank)[0] == "unknown"


@pytest.mark.parametrize(
    ("rate", "status"),
    [
        (0.95, "healthy"),
        (0.901, "healthy"),
        (0.9, "degraded"),
        (0.7, "degraded"),
        (0.69, "unhealthy"),
        (0.0, "unhealthy"),
    ],
)
def test_status_follows_the_success_rate_thresholds(rate, status):
    assert status_of(inputs(success_rate=rate))[0] == status


def test_operator_statuses_win():
    assert status_of(inputs(enabled=False))[0] == "disabled"
    assert status_of(inputs(maintenance=True, success_rate=0.1))[0] == "maintenance"


def test_a_status_change_needs_two_consecutive_evaluations():
    first = debounce("healthy", "", 0, "unhealthy")
    assert (first.status, first.pending, first.count, first.changed) == ("healthy", "unhealthy", 1, False)
    second = debounce(first.status, first.pending, first.count, "unhealthy")
    assert (second.status, second.changed) == ("unhealthy", True)


def test_one_bad_evaluation_between_good_ones_does_not_flip_the_status():
    first = debounce("healthy", "", 0, "unhealthy")
    back = debounce(first.status, first.pending, first.count, "healthy")
    assert (back.status, back.pending, back.changed) == ("healthy", "", False)
    again = debounce(back.status, back.pending, back.count, "unhealthy")
    assert again.changed is False


def test_operator_decisions_and_the_first_measurement_take_effect_at_once():
    assert debounce("healthy", "", 0, "maintenance").changed
    assert debounce("maintenance", "", 0, "healthy").changed
    assert debounce("unknown", "", 0, "degraded").changed

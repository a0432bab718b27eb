"""Full-jitter backoff and break durations (scenario 12)."""

from __future__ import annotations

import random
import statistics

import pytest

from providers.engine import backoff_bound
from providers.engine.backoff import break_duration, full_jitter, jittered_at_least


@pytest.mark.parametrize("attempt", range(1, 7))
def test_every_delay_is_between_zero_and_the_capped_bound(attempt):
    rng = random.Random(attempt)
    bound = min(8.0, 0.5 * 2 ** (attempt - 1))
    assert backoff_bound(attempt, 0.5, 8.0) == bound
    delays = [full_jitter(attempt, 0.5, 8.0, rng) for _ in range(1000)]
    assert all(0.0 <= d <= bound for d in delays)
    assert max(delays) > 0.9 * bound  # the whole range is used, not a corner of it


@pytest.mark.parametrize("attempt", range(1, 7))
def test_the_mean_of_ten_thousand_delays_is_half_the_bound(attempt):
    rng = random.Random(100 + attempt)
    bound = backoff_bound(attempt, 0.5, 8.0)
    mean = statistics.fmean(full_jitter(attempt, 0.5, 8.0, rng) for _ in range(10_000))
    assert mean == pytest.approx(bound / 2, rel=0.03)


def test_no_delay_is_negative_or_above_the_cap_even_for_huge_attempt_numbers():
    rng = random.Random(9)
    delays = [full_jitter(n, 0.5, 8.0, rng) for n in (1, 10, 100, 10_000) for _ in range(100)]
    assert min(delays) >= 0.0 and max(delays) <= 8.0


def test_attempts_are_one_based():
    with pytest.raises(ValueError):
        backoff_bound(0, 0.5, 8.0)


def test_a_server_hint_is_a_minimum_with_up_to_twenty_percent_on_top():
    rng = random.Random(1)
    waits = [jittered_at_least(1.5, 0.2, rng) for _ in range(1000)]
    assert min(waits) >= 1.5 and max(waits) <= 1.8


def test_break_durations_double_from_thirty_seconds_and_stop_at_the_cap():
    rng = random.Random(2)
    for k, (low, high) in {1: (30, 36), 2: (60, 72), 3: (120, 144), 5: (300, 360), 40: (300, 360)}.items():
        durations = [break_duration(k, 30.0, 300.0, 0.2, rng) for _ in range(200)]
        assert low <= min(durations) and max(durations) <= high

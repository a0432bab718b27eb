"""The time-bucketed sliding window."""

from __future__ import annotations

import pytest

from providers.engine.window import SlidingWindow


def test_it_counts_calls_failures_and_slow_calls():
    window = SlidingWindow(60.0, 12)
    window.add(0.0, failure=True, slow=True)
    window.add(1.0, failure=False)
    window.add(2.0, failure=False, slow=True)
    counts = window.counts(3.0)
    assert (counts.calls, counts.failures, counts.slow) == (3, 1, 2)
    assert counts.failure_rate == pytest.approx(1 / 3) and counts.success_rate == pytest.approx(2 / 3)


def test_a_bucket_leaves_the_window_when_it_is_twelve_buckets_old():
    window = SlidingWindow(60.0, 12)
    window.add(0.0, failure=True)
    window.add(30.0, failure=True)
    assert window.counts(59.9).calls == 2
    assert window.counts(60.0).calls == 1  # the [0, 5) bucket left
    assert window.counts(90.0).calls == 0


def test_a_long_quiet_spell_empties_everything():
    window = SlidingWindow(60.0, 12)
    for t in range(60):
        window.add(float(t), failure=t % 2 == 0)
    assert window.counts(10_000.0).calls == 0
    window.add(10_000.0, failure=False)
    assert window.counts(10_000.0).calls == 1


def test_an_empty_window_has_no_rates():
    counts = SlidingWindow(60.0).counts(0.0)
    assert (counts.calls, counts.failure_rate, counts.success_rate) == (0, None, None)


def test_a_window_needs_a_positive_span():
    with pytest.raises(ValueError):
        SlidingWindow(0.0)

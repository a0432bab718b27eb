"""The analytics page's window when none is asked for: the smallest that holds all the data."""

from __future__ import annotations

from datetime import timedelta

import pytest

from analytics import queries
from analytics.recorder import write_batch
from analytics.retention import apply_retention
from analytics.windows import fitting_window

from .conftest import NOW, attempt, record


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (timedelta(minutes=2), "5m"),
        (timedelta(minutes=20), "1h"),
        (timedelta(hours=5), "24h"),
        (timedelta(days=3), "24h"),  # older than the default: the default
    ],
)
def test_the_smallest_window_that_holds_the_oldest_data(age, expected):
    assert fitting_window(NOW - age, NOW) == expected


def test_no_data_opens_on_an_hour():
    assert fitting_window(None, NOW) == "1h"


@pytest.mark.django_db
def test_the_oldest_data_is_read_to_the_minute_from_the_rollups():
    assert queries.oldest_data(NOW) is None
    write_batch([record([attempt("a")], at=NOW - timedelta(minutes=m)) for m in (37, 3)])
    oldest = queries.oldest_data(NOW)
    assert oldest == (NOW - timedelta(minutes=37)).replace(second=0, microsecond=0)
    assert fitting_window(oldest, NOW) == "1h"


@pytest.mark.django_db
def test_past_the_minute_rollups_the_oldest_data_is_read_to_the_hour():
    write_batch([record([attempt("a")], at=NOW - timedelta(days=3, minutes=5))])
    apply_retention(now=NOW)
    oldest = queries.oldest_data(NOW)
    assert oldest is not None and oldest.minute == 0 and NOW - oldest > timedelta(days=3)
    assert fitting_window(oldest, NOW) == "24h"

from __future__ import annotations

import pytest

from health.lease import Lease
from tests.conftest import Clock

pytestmark = pytest.mark.django_db


def test_only_one_holder_leads_until_its_lease_expires():
    clock = Clock(wall=1000.0)
    a = Lease("monitor", "a", 10, now=clock)
    b = Lease("monitor", "b", 10, now=clock)
    assert a.acquire() is True
    assert b.acquire() is False
    clock.advance(5)
    assert a.acquire() is True  # renewed
    clock.advance(9)
    assert b.acquire() is False  # a renewed 9 s ago
    clock.advance(2)
    assert b.acquire() is True  # a stopped renewing: b takes over
    assert a.acquire() is False
    assert b.current_holder() == "b"


def test_a_released_lease_is_taken_at_once():
    clock = Clock(wall=50.0)
    a = Lease("monitor", "a", 10, now=clock)
    b = Lease("monitor", "b", 10, now=clock)
    assert a.acquire()
    a.release()
    assert b.acquire()

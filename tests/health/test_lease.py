from __future__ import annotations

import pytest

from health.lease import Lease

pytestmark = pytest.mark.django_db


def test_only_one_holder_leads_until_its_lease_expires():
    clock = [1000.0]
    a = Lease("monitor", "a", 10, now=lambda: clock[0])
    b = Lease("monitor", "b", 10, now=lambda: clock[0])
    assert a.acquire() is True
    assert b.acquire() is False
    clock[0] += 5
    assert a.acquire() is True  # renewed
    clock[0] += 9
    assert b.acquire() is False  # a renewed 9 s ago
    clock[0] += 2
    assert b.acquire() is True  # a stopped renewing: b takes over
    assert a.acquire() is False
    assert b.current_holder() == "b"


def test_a_released_lease_is_taken_at_once():
    clock = [50.0]
    a = Lease("monitor", "a", 10, now=lambda: clock[0])
    b = Lease("monitor", "b", 10, now=lambda: clock[0])
    assert a.acquire()
    a.release()
    assert b.acquire()

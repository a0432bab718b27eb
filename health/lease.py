"""Monitor leadership: a lease row in the database, taken and renewed with one atomic UPDATE.

Whoever holds an unexpired lease leads; a monitor that stops renewing (killed, hung, cut
off) loses it when it expires and another takes over. The database is the one service every
process shares, on SQLite as on PostgreSQL, so no other coordination is needed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q

from .models import MonitorLease


class Lease:
    def __init__(self, name: str, holder: str, ttl_s: float, *, now: Callable[[], float] = time.time) -> None:
        self.name = name
        self.holder = holder
        self.ttl_s = ttl_s
        self.now = now

    def acquire(self) -> bool:
        """Take or renew the lease; True while this holder leads."""
        now = datetime.fromtimestamp(self.now(), tz=UTC)
        expires = now + timedelta(seconds=self.ttl_s)
        taken = MonitorLease.objects.filter(Q(holder=self.holder) | Q(expires_at__lte=now), name=self.name)
        # acquired_at changes only when leadership changes hands
        if taken.filter(holder=self.holder).update(expires_at=expires):
            return True
        if taken.update(holder=self.holder, expires_at=expires, acquired_at=now):
            return True
        try:
            with transaction.atomic():
                MonitorLease.objects.create(name=self.name, holder=self.holder, expires_at=expires, acquired_at=now)
            return True
        except IntegrityError:
            return False

    def release(self) -> None:
        MonitorLease.objects.filter(name=self.name, holder=self.holder).update(
            expires_at=datetime.fromtimestamp(self.now(), tz=UTC)
        )

    def current_holder(self) -> str | None:
        row = MonitorLease.objects.filter(name=self.name).first()
        if row is None or row.expires_at <= datetime.fromtimestamp(self.now(), tz=UTC):
            return None
        return row.holder

"""A non-waiting bulkhead per breaker key (resilience.md §7).

When all `limit` slots are taken the caller skips to the fallback at once; nothing queues.
Slots are leases with an expiry, so a slot that is never given back (a stream whose `finish`
the gateway forgot) frees itself instead of shrinking the bulkhead for ever. Expired leases are
swept only when the bulkhead looks full, keeping the common path to a dict insert.
"""

from __future__ import annotations


class Bulkhead:
    __slots__ = ("_leases", "_next", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._leases: dict[int, float] = {}
        self._next = 0

    @property
    def in_use(self) -> int:
        return len(self._leases)

    def has_room(self, now: float) -> bool:
        if len(self._leases) < self.limit:
            return True
        self._sweep(now)
        return len(self._leases) < self.limit

    def try_acquire(self, now: float, expires: float) -> int | None:
        """A lease id, or None when full. Never waits."""
        if len(self._leases) >= self.limit:
            self._sweep(now)
            if len(self._leases) >= self.limit:
                return None
        self._next += 1
        self._leases[self._next] = expires
        return self._next

    def release(self, lease: int) -> None:
        self._leases.pop(lease, None)

    def extend(self, lease: int, expires: float) -> None:
        if lease in self._leases:
            self._leases[lease] = expires

    def _sweep(self, now: float) -> None:
        for lease in [k for k, exp in self._leases.items() if exp <= now]:
            del self._leases[lease]

"""Free time for adapters that poll a queue: a clock and a sleep to hand them, where sleeping
moves the clock at once and every wait is recorded, so a test sees the waits an adapter chose
and its deadline without waiting for any of it."""

from __future__ import annotations

import asyncio


class FreeTime:
    def __init__(self, start: float = 100.0) -> None:
        self.now = start
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)  # still a point where the task can be cancelled

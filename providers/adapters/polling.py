"""Waiting for a queued job: the delays between status polls, and the loop that keeps to the
attempt's time.

Queue APIs (fal.ai's queue, the ffmpeg composition service) answer a submission with a job id;
the adapter then asks for the job's status until it ends. `PollSchedule` is the pure maths of
the waits (the first wait, growing by a factor, capped); `poll_until` runs the loop on a clock
and a sleep the adapter was given, so a test can make time free. The loop never waits past the
deadline: the last wait is cut to the time left, each poll is given only the time left, and a
poll that times out in that last time is the deadline running out (`expired()`), not the
provider failing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["Clock", "PollSchedule", "Sleep", "loop_clock", "poll_until"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


def loop_clock() -> float:
    """The running loop's time: what `asyncio.sleep` and `asyncio.timeout` measure, so the
    engine's virtual-time loop (FakeClock) moves it too."""
    return asyncio.get_running_loop().time()


@dataclass(frozen=True, slots=True)
class PollSchedule:
    """Seconds to wait before each status poll: `first_s`, then times `factor` each poll, at
    most `max_s`. Options: `poll_interval_s`, `poll_backoff`, `poll_max_interval_s`."""

    first_s: float = 0.5
    factor: float = 1.5
    max_s: float = 5.0

    def delay(self, polls_done: int) -> float:
        """The wait before poll number `polls_done + 1`."""
        return min(self.max_s, self.first_s * self.factor ** min(polls_done, 64))

    @classmethod
    def from_options(cls, options: Mapping[str, Any], *, first_s: float = 0.5, max_s: float = 5.0) -> PollSchedule:
        first = float(options.get("poll_interval_s", first_s))
        return cls(
            first_s=first,
            factor=float(options.get("poll_backoff", 1.5)),
            max_s=max(first, float(options.get("poll_max_interval_s", max_s))),
        )

    @staticmethod
    def check_options(options: Mapping[str, Any]) -> None:
        """ValueError naming the option, for poll settings an adapter could not run with."""
        # name -> (lowest, highest, whether the lowest itself is allowed); a backoff of 1 is a
        # fixed interval, an interval of 0 would poll without pause
        bounds = {
            "poll_interval_s": (0.0, 60.0, False),
            "poll_max_interval_s": (0.0, 300.0, False),
            "poll_backoff": (1.0, 10.0, True),
        }
        for name, (low, high, low_ok) in bounds.items():
            value = options.get(name)
            if value is None:
                continue
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number or not (low <= value if low_ok else low < value) or value > high:
                above = "at least" if low_ok else "above"
                raise ValueError(f"{name} must be a number {above} {low:g} and at most {high:g}, not {value!r}")


def _timed_out_at_deadline(exc: httpx.TimeoutException, remaining: float, connect_timeout_s: float) -> bool:
    """Whether a poll's timeout was the deadline's: a read, write or pool timeout had only the
    time left; a connect timeout only when the time left was shorter than the connect limit."""
    if isinstance(exc, httpx.ConnectTimeout):
        return remaining <= connect_timeout_s
    return True


async def poll_until(
    step: Callable[[float], Awaitable[bool]],
    *,
    deadline: float,
    schedule: PollSchedule,
    clock: Clock,
    sleep: Sleep,
    expired: Callable[[], BaseException],
    connect_timeout_s: float,
) -> None:
    """Wait, then call `step(seconds_left)`, until it returns True.

    `deadline` is on `clock`. When the time is up before the job ends, `expired()` is raised
    (after a wait, or when a poll timed out in the time that was left); any other error of
    `step` propagates unchanged.
    """
    polls = 0
    while True:
        remaining = deadline - clock()
        if remaining <= 0:
            raise expired()
        await sleep(min(schedule.delay(polls), remaining))
        polls += 1
        remaining = deadline - clock()
        if remaining <= 0:
            raise expired()
        try:
            if await step(remaining):
                return
        except httpx.TimeoutException as exc:
            if _timed_out_at_deadline(exc, remaining, connect_timeout_s):
                raise expired() from None
            raise

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
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["POLL_OPTIONS", "Clock", "JobPoller", "PollSchedule", "Sleep", "loop_clock", "poll_until"]

log = logging.getLogger(__name__)

# The options every queue adapter takes for its polling (PollSchedule, and `cancel_timeout_s`:
# how long a cancellation may take).
POLL_OPTIONS = frozenset({"poll_interval_s", "poll_backoff", "poll_max_interval_s", "cancel_timeout_s"})

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
        cancel = options.get("cancel_timeout_s")
        if cancel is not None and (
            isinstance(cancel, bool) or not isinstance(cancel, int | float) or not 0 < cancel <= 60
        ):
            raise ValueError("cancel_timeout_s must be a number of seconds above 0 and at most 60")


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


async def _asyncio_sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


class JobPoller:
    """What a queue adapter needs to wait for its jobs: the schedule from its options, the clock
    and sleep it was given (a test's, or the running loop's), and its connect limit.

    `wait` polls until the job ends and, when the wait stops early (the deadline, a failed
    poll, the attempt cancelled) while the job may still be running, cancels it; `cancel`
    sends that cancellation as a best effort, within `cancel_timeout_s` (3 s by default)."""

    def __init__(
        self, options: Mapping[str, Any], connect_timeout_s: float, clock: Clock | None, sleep: Sleep | None
    ) -> None:
        self.schedule = PollSchedule.from_options(options)
        self.clock: Clock = clock or loop_clock
        self.sleep: Sleep = sleep or _asyncio_sleep
        self.connect_timeout_s = connect_timeout_s
        self.cancel_timeout_s = float(options.get("cancel_timeout_s", 3.0))

    async def wait(
        self,
        step: Callable[[float], Awaitable[bool]],
        *,
        deadline: float,
        expired: Callable[[], BaseException],
        running: Callable[[], bool],
        cancel: Callable[[float], Awaitable[httpx.Response]],
        what: str,
    ) -> None:
        """`poll_until` on this poller's schedule; on any way out but the job's end, when
        `running()` says the job has not ended, `self.cancel(cancel, what)`."""
        try:
            await poll_until(
                step,
                deadline=deadline,
                schedule=self.schedule,
                clock=self.clock,
                sleep=self.sleep,
                expired=expired,
                connect_timeout_s=self.connect_timeout_s,
            )
        except BaseException:
            if running():
                await self.cancel(cancel, what)
            raise

    async def cancel(self, send: Callable[[float], Awaitable[httpx.Response]], what: str) -> None:
        """Best effort: `send(timeout_s)` asks the service to drop the job (`what`, e.g.
        "fal p1: request 12ab"); a failure to do so is logged, never raised."""
        try:
            response = await send(self.cancel_timeout_s)
        except httpx.HTTPError as exc:
            log.warning("%s: could not cancel: %r", what, exc)
            return
        if not response.is_success:
            log.info("%s: cancelling answered %s: %s", what, response.status_code, response.text[:200])

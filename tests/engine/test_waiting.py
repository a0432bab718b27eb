"""`wait_event`: a wait for a wake-up that never swallows its task's cancel.

The class of defect: a loop that waits for its next wake-up with a time limit goes on after its
owner cancelled it, when the wake-up and the cancel land in the same turn of the event loop (a
stream outlives the client that left; a background writer ignores shutdown). Every interleaving
of "the event is set" and "the task is cancelled" is tried: the cancel must always win.
"""

from __future__ import annotations

import asyncio

import pytest

from providers.engine import FakeClock, wait_event


async def _waiter(event: asyncio.Event, log: list[str]) -> None:
    while True:  # what a stream or a writer does: wait, work, wait again
        woken = await wait_event(event, 30.0)
        event.clear()
        log.append("woken" if woken else "timed out")


@pytest.mark.parametrize("turns", range(8))
def test_a_cancel_that_lands_with_a_wake_up_ends_the_task(turns: int) -> None:
    async def scenario() -> list[str]:
        event, log = asyncio.Event(), []
        task = asyncio.get_running_loop().create_task(_waiter(event, log))
        await asyncio.sleep(0)  # the task waits
        event.set()
        for _ in range(turns):  # each interleaving of the wake-up with the cancel
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return log

    log = FakeClock().run(scenario())
    assert set(log) <= {"woken"}


def test_it_says_whether_the_event_was_set_or_the_time_ran_out() -> None:
    async def scenario() -> tuple[bool, bool, bool, float]:
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        start = loop.time()
        timed_out = await wait_event(event, 5.0)
        waited = loop.time() - start
        loop.call_later(1.0, event.set)
        woken = await wait_event(event, 5.0)
        already = await wait_event(event, 0.0)
        return timed_out, woken, already, waited

    timed_out, woken, already, waited = FakeClock().run(scenario())
    assert (timed_out, woken, already) == (False, True, True)
    assert waited == pytest.approx(5.0)  # virtual time: the fake clock's, not the wall's

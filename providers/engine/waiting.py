"""Waiting for an `asyncio.Event` with a time limit, without losing a cancel.

On Python 3.11, `asyncio.wait_for(event.wait(), t)` runs the wait in a task of its own; when the
event is set and the waiting task is cancelled in the same turn of the loop, `wait_for` returns
the wait's result and the cancel is gone. A loop that waits for a wake-up this way (a stream for
its next event, a background writer for its next batch) then goes on after its owner cancelled
it: a stream outlives its client, a shutdown waits for a writer that never ends. `asyncio.timeout`
cancels the waiting task itself, so a cancel from outside always reaches it.
"""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait until `event` is set (True) or `timeout_s` has passed (False, unless it was set
    meanwhile). A cancel of the calling task is raised, whatever else happened in that turn."""
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return event.is_set()
    return True

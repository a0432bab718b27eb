"""Hedging (resilience.md §5): after an adaptive delay, send one more call to a different
target and take whichever answers well first.

The delay is the primary's p95 latency over its last 100 calls, clamped to
[min_delay_s, max_delay_s], or the fixed `delay_s` until `min_samples` exist. The hedge goes
only to another breaker key whose breaker is CLOSED, whose bulkhead has room and whose retry
budget has a token (a hedge is a retry for the budget). The loser is cancelled, which closes
its httpx stream, and waited for at most `cancel_grace_s`. A streaming call returns at its first
chunk, before anything is forwarded, so no hedge can start after the client got a byte.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from .latency import LatencySamples
from .policy import HedgePolicy, TargetSpec
from .sent import Sent
from .strategies import latency_key

if TYPE_CHECKING:
    from .chain import Admitted, FallbackChain


def hedge_delay(policy: HedgePolicy, samples: LatencySamples | None) -> float:
    if samples is None or len(samples) < policy.min_samples:
        return policy.delay_s
    p = samples.percentile(policy.percentile)
    assert p is not None
    return min(policy.max_delay_s, max(policy.min_delay_s, p))


async def race(chain: FallbackChain, index: int, target: TargetSpec, admitted: Admitted) -> Sent:
    """Run the primary attempt, hedged. Returns the winner, or the primary's failure."""
    policy = chain.route.hedge
    assert policy is not None
    delay = hedge_delay(policy, chain.engine.latency.get(latency_key(target)))
    primary = asyncio.ensure_future(chain.send(index, target, admitted))
    tasks: set[asyncio.Future[Sent]] = {primary}
    try:
        done, _ = await asyncio.wait(tasks, timeout=delay)
        if done:
            return primary.result()
        hedge = await _start_hedge(chain, target)
        if hedge is None:
            return await primary
        tasks.add(hedge)
        pending = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                sent = task.result()
                if sent.ok:
                    chain.race_won = True
                    await _cancel(pending, policy.cancel_grace_s)
                    return sent
        return primary.result()
    except asyncio.CancelledError:
        await _cancel({t for t in tasks if not t.done()}, policy.cancel_grace_s)
        raise


async def _start_hedge(chain: FallbackChain, primary: TargetSpec) -> asyncio.Future[Sent] | None:
    for j, candidate in enumerate(chain.order):
        if candidate.breaker_key == primary.breaker_key:
            continue
        if chain.tries.get(j, 0) >= candidate.retry.max_attempts:
            continue
        admitted = await chain.admit(candidate, retry=False, hedge=True, record=False)
        if isinstance(admitted, tuple):
            return asyncio.ensure_future(chain.send(j, candidate, admitted, hedge=True))
    return None


async def _cancel(tasks: set[asyncio.Future[Sent]], grace: float) -> None:
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=grace)

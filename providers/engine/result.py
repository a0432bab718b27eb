"""What one attempt is handed, what it leaves behind, and what a whole chain returns."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Generator, Iterable, Sequence
from typing import Any, Generic, NamedTuple, TypeVar

from .outcome import Outcome
from .policy import TargetSpec

T = TypeVar("T")


class AttemptContext(NamedTuple):
    """Handed to the attempt function with each call (immutable).

    `timeout` is this attempt's budget in seconds, min(attempt timeout, remaining - 0.2 s); pass
    it to httpx. The engine also enforces it, as `asyncio.timeout` would. `deadline` is the
    request's absolute monotonic deadline.
    """

    timeout: float
    deadline: float
    attempt: int  # 1-based, on this target
    chain_attempt: int  # 1-based, over the whole chain
    credential: str | None
    hedge: bool = False


class AttemptRecord(NamedTuple):
    """One line of a request's attempt list: a call sent, or a target skipped (`skipped`).

    Immutable; a NamedTuple rather than a dataclass because one is built per attempt on the
    hot path (a tenth of the cost). `as_dict()` is its JSON shape.
    """

    provider: str
    model: str
    credential: str | None
    outcome: Outcome | None  # None when skipped
    status: int | None
    duration_ms: float
    skipped: str | None = None  # disabled, maintenance, open, half_open_full, forced_open,
    # cooldown, exhausted, rejected, model_missing, bulkhead_full, throttled, budget, deadline,
    # limit; unsupported (the target cannot take the request: `error` says why) and
    # invalid_request (our translation for it failed): nothing was sent
    reason: str = ""
    error: str = ""
    hedge: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "model": self.model,
            "credential": self.credential,
            "outcome": self.outcome.value if self.outcome is not None else None,
            "status": self.status,
            "duration_ms": round(self.duration_ms, 3),
            "skipped": self.skipped,
            "reason": self.reason,
            "error": self.error,
            "hedge": self.hedge,
        }


class Hops(NamedTuple):
    """How a request moved along its chain, counted from the calls it sent (skips are no calls).

    A failover is a target the request left for another: every target sent a call but the one
    that served it (a hedge's losing primary included), or, when none did, but the last one
    tried. A retry is a call beyond the first to the same target. This is the one definition:
    the chain's result, the gateway's failure answers, the analytics rollups and the demo
    seeder all count with `count_hops`.
    """

    failovers: int
    retries: int
    left: tuple[tuple[str, str], ...]  # (provider, model) of each target left, in chain order
    calls: dict[tuple[str, str], int]  # calls sent per target, in chain order


def count_hops(sent: Iterable[tuple[str, str]], served: tuple[str, str] | None = None) -> Hops:
    """`sent`: (provider, model) of each call sent, in order; `served`: the target that
    answered (None when none did)."""
    calls: dict[tuple[str, str], int] = {}
    total = 0
    for target in sent:
        calls[target] = calls.get(target, 0) + 1
        total += 1
    order = tuple(calls)
    left = tuple(t for t in order if t != served) if served is not None else order[:-1]
    return Hops(len(left), total - len(calls), left, calls)


def hops_of(attempts: Sequence[AttemptRecord], served: tuple[str, str] | None = None) -> Hops:
    """`count_hops` of an attempt list."""
    return count_hops(((a.provider, a.model) for a in attempts if a.skipped is None), served)


_pending: set[asyncio.Future[None]] = set()  # finish() tasks nobody awaits, kept from the GC


class _Done:
    """An awaitable that is already complete (finish() on a non-streaming result)."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield


class ChainResult(Generic[T]):
    """A successful chain: the value, the target that served it and every attempt made.

    `failovers` and `retries` are `hops_of(attempts, served)` (see `Hops`). Skipped targets
    count in neither: they are in `attempts` with `skipped` set.

    For a streaming call, the engine keeps the breaker permit and bulkhead slot until
    `finish(error)`: None for a stream that ended well, the exception that broke it otherwise
    (recorded as STREAM_ABORTED, a breaker failure that is never retried). `finish` is
    idempotent and returns an awaitable; awaiting it is optional.
    """

    __slots__ = ("_finish", "_finished", "attempts", "failovers", "retries", "target", "value")

    def __init__(
        self,
        value: T,
        target: TargetSpec,
        attempts: list[AttemptRecord],
        failovers: int,
        retries: int,
        finisher: Callable[[BaseException | None], Awaitable[None]] | None = None,
    ) -> None:
        self.value = value
        self.target = target
        self.attempts = attempts
        self.failovers = failovers
        self.retries = retries
        self._finish = finisher
        self._finished: Awaitable[None] | None = None

    @property
    def served_by(self) -> AttemptRecord:
        return next(a for a in reversed(self.attempts) if a.outcome is Outcome.SUCCESS)

    def finish(self, error: BaseException | None = None) -> Awaitable[None]:
        if self._finished is None:
            if self._finish is None:
                self._finished = _Done()
            else:
                task = asyncio.ensure_future(self._finish(error))
                _pending.add(task)
                task.add_done_callback(_pending.discard)
                self._finished = task
        return self._finished

    def as_dict(self) -> dict[str, Any]:
        return {
            "provider": self.target.provider,
            "model": self.target.model,
            "failovers": self.failovers,
            "retries": self.retries,
            "attempts": [a.as_dict() for a in self.attempts],
        }

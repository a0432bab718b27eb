"""API keys' limits on every gateway request: the routes a key may use, requests and tokens per
minute, and a budget per calendar period (a UTC day, ISO week or month) in the prices' currency.

`admit(key, route)` runs once the route is resolved and before any provider is called. It
raises `KeyRefused`: 403 `route_not_allowed`, 429 `budget_exceeded` (the key's spend in the
period has reached its budget), 429 `rate_limited` with `retry_after` (requests or tokens per
minute), and 503 `limits_unavailable` only under KEY_LIMITS_WHEN_REDIS_DOWN="closed". An
admitted request is counted in the same atomic step that admits it (no read-then-write).

`settle(record)` hears every finished request (a `RequestRecord` listener; a stream when it
ends): its tokens go to the key's minute, its cost (the request log's, to 1e-8) to the key's
spend in the period the request started in (an unknown cost, a model without a known price,
counts 0 and is logged once per key and model). Requests that finish together are counted
together: one store call (one Redis script) per key and period for each drain of the queue.
Alerts: `signals.key_budget_crossed` when that
spend passes 80 % and 100 % of the budget, once per threshold, period and budget.

Where counts live: the runtime's limit store (providers/engine/limits.py), Redis when REDIS_URL
is set (shared by every worker, changed only by atomic scripts), in-process otherwise. Spend is
also kept per key and day in the database (`KeySpend`, written in batches every
KEY_SPEND_FLUSH_INTERVAL_S seconds), so it survives restarts: a store with no count for a key's
period starts from the database plus this worker's unwritten batch.

Redis away, KEY_LIMITS_WHEN_REDIS_DOWN:
- "open" (the default): every worker enforces each limit on its own counts, the budget from
  the last shared spend it saw plus what it counts itself. A key's budget and rates are spend
  and fairness controls, not access control (that is the key itself and its scopes, which do
  not depend on Redis); refusing every limited key's traffic while Redis is away would make
  Redis a single point of failure for the gateway, which otherwise keeps serving through a
  Redis outage (breakers and provider limits fall back the same way). The cost: for the
  outage, rates up to (workers x limit) and a budget passed by what the outage's requests
  spent, with the spend itself still exact, so the overshoot shows and is not forgotten.
- "closed": a request of a key that has limits is refused (503, Retry-After) until Redis
  answers; keys without limits are not affected. For budgets that must never be passed.
Either way the spend counted while Redis was away is added to the shared count when it answers
again (with the worker's next settled request): each worker sends the total it has counted,
and Redis adds only what it lacks, so a call that timed out but was applied is not counted
twice. Exact when Redis kept its data. When it lost it, the count is rebuilt from the
database, which then lacks only what other workers had in their unwritten batch at that moment
(at most KEY_SPEND_FLUSH_INTERVAL_S of their traffic); the database itself stays exact.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.db.models import F, Sum

from project.database import db_call

from .engine import Engine, wait_event
from .gateway.errors import RequestError
from .gateway.records import RequestRecord
from .models import ApiKey, KeySpend
from .runtime import Runtime, existing_runtime, runtime
from .signals import key_budget_crossed
from .snapshot import KeyEntry, Snapshot

log = logging.getLogger(__name__)

WHEN_REDIS_DOWN = ("open", "closed")
FLUSH_INTERVAL_S = 1.0  # KEY_SPEND_FLUSH_INTERVAL_S
NANO = Decimal(1_000_000_000)  # counts are integers: nano-units of the price currency
COST_STEP = Decimal("1e-8")  # the request log keeps cost to 8 places: spend adds up to its sum
KEEP_AFTER_PERIOD_S = 86_400.0  # a period's counts outlive it by a day (late streams settle)


class KeyRefused(Exception):
    """A request the key's limits refuse: `status`, error `type`, a message for the caller,
    and `retry_after` seconds (rate limits, and Redis away when that refuses)."""

    def __init__(self, status: int, type: str, message: str, retry_after: float | None = None) -> None:
        self.status = status
        self.type = type
        self.retry_after = retry_after
        super().__init__(message)

    def request_error(self) -> RequestError:
        """The refusal as the gateway's RequestError (`api_view` says it in the caller's API's shape)."""
        headers = None
        if self.retry_after is not None:
            headers = {"Retry-After": str(max(1, math.ceil(self.retry_after)))}
        return RequestError(self.status, str(self), type_=self.type, code=self.type, headers=headers)


def when_redis_down() -> str:
    return getattr(settings, "KEY_LIMITS_WHEN_REDIS_DOWN", "open")


def check_settings() -> None:
    """Refuse to start with a setting that cannot mean anything (called in AppConfig.ready)."""
    if when_redis_down() not in WHEN_REDIS_DOWN:
        raise ImproperlyConfigured(
            f"KEY_LIMITS_WHEN_REDIS_DOWN must be one of {', '.join(WHEN_REDIS_DOWN)}, not {when_redis_down()!r}"
        )
    interval = getattr(settings, "KEY_SPEND_FLUSH_INTERVAL_S", FLUSH_INTERVAL_S)
    if not isinstance(interval, int | float) or not 0 < interval <= 3600:
        raise ImproperlyConfigured("KEY_SPEND_FLUSH_INTERVAL_S must be a number of seconds, > 0 and <= 3600")


# -- money and periods ---------------------------------------------------------------------------


def to_nano(amount: Decimal) -> int:
    """An amount as the stores count it: rounded to the request log's 8 places, in nano-units."""
    return int(amount.quantize(COST_STEP, rounding=ROUND_HALF_EVEN) * NANO)


def from_nano(value: int) -> Decimal:
    return (Decimal(value) / NANO).quantize(COST_STEP)


def period_bounds(kind: str, at: datetime) -> tuple[datetime, datetime]:
    """The UTC calendar period (`day`, `week` from Monday, `month`) holding `at`: [start, end)."""
    day = at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if kind == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    if kind == "month":
        start = day.replace(day=1)
        return start, (start + timedelta(days=32)).replace(day=1)
    return day, day + timedelta(days=1)


def period_name(kind: str, start: datetime) -> str:
    return f"{kind}:{start:%Y-%m-%d}"


def parse_period(name: str) -> tuple[str, datetime, datetime]:
    kind, _, day = name.partition(":")
    return (kind, *period_bounds(kind, datetime.fromisoformat(day).replace(tzinfo=UTC)))


_periods: dict[tuple[str, int], tuple[str, float]] = {}  # (kind, UTC day number) -> (name, end)


def _period_at(kind: str, now: float) -> tuple[str, float]:
    """(name, end as a timestamp) of the `kind` period at `now`; cached per day: it runs per request."""
    slot = (kind, int(now // 86_400))
    found = _periods.get(slot)
    if found is None:
        if len(_periods) > 64:
            _periods.clear()
        start, end = period_bounds(kind, datetime.fromtimestamp(now, UTC))
        found = _periods[slot] = (period_name(kind, start), end.timestamp())
    return found


# -- one runtime's enforcement ---------------------------------------------------------------------


@dataclass
class Tally:
    """What a key used on one day, not yet written."""

    spend: Decimal = field(default_factory=Decimal)
    requests: int = 0
    tokens_in: int = 0
    tokens_out: int = 0

    def add(self, other: Tally) -> None:
        self.spend += other.spend
        self.requests += other.requests
        self.tokens_in += other.tokens_in
        self.tokens_out += other.tokens_out


@dataclass
class _Sum:
    """What one drain of the inbox counts on one key in one period."""

    entry: KeyEntry
    end: float  # the period's end (Unix time)
    spend: int = 0  # nano-units
    tokens: int = 0
    tallies: list[tuple[RequestRecord, Tally]] = field(default_factory=list)


class KeyLimits:
    """The key limits of one engine's limit store (one per runtime; `limits_for`). Also the
    store's `KeyLedger`: it seeds counts from the database and tells budget crossings."""

    def __init__(self, engine: Engine, *, snapshot: Callable[[], Snapshot | None] | None = None) -> None:
        self.store = engine.limits
        self.now = engine.clock.time  # wall time: periods are calendar ones
        self._snapshot = snapshot
        self._index: tuple[Snapshot | None, dict[int, KeyEntry]] = (None, {})
        self._known: dict[int, KeyEntry] = {}  # keys this runtime admitted, by id
        self._inbox: collections.deque[RequestRecord] = collections.deque()
        self._unwritten: dict[tuple[int, date], Tally] = {}
        self._writing = asyncio.Lock()
        self._counting = asyncio.Lock()  # one drain of the inbox at a time: flush waits for it
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._alerts: dict[asyncio.Task[None], None] = {}  # in the order they were made
        self._unpriced: set[tuple[int, str, str]] = set()  # (key, provider, model) already logged unpriced

    # -- admission -------------------------------------------------------------------------------

    async def admit(self, key: KeyEntry, route: str) -> None:
        if key.routes and route not in key.routes:
            raise KeyRefused(403, "route_not_allowed", f"API key {key.name!r} may not use route {route!r}.")
        rpm, tpm, budget = key.rate_limit_per_minute, key.tokens_per_minute, key.budget
        if rpm is None and tpm is None and budget is None:
            return
        self._known[key.id] = key
        now = self.now()
        period, end = _period_at(key.budget_period, now)
        policy = when_redis_down()
        try:
            verdict = await self.store.admit_key(
                str(key.id),
                rpm=rpm,
                tpm=tpm,
                budget=None if budget is None else to_nano(budget),
                period=period,
                expires_in_s=end - now + KEEP_AFTER_PERIOD_S,
                ledger=self,
                when_down=policy,
            )
        except Exception:  # the database did not answer while a count was being seeded
            log.exception("key limits: could not check API key %r", key.name)
            if policy == "closed":
                raise KeyRefused(
                    503, "limits_unavailable", "The API key's limits cannot be checked right now.", retry_after=5.0
                ) from None
            return
        if verdict.allowed:
            return
        if verdict.reason == "budget":
            spent = from_nano(verdict.spend or 0).normalize()
            renews = datetime.fromtimestamp(end, UTC)
            raise KeyRefused(
                429,
                "budget_exceeded",
                f"API key {key.name!r} has used its budget of {budget} per "
                f"{key.budget_period} (spent {spent}); it renews at "
                f"{renews:%Y-%m-%d %H:%M} UTC.",
            )
        if verdict.reason == "unavailable":
            raise KeyRefused(
                503,
                "limits_unavailable",
                "The API key's limits cannot be checked right now.",
                retry_after=verdict.retry_after_s,
            )
        what = f"{rpm} requests" if verdict.reason == "requests" else f"{tpm} tokens"
        raise KeyRefused(
            429,
            "rate_limited",
            f"API key {key.name!r} is over its limit of {what} per minute.",
            retry_after=verdict.retry_after_s,
        )

    # -- settling --------------------------------------------------------------------------------

    def settle(self, record: RequestRecord) -> None:
        """Queue a finished request (never blocks); counted at once in the background."""
        if record.api_key_id is None:
            return
        self._inbox.append(record)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        self._wake.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self.count()
            unsent = await self.resend()
            if not self._unwritten and not unsent:
                return
            due = loop.time() + getattr(settings, "KEY_SPEND_FLUSH_INTERVAL_S", FLUSH_INTERVAL_S)
            while (left := due - loop.time()) > 0:  # count what arrives meanwhile at once
                self._wake.clear()
                await wait_event(self._wake, left)
                await self.count()
            await self.write()

    async def resend(self) -> bool:
        """Send the shared store the spend it has not confirmed (Redis was away); True while
        some is left, so the background task keeps trying every KEY_SPEND_FLUSH_INTERVAL_S."""
        async with self._counting:
            try:
                return await self.store.resend_keys(self)
            except Exception:
                log.exception("key limits: could not send the spend counted while Redis was away")
                return True

    async def count(self) -> None:
        """Count the queued requests in the store now (the database gets them with the next batch)."""
        async with self._counting:
            while self._inbox:
                drained = list(self._inbox)
                self._inbox.clear()
                await self._settle(drained)

    async def _settle(self, records: list[RequestRecord]) -> None:
        """Count `records` in the store: their sum, once per key and period. Spend and tokens
        add up, so one count of the sum is the counts one by one; under load that is one store
        call (a Redis script) per key per drain instead of one per request."""
        sums: dict[tuple[int, str], _Sum] = {}
        for record in records:
            assert record.api_key_id is not None
            key_id = record.api_key_id
            # An unknown cost (a model without a known price: `record.cost` None) counts 0 toward
            # the budget: there is no amount to count, and refusing the key's traffic for it would
            # make every unpriced model unusable with a budgeted key. The request stays flagged
            # where it is recorded (the request log's cost is null, analytics count it in
            # `cost_unknown`), and the first such request per key and model is logged, so the gap
            # is seen, not hidden.
            if record.cost is None:
                self._warn_unpriced(key_id, record)
            cost = (record.cost or Decimal(0)).quantize(COST_STEP, rounding=ROUND_HALF_EVEN)
            spend = int(cost * NANO)
            tokens = record.tokens_in + record.tokens_out
            entry = self.entry(key_id)
            tally = Tally(cost, 1, record.tokens_in, record.tokens_out)
            if entry is None or not (spend or entry.budget is not None or (entry.tokens_per_minute and tokens)):
                self._tally(key_id, record, tally)
                continue
            period, end = _period_at(entry.budget_period, record.at.timestamp())
            total = sums.get((key_id, period))
            if total is None:
                total = sums[(key_id, period)] = _Sum(entry, end)
            total.spend += spend
            total.tokens += tokens if entry.tokens_per_minute else 0
            total.tallies.append((record, tally))
        for (key_id, period), total in sums.items():
            entry = total.entry
            try:
                await self.store.settle_key(
                    str(key_id),
                    tokens=total.tokens,
                    spend=total.spend,
                    budget=None if entry.budget is None else to_nano(entry.budget),
                    period=period,
                    expires_in_s=total.end - self.now() + KEEP_AFTER_PERIOD_S,
                    ledger=self,
                )
            except Exception:  # not in the shared count: the database has them, and seeds the count from it
                ids = ", ".join(record.request_id for record, _ in total.tallies[:5])
                log.exception(
                    "key limits: could not count %d request(s) on API key %r (%s)", len(total.tallies), entry.name, ids
                )
            # After the store: a count seeded meanwhile read the database and this batch without it.
            for record, tally in total.tallies:
                self._tally(key_id, record, tally)

    def _tally(self, key_id: int, record: RequestRecord, tally: Tally) -> None:
        day = record.at.astimezone(UTC).date()
        self._unwritten.setdefault((key_id, day), Tally()).add(tally)

    def _warn_unpriced(self, key_id: int, record: RequestRecord) -> None:
        entry = self.entry(key_id)
        seen = (key_id, record.provider, record.model)
        if entry is None or entry.budget is None or seen in self._unpriced:
            return
        self._unpriced.add(seen)
        log.warning(
            "key limits: API key %r used %s/%s, whose price is unknown: counted 0 toward its budget",
            entry.name,
            record.provider,
            record.model,
        )

    def entry(self, key_id: int) -> KeyEntry | None:
        """The key as the configuration has it now (else as this runtime last admitted it)."""
        snapshot = self._snapshot() if self._snapshot is not None else None
        if snapshot is not None:
            if self._index[0] is not snapshot:
                self._index = (snapshot, {k.id: k for k in snapshot.keys.values()})
            found = self._index[1].get(key_id)
            if found is not None:
                return found
        return self._known.get(key_id)

    async def write(self) -> None:
        """Write the batch of spend, requests and tokens (one transaction; kept on failure)."""
        async with self._writing:
            batch, self._unwritten = self._unwritten, {}
            if not batch:
                return
            try:
                await db_call(write_tallies, batch)
            except Exception:
                log.exception("key limits: could not write the spend of %d key-days; kept for the next try", len(batch))
                for slot, tally in batch.items():
                    self._unwritten.setdefault(slot, Tally()).add(tally)

    async def flush(self) -> None:
        """Count everything queued, write it, and deliver the alerts it raised (shutdown, tests)."""
        await self.count()
        await self.resend()
        await self.write()
        while self._alerts:
            await asyncio.gather(*list(self._alerts))

    # -- the store's ledger ----------------------------------------------------------------------

    async def seed(self, key: str, period: str) -> int:
        key_id = int(key)
        _, start, end = parse_period(period)
        async with self._writing:  # not while a batch is between this process and the database
            persisted = await db_call(persisted_spend, key_id, start.date(), end.date())
            unwritten = sum(
                (
                    t.spend
                    for (k, day), t in self._unwritten.items()
                    if k == key_id and start.date() <= day < end.date()
                ),
                Decimal(0),
            )
        return to_nano(persisted + unwritten)

    def crossed(self, key: str, period: str, percent: int, spend: int, budget: int) -> None:
        # Told in the order they happened: each waits for the one before.
        before = next(reversed(self._alerts), None) if self._alerts else None
        task = asyncio.get_running_loop().create_task(
            _tell_crossing(int(key), period, percent, from_nano(spend), from_nano(budget), after=before)
        )
        self._alerts[task] = None
        task.add_done_callback(self._alerts.pop)

    # -- reading ---------------------------------------------------------------------------------

    async def spend(self, key_id: int, kind: str) -> Decimal:
        """The key's spend in its current `kind` period, as the store counts it (every worker's)."""
        now = self.now()
        period, end = _period_at(kind, now)
        value = await self.store.key_spend(
            str(key_id), period=period, expires_in_s=end - now + KEEP_AFTER_PERIOD_S, ledger=self
        )
        return from_nano(value)

    def unwritten(self, key_id: int, start: date, end: date) -> Tally:
        """What this process counted for the key in [start, end) and has not written yet."""
        total = Tally()
        for (k, day), tally in self._unwritten.items():
            if k == key_id and start <= day < end:
                total.add(tally)
        return total


async def _tell_crossing(
    key_id: int, period: str, percent: int, spend: Decimal, budget: Decimal, *, after: asyncio.Task[None] | None
) -> None:
    if after is not None:
        await asyncio.wait([after])
    try:
        await db_call(tell_crossing, key_id, period, percent, spend, budget)
    except Exception:
        log.exception("key limits: could not tell that API key %s passed %d%% of its budget", key_id, percent)


# -- the database side (sync: through db_call) ---------------------------------------------------


def persisted_spend(key_id: int, start: date, end: date) -> Decimal:
    total = KeySpend.objects.filter(key_id=key_id, day__gte=start, day__lt=end).aggregate(s=Sum("spend"))["s"]
    return total or Decimal(0)


def write_tallies(batch: dict[tuple[int, date], Tally]) -> None:
    """Add each tally to its (key, day) row; all or nothing, rows in one order (no deadlock
    between two workers' batches)."""
    with transaction.atomic():
        for (key_id, day), tally in sorted(batch.items()):
            changes = {
                "spend": F("spend") + tally.spend,
                "requests": F("requests") + tally.requests,
                "tokens_in": F("tokens_in") + tally.tokens_in,
                "tokens_out": F("tokens_out") + tally.tokens_out,
            }
            if KeySpend.objects.filter(key_id=key_id, day=day).update(**changes):
                continue
            try:
                with transaction.atomic():
                    KeySpend.objects.create(
                        key_id=key_id,
                        day=day,
                        spend=tally.spend,
                        requests=tally.requests,
                        tokens_in=tally.tokens_in,
                        tokens_out=tally.tokens_out,
                    )
            except IntegrityError:  # another worker created it meanwhile, or the key is gone
                KeySpend.objects.filter(key_id=key_id, day=day).update(**changes)


def tell_crossing(key_id: int, period: str, percent: int, spend: Decimal, budget: Decimal) -> None:
    row = ApiKey.objects.filter(pk=key_id).values("name", "prefix").first()
    if row is None:
        return
    kind, start, _ = parse_period(period)
    for receiver, error in key_budget_crossed.send_robust(
        sender=ApiKey,
        key_name=row["name"],
        prefix=row["prefix"],
        threshold=percent,
        spend=spend,
        budget=budget,
        period=kind,
        period_start=start,
    ):
        if isinstance(error, Exception):
            log.error("key_budget_crossed receiver %r failed: %r", receiver, error)


# -- the running loop's -----------------------------------------------------------------------

_limits: weakref.WeakKeyDictionary[Runtime, KeyLimits] = weakref.WeakKeyDictionary()


def limits_for(rt: Runtime) -> KeyLimits:
    found = _limits.get(rt)
    if found is None:
        ref = weakref.ref(rt)

        def current() -> Snapshot | None:
            alive = ref()
            return alive.snapshot if alive is not None else None

        found = _limits[rt] = KeyLimits(rt.engine, snapshot=current)
    return found


async def admit(key: KeyEntry, route: str) -> None:
    """Refuse (KeyRefused) a request the key's limits do not allow; count it when they do."""
    if key.limited:
        await limits_for(runtime()).admit(key, route)


def settle(record: RequestRecord) -> None:
    """RequestRecord listener (providers AppConfig.ready): count a finished request's usage."""
    if record.api_key_id is not None:
        rt = existing_runtime()
        if rt is not None:
            limits_for(rt).settle(record)


async def flush_all() -> None:
    """Shutdown hook: write what the running loop's runtime has counted."""
    rt = existing_runtime()
    found = _limits.get(rt) if rt is not None else None
    if found is not None:
        await found.flush()


def usage_in_period(key_id: int, kind: str, now: datetime) -> dict[str, Any]:
    """The key's requests and tokens in its current period, from the database (sync)."""
    start, end = period_bounds(kind, now)
    row = KeySpend.objects.filter(key_id=key_id, day__gte=start.date(), day__lt=end.date()).aggregate(
        spend=Sum("spend"), requests=Sum("requests"), tokens_in=Sum("tokens_in"), tokens_out=Sum("tokens_out")
    )
    return {
        "start": start,
        "end": end,
        "spend": row["spend"] or Decimal(0),
        "requests": row["requests"] or 0,
        "tokens_in": row["tokens_in"] or 0,
        "tokens_out": row["tokens_out"] or 0,
    }

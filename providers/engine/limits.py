"""Per-provider request and token limits, checked before sending.

A provider with `requests_per_minute` or `tokens_per_minute` is skipped (reason "limit") when
one more request would pass its limit, so the chain moves on to the next target instead of
collecting the provider's 429. The count is a sliding minute, estimated from two fixed ones:
the previous minute's count weighted by the share of it still inside the window, plus the
current minute's (smooth at minute boundaries, two counters per key).

Requests are counted when admitted; tokens when the gateway learns them from the answer
(`add_tokens`), so a token limit stops new requests once the minute's usage reaches it.

`LocalLimits` counts in-process. `RedisLimits` shares the counts between processes with one
atomic script per admission (on Redis's clock, so every process agrees on the minute); when
Redis does not answer within 50 ms it counts locally instead: a provider call never fails
because Redis did.

The same stores count API keys' limits (`admit_key`, `settle_key`, `key_spend`; the policy is
providers/keys.py's): requests and tokens per minute as above, and the key's spend in its
budget period, in integer nano-units of the price currency. Spend is seeded from what the
outside world persisted (`KeyLedger.seed`) when a store has no count for the period; with
Redis, one hash per key and period holds it (expiring a day after the period), and a budget's
80 % and 100 % crossings are told once (`KeyLedger.crossed`), by the worker whose request
crossed them. Each worker sends the total it has counted on a hash, which adds only what it
lacks of it: what Redis did not confirm (it was away, or a call timed out and may or may not
have been applied) is sent again with the worker's next settle and counted exactly once. A
hash that is missing is seeded from the persisted spend; one rebuilt meanwhile (a new epoch)
is taken as it is (see `RedisLimits.settle_key`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import redis.asyncio

log = logging.getLogger(__name__)

KEY_THRESHOLDS = (80, 100)  # percent of a key's budget whose crossing is told, once per period
_KEY = "key:"  # API keys' minute counts live beside the providers' (whose names have no ':')


def _estimate(previous: float, current: float, into_minute: float) -> float:
    return previous * (1.0 - into_minute) + current


def wait_s(previous: float, current: float, into_minute: float, limit: int) -> float:
    """Seconds until one more fits the sliding minute (previous x (1 - share gone) + current
    + 1 <= limit): later in this minute as the previous one's weight fades, else in the next."""
    room = limit - 1 - current
    if room >= 0 and previous > 0:
        fits_at = 1.0 - room / previous
        if fits_at < 1.0:
            return max((fits_at - into_minute) * 60.0, 0.0)
    if limit < 1 or current <= 0:
        return 60.0
    fits_at = max(1.0 - (limit - 1) / current, 0.0)  # into the next minute
    return (1.0 - into_minute) * 60.0 + fits_at * 60.0


class KeyLedger(Protocol):
    """Where an API key's spend meets the outside world (providers/keys.py)."""

    async def seed(self, key: str, period: str) -> int:
        """The key's spend in `period` as persisted (nano-units): a store's starting count."""
        ...

    def crossed(self, key: str, period: str, percent: int, spend: int, budget: int) -> None:
        """The key's spend passed `percent` of its budget in `period` (told once). Must not block."""
        ...


@dataclass(frozen=True, slots=True)
class KeyVerdict:
    """May an API key's request start? `reason` when not: budget | requests | tokens |
    unavailable (Redis away and the policy is to refuse); `spend` is the key's spend in the
    period (nano-units) when the decision read it."""

    allowed: bool
    reason: str = ""
    retry_after_s: float | None = None
    spend: int | None = None


class LimitStore(Protocol):
    async def take(self, key: str, rpm: int | None, tpm: int | None) -> bool:
        """Count one request for `key` if it stays within both limits; False (nothing
        counted) when it would not."""
        ...

    async def add_tokens(self, key: str, tokens: int) -> None: ...

    def usage(self, key: str) -> tuple[float, float]:
        """(requests, tokens) in the sliding minute, as this process last knew them."""
        ...

    async def admit_key(
        self,
        key: str,
        *,
        rpm: int | None,
        tpm: int | None,
        budget: int | None,
        period: str,
        expires_in_s: float,
        ledger: KeyLedger,
        when_down: str = "open",
    ) -> KeyVerdict:
        """Whether an API key's request may start: its spend in `period` below `budget`
        (nano-units), one more request and the minute's tokens within `rpm` and `tpm`; the
        request is counted when allowed. `expires_in_s`: how long the period's count must be
        kept. `when_down` "closed": refuse (reason "unavailable") while a shared store is away."""
        ...

    async def settle_key(
        self,
        key: str,
        *,
        tokens: int,
        spend: int,
        budget: int | None,
        period: str,
        expires_in_s: float,
        ledger: KeyLedger,
    ) -> int | None:
        """Count a finished request's tokens in the minute and its `spend` in `period`; tells
        `ledger` of the budget thresholds it crossed. The period's spend after it, if counted."""
        ...

    async def key_spend(self, key: str, *, period: str, expires_in_s: float, ledger: KeyLedger) -> int:
        """The key's spend in `period` (nano-units)."""
        ...

    async def resend_keys(self, ledger: KeyLedger) -> bool:
        """Send a shared store what it has not confirmed of API keys' spend (it was away); True
        while some is still unconfirmed. Not concurrently with `settle_key`."""
        ...


class LocalLimits:
    """In-process counts. `now` is wall-clock seconds (minutes are calendar minutes)."""

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self._counts: dict[str, dict[int, list[int]]] = {}  # key -> minute -> [requests, tokens]
        self._spend: dict[tuple[str, str], list[float]] = {}  # (key, period) -> [spend, kept until]

    def _minutes(self, key: str, now: float) -> tuple[list[int], list[int], float]:
        minute = int(now // 60)
        book = self._counts.setdefault(key, {})
        for old in [m for m in book if m < minute - 1]:
            del book[old]
        current = book.setdefault(minute, [0, 0])
        previous = book.get(minute - 1, [0, 0])
        return previous, current, (now % 60) / 60

    async def take(self, key: str, rpm: int | None, tpm: int | None) -> bool:
        previous, current, into = self._minutes(key, self._now())
        if rpm is not None and _estimate(previous[0], current[0], into) + 1 > rpm:
            return False
        if tpm is not None and _estimate(previous[1], current[1], into) >= tpm:
            return False
        current[0] += 1
        return True

    async def add_tokens(self, key: str, tokens: int) -> None:
        if tokens > 0:
            _, current, _ = self._minutes(key, self._now())
            current[1] += tokens

    def usage(self, key: str) -> tuple[float, float]:
        previous, current, into = self._minutes(key, self._now())
        return _estimate(previous[0], current[0], into), _estimate(previous[1], current[1], into)

    # -- API keys ---------------------------------------------------------------------------

    async def admit_key(
        self,
        key: str,
        *,
        rpm: int | None,
        tpm: int | None,
        budget: int | None,
        period: str,
        expires_in_s: float,
        ledger: KeyLedger,
        when_down: str = "open",
    ) -> KeyVerdict:
        spend = None
        if budget is not None:
            spend = int((await self._spend_book(key, period, expires_in_s, ledger))[0])
            if spend >= budget:
                return KeyVerdict(False, "budget", spend=spend)
        if rpm is not None or tpm is not None:
            # From here to the count, nothing awaits: the check and the count are one step.
            previous, current, into = self._minutes(_KEY + key, self._now())
            if rpm is not None and _estimate(previous[0], current[0], into) + 1 > rpm:
                return KeyVerdict(False, "requests", wait_s(previous[0], current[0], into, rpm), spend)
            if tpm is not None and _estimate(previous[1], current[1], into) >= tpm:
                return KeyVerdict(False, "tokens", wait_s(previous[1], current[1], into, tpm), spend)
            current[0] += 1
        return KeyVerdict(True, spend=spend)

    async def settle_key(
        self,
        key: str,
        *,
        tokens: int,
        spend: int,
        budget: int | None,
        period: str,
        expires_in_s: float,
        ledger: KeyLedger,
        alert: bool = True,
    ) -> int | None:
        """`alert` False: count without telling crossings (a Redis store's fallback: the shared
        count tells them when the spend is pushed)."""
        if tokens > 0:
            _, current, _ = self._minutes(_KEY + key, self._now())
            current[1] += tokens
        if not spend and budget is None:
            return None
        book = await self._spend_book(key, period, expires_in_s, ledger)
        before = int(book[0])
        after = before + spend
        book[0] = after
        if alert and budget is not None:  # spend only grows: each crossing happens once
            for percent in KEY_THRESHOLDS:
                if before * 100 < budget * percent <= after * 100:
                    ledger.crossed(key, period, percent, after, budget)
        return after

    async def key_spend(self, key: str, *, period: str, expires_in_s: float, ledger: KeyLedger) -> int:
        return int((await self._spend_book(key, period, expires_in_s, ledger))[0])

    async def resend_keys(self, ledger: KeyLedger) -> bool:
        return False  # nothing is shared: nothing to send

    def note_key_spend(self, key: str, period: str, spend: int, expires_in_s: float) -> None:
        """The shared count's value, kept for when it cannot be asked (a Redis store's fallback)."""
        book = self._spend.get((key, period))
        if book is None:
            self._spend[(key, period)] = [spend, self._now() + expires_in_s]
        else:
            book[0] = spend

    async def _spend_book(self, key: str, period: str, expires_in_s: float, ledger: KeyLedger) -> list[float]:
        book = self._spend.get((key, period))
        if book is None:
            seeded = await ledger.seed(key, period)
            book = self._spend.get((key, period))  # another task may have seeded it meanwhile
            if book is None:
                self._forget_past_periods()
                book = self._spend[(key, period)] = [seeded, self._now() + expires_in_s]
        return book

    def _forget_past_periods(self) -> None:
        now = self._now()
        for gone in [k for k, (_, until) in self._spend.items() if until <= now]:
            del self._spend[gone]


# KEYS[1]: the key's prefix. ARGV: rpm (-1: none), tpm (-1: none), tokens to add (0: admission).
# Counters live in two hashes per minute (prefix:<minute>) with fields r and t; Redis TIME sets
# the minute so every process agrees on it.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local minute = math.floor(now / 60)
local into = (now % 60) / 60
local cur = KEYS[1] .. ':' .. minute
local prev = KEYS[1] .. ':' .. (minute - 1)
local rpm, tpm, add = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if add > 0 then
  redis.call('HINCRBY', cur, 't', add)
  redis.call('EXPIRE', cur, 180)
  return 1
end
local pr = tonumber(redis.call('HGET', prev, 'r') or '0')
local pt = tonumber(redis.call('HGET', prev, 't') or '0')
local cr = tonumber(redis.call('HGET', cur, 'r') or '0')
local ct = tonumber(redis.call('HGET', cur, 't') or '0')
if rpm >= 0 and pr * (1 - into) + cr + 1 > rpm then return 0 end
if tpm >= 0 and pt * (1 - into) + ct >= tpm then return 0 end
redis.call('HINCRBY', cur, 'r', 1)
redis.call('EXPIRE', cur, 180)
return 1
"""


_LUA = Path(__file__).with_name("lua")
_KEY_SCRIPTS = {name: (_LUA / f"key_{name}.lua").read_text() for name in ("admit", "settle", "seed")}
_KEY_SCRIPTS["spend"] = "local s = redis.call('HGET', KEYS[1], 'spend') if s then return {1, s} end return {-1}"


@dataclass(slots=True)
class _Sent:
    """What this worker counted on one key's spend hash for a period: `counted` in all, of
    which Redis confirmed `confirmed` (the rest is to send again: Redis was away, or the call
    timed out and may or may not have been applied)."""

    budget: int | None
    expires_in_s: float
    epoch: str | None = None  # of the hash; None: not seen yet (any hash will do)
    counted: int = 0
    confirmed: int = 0


def _limit(value: int | None) -> int:
    return -1 if value is None else value


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisLimits:
    """Counts shared through Redis; local counting while Redis is unreachable."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        *,
        prefix: str = "gw:limit:",
        op_timeout_s: float = 0.05,
        retry_after_s: float = 5.0,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.op_timeout_s = op_timeout_s
        self.retry_after_s = retry_after_s
        self.local = LocalLimits()
        self._script = client.register_script(_SCRIPT)
        self._key_scripts: dict[str, Any] = {n: client.register_script(t) for n, t in _KEY_SCRIPTS.items()}
        self._down_until = 0.0
        self.worker = secrets.token_hex(6)  # this store's field in every spend hash it adds to
        self._sent: dict[tuple[str, str], _Sent] = {}  # (key, period) -> what this worker counted

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str = "gw:limit:", op_timeout_s: float = 0.05, retry_after_s: float = 5.0
    ) -> RedisLimits:
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        return cls(client, prefix=prefix, op_timeout_s=op_timeout_s, retry_after_s=retry_after_s)

    async def _call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """The script's answer, or None when Redis is away (the caller counts locally)."""
        if time.monotonic() < self._down_until:
            return None
        try:
            async with asyncio.timeout(self.op_timeout_s):
                return await script(keys=keys, args=args)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "request limits: Redis did not answer (%s); counting locally for %.0f s",
                type(exc).__name__,
                self.retry_after_s,
            )
            self._down_until = time.monotonic() + self.retry_after_s
            return None

    async def _run(self, key: str, rpm: int | None, tpm: int | None, add: int) -> bool | None:
        result = await self._call(self._script, [self.prefix + key], [_limit(rpm), _limit(tpm), add])
        return None if result is None else bool(result)

    async def take(self, key: str, rpm: int | None, tpm: int | None) -> bool:
        shared = await self._run(key, rpm, tpm, 0)
        if shared is None:
            return await self.local.take(key, rpm, tpm)
        if shared:
            await self.local.take(key, None, None)  # keep a local view for usage()
        return shared

    async def add_tokens(self, key: str, tokens: int) -> None:
        await self.local.add_tokens(key, tokens)
        if tokens > 0:
            await self._run(key, None, None, tokens)

    def usage(self, key: str) -> tuple[float, float]:
        return self.local.usage(key)

    # -- API keys ---------------------------------------------------------------------------
    # Redis away: the key's limits are checked on this worker's own counts ("open", the
    # spend starting from the last shared value seen) or the request is refused ("closed").
    # Spend: each worker sends the total it counted on a key's hash (the script adds only what
    # the hash lacks of it), so what Redis did not confirm (away, or a call that timed out and
    # may have been applied) is sent again with the next settle, and counted exactly once.
    # A hash that is missing is seeded from the database (which has every settled request of
    # this worker, written or in its batch); one rebuilt by another worker meanwhile (a new
    # epoch) is taken as it is, this worker starting a new total on it.

    def _names(self, key: str, period: str) -> list[str]:
        base = f"{self.prefix}{_KEY}{{{key}}}"  # one hash slot per key
        return [f"{base}:{period}", f"{base}:m"]

    async def _seed(self, name: str, key: str, period: str, expires_in_s: float, ledger: KeyLedger) -> bool:
        spend = await ledger.seed(key, period)
        created = await self._call(
            self._key_scripts["seed"], [name], [spend, max(60, math.ceil(expires_in_s)), secrets.token_hex(8)]
        )
        return created is not None

    def _seen(self, key: str, period: str, spend: Any, expires_in_s: float) -> int | None:
        if not spend:
            return None
        value = int(spend)
        self.local.note_key_spend(key, period, value, expires_in_s)
        return value

    async def admit_key(
        self,
        key: str,
        *,
        rpm: int | None,
        tpm: int | None,
        budget: int | None,
        period: str,
        expires_in_s: float,
        ledger: KeyLedger,
        when_down: str = "open",
    ) -> KeyVerdict:
        names = self._names(key, period)
        args = [_limit(rpm), _limit(tpm), _limit(budget)]
        reply = await self._call(self._key_scripts["admit"], names, args)
        if reply is not None and int(reply[0]) == -1:
            seeded = await self._seed(names[0], key, period, expires_in_s, ledger)
            reply = await self._call(self._key_scripts["admit"], names, args) if seeded else None
        if reply is None:
            if when_down == "closed":
                return KeyVerdict(False, "unavailable", max(1.0, self._down_until - time.monotonic()))
            return await self.local.admit_key(
                key, rpm=rpm, tpm=tpm, budget=budget, period=period, expires_in_s=expires_in_s, ledger=ledger
            )
        if int(reply[0]) == 1:
            return KeyVerdict(True, spend=self._seen(key, period, reply[1], expires_in_s))
        reason = _text(reply[1])
        if reason == "budget":
            return KeyVerdict(False, reason, spend=self._seen(key, period, reply[2], expires_in_s))
        limit = rpm if reason == "requests" else tpm
        assert limit is not None
        return KeyVerdict(False, reason, wait_s(float(reply[2]), float(reply[3]), float(reply[4]), limit))

    async def settle_key(
        self,
        key: str,
        *,
        tokens: int,
        spend: int,
        budget: int | None,
        period: str,
        expires_in_s: float,
        ledger: KeyLedger,
    ) -> int | None:
        """Not to be called concurrently for one store (providers/keys.py settles one sum of
        requests at a time): a rebuilt hash restarts this worker's total from the sum in hand."""
        await self.resend_keys(ledger)
        sent = self._sent.get((key, period))
        if sent is None:
            self._forget_confirmed(key)
            sent = self._sent[(key, period)] = _Sent(budget, expires_in_s)
        sent.budget, sent.counted = budget, sent.counted + spend
        after = await self._send(key, period, sent, spend, tokens, ledger)
        if after is None:  # Redis away: counted here; sent again with the next settle
            return await self.local.settle_key(
                key,
                tokens=tokens,
                spend=spend,
                budget=budget,
                period=period,
                expires_in_s=expires_in_s,
                ledger=ledger,
                alert=False,
            )
        return after

    async def _send(self, key: str, period: str, sent: _Sent, spend: int, tokens: int, ledger: KeyLedger) -> int | None:
        """Send this worker's total on the key's hash; the spend after it, or None (Redis away)."""
        names = self._names(key, period)
        for _ in range(3):
            total = sent.counted
            reply = await self._call(
                self._key_scripts["settle"],
                names,
                [tokens, total, _limit(sent.budget), sent.epoch or "", self.worker, *KEY_THRESHOLDS],
            )
            if reply is None:
                return None
            status = int(reply[0])
            if status == 1:
                sent.epoch = _text(reply[2]) or sent.epoch
                sent.confirmed = max(sent.confirmed, total)
                after = self._seen(key, period, reply[1], sent.expires_in_s)
                if after is not None and sent.budget is not None:
                    for percent in reply[3:]:
                        ledger.crossed(key, period, int(percent), after, sent.budget)
                return after
            # The hash is missing (seeded now, from the database: it has every request this
            # worker counted before this one) or was rebuilt by another worker: a new total.
            if status == -1 and not await self._seed(names[0], key, period, sent.expires_in_s, ledger):
                return None
            sent.epoch, sent.counted, sent.confirmed = None, spend, 0
        raise RuntimeError(f"key limits: the spend hash of key {key} keeps changing")

    async def resend_keys(self, ledger: KeyLedger) -> bool:
        for (key, period), sent in list(self._sent.items()):
            if sent.counted > sent.confirmed and await self._send(key, period, sent, 0, 0, ledger) is None:
                return True  # still away
        return False

    def _forget_confirmed(self, key: str) -> None:
        """A new period for `key`: totals of its past periods that Redis confirmed are done."""
        for old in [k for k, s in self._sent.items() if k[0] == key and s.counted == s.confirmed]:
            del self._sent[old]

    async def key_spend(self, key: str, *, period: str, expires_in_s: float, ledger: KeyLedger) -> int:
        names = self._names(key, period)
        reply = await self._call(self._key_scripts["spend"], names, [])
        if reply is not None and int(reply[0]) == -1:
            seeded = await self._seed(names[0], key, period, expires_in_s, ledger)
            reply = await self._call(self._key_scripts["spend"], names, []) if seeded else None
        if reply is None:
            return await self.local.key_spend(key, period=period, expires_in_s=expires_in_s, ledger=ledger)
        return int(reply[1])

    async def aclose(self) -> None:
        await self.client.aclose()

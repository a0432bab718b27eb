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
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import redis.asyncio

log = logging.getLogger(__name__)


def _estimate(previous: float, current: float, into_minute: float) -> float:
    return previous * (1.0 - into_minute) + current


class LimitStore(Protocol):
    async def take(self, key: str, rpm: int | None, tpm: int | None) -> bool:
        """Count one request for `key` if it stays within both limits; False (nothing
        counted) when it would not."""
        ...

    async def add_tokens(self, key: str, tokens: int) -> None: ...

    def usage(self, key: str) -> tuple[float, float]:
        """(requests, tokens) in the sliding minute, as this process last knew them."""
        ...


class LocalLimits:
    """In-process counts. `now` is wall-clock seconds (minutes are calendar minutes)."""

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self._counts: dict[str, dict[int, list[int]]] = {}  # key -> minute -> [requests, tokens]

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


class RedisLimits:
    """Counts shared through Redis; local counting while Redis is unreachable."""

    def __init__(self, client: redis.asyncio.Redis, *, prefix: str = "gw:limit:", op_timeout_s: float = 0.05,
                 retry_after_s: float = 5.0) -> None:
        self.client = client
        self.prefix = prefix
        self.op_timeout_s = op_timeout_s
        self.retry_after_s = retry_after_s
        self.local = LocalLimits()
        self._script = client.register_script(_SCRIPT)
        self._down_until = 0.0

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "gw:limit:", op_timeout_s: float = 0.05,
                 retry_after_s: float = 5.0) -> RedisLimits:
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        return cls(client, prefix=prefix, op_timeout_s=op_timeout_s, retry_after_s=retry_after_s)

    async def _run(self, key: str, rpm: int | None, tpm: int | None, add: int) -> bool | None:
        """The script's answer, or None when Redis is away (the caller counts locally)."""
        if time.monotonic() < self._down_until:
            return None
        try:
            async with asyncio.timeout(self.op_timeout_s):
                result = await self._script(keys=[self.prefix + key],
                                            args=[-1 if rpm is None else rpm, -1 if tpm is None else tpm, add])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("request limits: Redis did not answer (%s); counting locally for %.0f s",
                        type(exc).__name__, self.retry_after_s)
            self._down_until = time.monotonic() + self.retry_after_s
            return None
        return bool(result)

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

    async def aclose(self) -> None:
        await self.client.aclose()

"""The response cache: identical requests within a route's TTL are answered without a provider.

Exact match. The key is a hash of what decides the answer: the route the caller named, the
endpoint (capability and the caller's API dialect), the caller's cache scope (the API key's
id: one key never reads another's answers) and the request body with its keys sorted. A body
that differs in any value is a miss; one whose keys only come in another order is a hit.

What is kept: the answer's bytes as the client got them, its media type, who served it and
its usage and cost (so a hit says who served the original, and analytics count what it saved).
Only successful answers are kept: a non-streamed 200, or the whole relayed event stream of a
stream that ended well (replayed on a hit as one text/event-stream body); never an error or a
stream that broke or was cut, and none larger than RESPONSE_CACHE_MAX_BYTES. A hit costs
nothing and calls nobody. The gateway's views do the keeping (views.py, `_serve`); this module
is the key and the stores.

Stores: `LocalCache` (in-process, LRU-bounded to RESPONSE_CACHE_MAX_ENTRIES, expiring by the
clock it is given) and `RedisCache` (shared by every worker, `SET .. EX ttl`; Redis away means
a miss, never an error). `X-Gateway-Cache: hit|miss|bypass` says what happened; a request
header `X-Gateway-Cache: no-cache` bypasses the lookup (the fresh answer is still stored).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)

HIT, MISS, BYPASS = "hit", "miss", "bypass"


@dataclass(frozen=True)
class Cached:
    """One kept answer."""

    content: bytes
    media_type: str
    provider: str
    model: str
    tokens_in: int = 0
    tokens_out: int = 0
    cost: str = "0"  # what the answer cost when a provider made it (a hit saves it)

    def dumps(self) -> bytes:
        head = {k: v for k, v in asdict(self).items() if k != "content"}
        return json.dumps(head, separators=(",", ":")).encode() + b"\n" + self.content

    @classmethod
    def loads(cls, data: bytes) -> Cached | None:
        head, sep, content = data.partition(b"\n")
        if not sep:
            return None
        try:
            fields = json.loads(head)
            return cls(content=content, **fields)
        except (ValueError, TypeError):
            return None


def cache_key(*, route: str, endpoint: str, scope: str, body: Any) -> str:
    """The key of a request: the same for bodies equal as JSON values, whatever their key order."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    digest = hashlib.sha256()
    for part in (route, endpoint, scope, canonical):
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()


class ResponseCache(Protocol):
    async def get(self, key: str) -> Cached | None: ...

    async def put(self, key: str, value: Cached, ttl_s: float) -> None: ...


class LocalCache:
    """In-process: least recently used first out past `max_entries`; expired on read."""

    def __init__(self, max_entries: int = 10_000, now: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self._now = now
        self._entries: OrderedDict[str, tuple[float, Cached]] = OrderedDict()

    async def get(self, key: str) -> Cached | None:
        found = self._entries.get(key)
        if found is None:
            return None
        expires, value = found
        if expires <= self._now():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    async def put(self, key: str, value: Cached, ttl_s: float) -> None:
        if ttl_s <= 0:
            return
        self._entries[key] = (self._now() + ttl_s, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class RedisCache:
    """Shared by every worker. A Redis that does not answer within `op_timeout_s` is a miss
    (and a put that is skipped): the cache saves calls, it never fails a request."""

    def __init__(self, client: Any, *, prefix: str = "gw:cache:", op_timeout_s: float = 0.05) -> None:
        self.client = client
        self.prefix = prefix
        self.op_timeout_s = op_timeout_s

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisCache:
        import redis.asyncio

        return cls(redis.asyncio.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1), **kwargs)

    async def get(self, key: str) -> Cached | None:
        try:
            async with asyncio.timeout(self.op_timeout_s):
                data = await self.client.get(self.prefix + key)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("response cache: Redis did not answer (%s): a miss", type(exc).__name__)
            return None
        return Cached.loads(data) if data else None

    async def put(self, key: str, value: Cached, ttl_s: float) -> None:
        if ttl_s <= 0:
            return
        try:
            async with asyncio.timeout(self.op_timeout_s):
                await self.client.set(self.prefix + key, value.dumps(), px=max(1, int(ttl_s * 1000)))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("response cache: Redis did not answer (%s): answer not kept", type(exc).__name__)

    async def aclose(self) -> None:
        await self.client.aclose()

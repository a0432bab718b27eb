"""What this process knows of the shared layer in Redis, and how it stays fresh.

Sync reads (`state`, `cooldowns`, `counts`, `probes_in_flight`) answer from this per-process
cache. Scripts that change shared state publish the new state on `<prefix>events`; the
listener applies it at once, and the refresher re-reads every known key every
0.9 x `cache_ttl_s` (one script, one round trip), so the cache is never older than
`cache_ttl_s` even if a message is lost. On (re)connecting, every shared key is read first.

Operator actions made in another process (reset, force open, modes, cooldown resets) are
mirrored into this process's local layer, so they also hold while Redis is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from dataclasses import replace
from typing import Any

from .redis_link import RedisLink
from .store import CLOSED, HALF_OPEN, NORMAL, BreakerState, Cooldown, LocalStateStore, Slot
from .window import WindowCounts

log = logging.getLogger(__name__)

SHARED, LOCAL, FREE = "shared", "local", "free"  # FREE: a probe token that holds no slot
OPERATOR_REASONS = ("manual_reset", "forced_open")
_SCOPE_SEP = "\x1f"  # between credential and scope in a cooldown's hash field (in no id or model name)


class SharedEntry:
    """What this process last knew of one key's shared layer (local clock)."""

    __slots__ = ("cooldowns", "counts", "counts_at", "cver", "probes", "state", "ver")

    def __init__(self) -> None:
        self.state: BreakerState | None = None  # None: not read yet
        self.ver = -1
        self.cooldowns: dict[Slot, Cooldown] = {}
        self.cver = -1
        self.probes: tuple[int, list[float]] = (-1, [])  # (generation, live expiries)
        self.counts: WindowCounts | None = None
        self.counts_at = -math.inf


def cooldown_field(slot: Slot) -> str:
    """A cooldown's hash field: "-" or "=<credential>", then the separator and the scope."""
    credential, scope = slot
    head = "-" if credential is None else "=" + credential
    return head + _SCOPE_SEP + scope if scope else head


def _slot(field: str) -> Slot:
    head, _, scope = field.partition(_SCOPE_SEP)
    return (None if head == "-" else head[1:]), scope


def _pairs(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []  # cjson encodes an empty table as {}


class SharedCache:
    """The shared layer as last read, per breaker key, and the tasks that keep it fresh."""

    def __init__(self, link: RedisLink, local: LocalStateStore, *, prefix: str, reporter_id: str) -> None:
        self.link = link
        self.local = local
        self.prefix = prefix
        self.reporter_id = reporter_id
        self.channel = prefix + "events"
        self.entries: dict[str, SharedEntry] = {}
        self.base: dict[str, int] = {}  # generations Redis forgot, per key (never go back)
        self.windows: dict[str, tuple[float, int]] = {}  # (window_s, buckets) per counted key
        self.pending: set[str] = set()  # keys to read at the refresher's next turn

    def base_name(self, key: str) -> str:
        return f"{self.prefix}{{{key}}}"

    def entry(self, key: str) -> SharedEntry:
        entry = self.entries.get(key)
        if entry is None:
            entry = self.entries[key] = SharedEntry()
        return entry

    def discover(self, key: str) -> None:
        """First sight of `key`: have the refresher read it now rather than at its next tick."""
        if key not in self.pending:
            self.pending.add(key)
            if self.link.bind() and self.link.wake is not None:
                self.link.wake.set()

    # applying what Redis says --------------------------------------------------------------
    def apply_state(self, key: str, fields: list[Any], *, force: bool = False) -> bool:
        """Cache a shared state read from Redis. True if it is a write we see happen (newer
        than what we held), False if it is not newer or the first we hear of the key."""
        entry = self.entry(key)
        ver = int(fields[8] or 0)
        if entry.state is not None and not force and ver <= entry.ver:
            return False  # older than (or the same as) what we hold: replies and messages race
        seen = entry.state is not None and ver > entry.ver
        to_local = self.link.time.local
        st = BreakerState(
            state=fields[0] or CLOSED,
            generation=int(fields[1] or 0),
            open_until=to_local(fields[2]) if fields[2] else None,
            opened_count=int(fields[3] or 0),
            reason=fields[4] or "",
            since=to_local(fields[5]) if fields[5] else 0.0,
            mode=fields[6] or NORMAL,
            cause=fields[7] or "",
        )
        old = entry.state
        if old is not None and st.generation < old.generation:
            # Redis lost this key (restarted without persistence): never let the breaker's
            # generation go back, or an old permit could pass for a current one.
            self.base[key] = self.base.get(key, 0) + old.generation - st.generation + 1
        entry.state, entry.ver = st, ver
        if st.state != HALF_OPEN or entry.probes[0] != st.generation:
            entry.probes = (st.generation, [])
        return seen

    async def mirror(self, key: str, origin: Any) -> None:
        """Another process's operator action (reset, force open, mode): apply it to our local
        layer too, so that it also holds while Redis is away."""
        st = self.entries[key].state
        if (
            st is None
            or origin == self.reporter_id
            or not (st.reason in OPERATOR_REASONS or st.reason.startswith("mode_"))
        ):
            return
        loc = self.local.state(key)
        await self.local.compare_and_set(key, loc, replace(st, generation=loc.generation + 1))
        if st.reason != "forced_open":
            await self.local.clear_counts(key)

    def apply_cooldowns(self, key: str, cver: Any, pairs: list[Any], *, force: bool = False) -> None:
        entry = self.entry(key)
        cver = int(cver or 0)
        if cver < entry.cver and not force:
            return
        book: dict[Slot, Cooldown] = {}
        for i in range(0, len(pairs) - 1, 2):
            field, value = pairs[i], json.loads(pairs[i + 1])
            credential, scope = _slot(field)
            until = self.link.time.local(value["u"]) if value["u"] != "" else None
            book[credential, scope] = Cooldown(
                credential, value["k"], until, value.get("r", ""), scope, value.get("v", "")
            )
        entry.cooldowns, entry.cver = book, cver

    def set_probes(self, key: str, gen: int, live: list[Any]) -> None:
        """Cache the live probe reservations of `gen` (a reply's member, expiry pairs)."""
        to_local = self.link.time.local
        self.entry(key).probes = (gen, sorted(to_local(live[i]) for i in range(1, len(live), 2)))

    async def refresh(self, keys: list[str], *, force: bool = False) -> None:
        """Re-read `keys` (state, cooldowns, live probes, pooled counts), 64 per round trip."""
        for i in range(0, len(keys), 64):
            chunk = keys[i : i + 64]
            args: list[Any] = []
            for key in chunk:
                window = self.windows.get(key)
                bucket_ms = f"{window[0] / window[1] * 1000:.3f}" if window else ""
                args += [self.base_name(key), bucket_ms, window[1] if window else 0]
            reply = await self.link.run("snapshot", [self.base_name(k) + ":s" for k in chunk], args, at=0, caller=False)
            if reply is None:
                return
            now = self.link.clock.monotonic()
            for j, key in enumerate(chunk):
                fields, cooldowns, probes, counts = reply[1 + 4 * j : 5 + 4 * j]
                if self.apply_state(key, fields, force=force):
                    await self.mirror(key, fields[11])
                self.apply_cooldowns(key, fields[10], _pairs(cooldowns), force=force)
                entry = self.entries[key]
                if fields[0] == "half_open":
                    entry.probes = (int(fields[1] or 0), sorted(self.link.time.local(e) for e in probes))
                if counts:
                    entry.counts = WindowCounts(*(int(c) for c in counts[:4]))
                    entry.counts_at = now

    async def on_message(self, data: str) -> None:
        if self.link.time.offset is None:
            return  # cannot convert its times yet; the refresher reads the key anyway
        msg = json.loads(data)
        key = msg["k"]
        if msg["t"] == "s":
            if self.apply_state(key, msg["s"]):
                await self.mirror(key, msg["s"][11])
        elif msg["t"] == "c":
            self.apply_cooldowns(key, msg["v"], _pairs(msg["c"]))
            if msg.get("x") and msg.get("o") != self.reporter_id:
                await self.local.clear_cooldowns(key)  # an operator's reset, made elsewhere
            elif msg.get("d") and msg.get("o") != self.reporter_id:
                await self.local.drop_cooldown(key, _slot(msg["d"]))  # dropped elsewhere

    # the workers ---------------------------------------------------------------------------
    async def reconnect(self) -> None:
        """(Re)connect while Redis is considered down; on success re-read every key (those
        known here and those Redis holds) before the shared layer is used again."""
        link = self.link
        if not await link.open():
            return
        keys = set(self.entries) | self.pending
        with contextlib.suppress(Exception):  # a slow scan only means keys are read on first use
            async with asyncio.timeout(2 * link.patience):
                keys.update(await link.scan_keys(self.prefix))
        self.pending.clear()
        await self.refresh(sorted(keys), force=True)
        link.mark_up()

    async def refresh_forever(self) -> None:
        link = self.link
        period = 0.9 * link.cache_ttl_s
        next_full = 0.0
        assert link.wake is not None
        while True:
            gate = link.gate
            now = link.clock.monotonic()
            wait = period
            try:
                if gate.open:
                    if now >= gate.retry_at:
                        await self.reconnect()
                    wait = max(0.0, gate.retry_at - link.clock.monotonic()) if gate.open else 0.0
                else:
                    if self.pending:
                        keys, self.pending = sorted(self.pending), set()
                        await self.refresh(keys)
                    if now >= next_full:
                        next_full = now + period
                        await self.refresh(list(self.entries))
                    wait = max(0.0, next_full - link.clock.monotonic())
            except Exception:  # a reply we could not read: keep the cache, say why, go on
                log.exception("Redis state refresh failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await link.wake.wait()
            link.wake.clear()

    async def listen_forever(self) -> None:
        """Apply published transitions and cooldowns as they happen (§8 pub/sub invalidation)."""
        link = self.link
        assert link.up is not None and link.subscribed is not None
        listener = link.new_client(None, link.patience)
        try:
            while True:
                await link.up.wait()
                pubsub = listener.pubsub(ignore_subscribe_messages=True)
                try:
                    async with asyncio.timeout(link.patience):
                        await pubsub.subscribe(self.channel)
                    link.subscribed.set()
                    self.resync()  # what changed before we listened
                    while True:
                        msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=link.cache_ttl_s)
                        if msg is not None and msg.get("type") == "message":
                            try:
                                await self.on_message(msg["data"])
                            except Exception:  # one unreadable message: say so, read on
                                log.exception("unreadable Redis state message %r", msg["data"])
                except Exception as exc:
                    link.subscribed.clear()
                    link.report(exc)
                    await link.quietly(listener.connection_pool.disconnect())
                    if link.up.is_set():  # a listener-only failure: do not spin
                        await asyncio.sleep(link.cache_ttl_s)
                finally:
                    link.subscribed.clear()
                    await link.quietly(pubsub.aclose())
        finally:
            await link.quietly(listener.aclose())

    def resync(self) -> None:
        self.pending.update(self.entries)
        if self.link.wake is not None:
            self.link.wake.set()

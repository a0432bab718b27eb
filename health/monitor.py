"""The monitoring loop, built like healthchecks' `sendalerts`: small steps that each say
whether they did work, and a tick that says whether more work is ready right now, run by a
loop that stops cleanly on a stop event.

One tick (`Monitor.tick`):
1. `lead()`: hold the lease, so only one monitor probes (a second waits and takes over
   when the first stops renewing);
2. `start_probes()`: every provider whose interval (jittered ±10 %) has passed is probed in
   a task of its own, with its own timeout and a bounded number at once, so a hung provider
   never delays the others or the tick; returns how many it started;
3. `collect()`: finished probes feed the engine's window (the same one live calls feed),
   and their results are stored; returns them;
4. `evaluate()`: every provider's score, status (debounced) and breaker state are computed;
   whatever differs from the row as last saved (a probe's result too) is saved in one batch,
   status changes are logged as events with their reason, and changes pushed to the consoles;
   incidents open and resolve on what it decided (health/incidents.py), and the alerts go by
   them (health/alerts.py); returns the changed names;
5. `housekeeping()`: retention, the model catalog, now and then; returns whether it ran.

`tick()` returns `ready()`: True when work is ready right now (a probe finished after
`collect` looked, a provider fell due after `start_probes` looked), and the loop goes round
again at once. Otherwise `run()` sleeps until the first of: a stop, a wake (a breaker changed
in this process), a probe in flight finishing, the next provider due, the lease's renewal,
or MONITOR_TICK_S (which keeps every provider evaluated, and housekeeping looked at, that
often).

The breaker belongs to the engine: a probe takes a permit and reports through it (or
through `engine.record` when refused); the monitor only reads the state the engine gives.

Tests call one tick; `run()` is the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from project.database import db_call
from providers.engine import CircuitOpen, Outcome, Permit, classify_exception
from providers.models import Provider
from providers.runtime import Runtime, runtime
from providers.snapshot import ProviderEntry

from . import cooldowns, incidents, scores
from .alerts import Alerter, Observation
from .events import publish
from .lease import Lease
from .models import HealthEvent, ProbeResult, ProviderHealth

log = logging.getLogger(__name__)

TARGET_P95_MS = {
    "chat": 3000.0,
    "embeddings": 1000.0,
    "image": 30000.0,
    "tts": 2000.0,
    "stt": 5000.0,
    "translation": 1000.0,
}


@dataclass
class ProbeOutcome:
    provider: str
    at: datetime
    ok: bool
    slow: bool
    latency_ms: float
    error: str
    detail: dict[str, Any]


@dataclass
class HealthView:
    """The monitor's copy of a ProviderHealth row (saved when what it shows changes)."""

    status: str = "unknown"
    reason: str = ""
    score: float | None = None
    parts: dict[str, float] | None = None
    breaker: str = "closed"
    success_rate: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    calls: int = 0
    last_check_at: datetime | None = None
    last_check_ok: bool | None = None
    last_check_ms: float | None = None
    last_error: str = ""
    detail: dict[str, Any] | None = None
    pending: str = ""
    pending_count: int = 0
    pending_since: datetime | None = None
    fact: bool = False  # a fact decided the status at the last evaluation (not stored)

    def key(self) -> tuple[Any, ...]:
        """What the console shows of the row: a change of any of it is saved on this tick.
        The score and the rate are rounded, so noise in the last digit costs no write."""
        return (
            self.status,
            self.reason,
            None if self.score is None else round(self.score),
            self.breaker,
            None if self.success_rate is None else round(self.success_rate, 3),
            self.last_check_at,
            self.last_check_ok,
            self.last_check_ms,
            self.last_error,
            self.detail or {},
            self.pending,
            self.pending_count,
            self.pending_since,
        )


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{id(asyncio.get_running_loop()):x}"


class Monitor:
    def __init__(
        self,
        rt: Runtime | None = None,
        *,
        now: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        holder: str | None = None,
    ) -> None:
        self.rt = rt or runtime()
        self.now = now
        self.rng = rng or random.Random()
        self.lease = Lease("monitor", holder or holder_id(), settings.MONITOR_LEASE_S, now=now)
        self.semaphore = asyncio.Semaphore(settings.MONITOR_CONCURRENCY)
        self.inflight: dict[str, asyncio.Task[ProbeOutcome]] = {}
        self.due: dict[str, float] = {}  # provider -> next probe (epoch seconds)
        self.views: dict[str, HealthView] = {}
        # What each row holds as last saved (HealthView.key): whatever differs from it, a
        # probe's result as much as a status, is saved on the next evaluation.
        self.saved: dict[str, tuple[Any, ...]] = {}
        self.leading = False
        self._loaded = False
        self._housekeeping_at = 0.0
        self._catalog_checked: dict[str, float] = {}
        self._intervals: dict[str, float] = {}
        self._probes_seen_id = 0  # probe results up to this id are taken in
        self._probe_settings: dict[str, tuple[float, bool]] = {}
        self._probed: list[str] = []  # the enabled providers start_probes saw last
        self.wake = asyncio.Event()
        sink = getattr(self.rt, "event_sink", None)
        if sink is not None:
            sink.on_breaker_change = self.wake.set
        self.alerter = Alerter()

    # -- 1. leadership -----------------------------------------------------------------------

    async def lead(self) -> bool:
        was = self.leading
        self.leading = await db_call(self.lease.acquire)
        if self.leading and not was:
            log.info("monitor %s leads", self.lease.holder)
            self._loaded = False  # pick up what the previous leader left
        elif was and not self.leading:
            log.warning("monitor %s lost the lease", self.lease.holder)
            for task in self.inflight.values():
                task.cancel()
        return self.leading

    async def load(self, snapshot_names: list[str]) -> None:
        rows = await db_call(_load_health, snapshot_names)
        now = self.now()
        for name, (view, last) in rows.items():
            self.views[name] = view
            self.saved[name] = view.key()
            if last is not None:  # a new leader does not probe again what was probed just now
                self.due.setdefault(name, last.timestamp() + self._intervals.get(name, 30.0))
        for name in snapshot_names:
            self.views.setdefault(name, HealthView())
            self.due.setdefault(name, now)
        self._loaded = True

    # -- 2. probes ---------------------------------------------------------------------------

    async def start_probes(self) -> int:
        snapshot = await self.rt.current()
        now = self.now()
        started = 0
        self._probed = [name for name, provider in snapshot.providers.items() if provider.enabled]
        for name, provider in snapshot.providers.items():
            if name in self.inflight or not provider.enabled:
                continue
            if self.due.get(name, 0) > now:
                continue
            interval = self._intervals.get(name, 30.0)
            self.due[name] = now + interval * self.rng.uniform(0.9, 1.1)
            self.inflight[name] = asyncio.get_running_loop().create_task(self.probe(provider))
            started += 1
        return started

    async def probe(self, provider: ProviderEntry) -> ProbeOutcome:
        timeout_s, deep = self._probe_settings.get(provider.name, (10.0, False))
        credential = provider.credentials[0][0] if provider.credentials else None
        model = provider.models[0] if provider.models else None
        engine = self.rt.engine
        async with self.semaphore:
            # A probe is a call: closed or half-open, it takes a permit and reports through
            # it, so a healthy probe can close a half-open breaker even when no live traffic
            # comes; open (or no probe slot free), it is counted as statistics only.
            breaker = engine.breaker(provider.name, provider.breaker)
            try:
                permit: Permit | None = await breaker.acquire()
            except CircuitOpen:
                permit = None
            at = datetime.fromtimestamp(self.now(), tz=UTC)
            started = time.perf_counter()
            try:
                adapter = self.rt.adapter(provider, credential)  # may refuse stored options
                async with asyncio.timeout(timeout_s):
                    detail = await adapter.probe(timeout=timeout_s, deep=deep, model=model)
                error, outcome = "", Outcome.SUCCESS
            except asyncio.CancelledError:
                if permit is not None:
                    await breaker.release(permit)
                raise
            except TimeoutError:
                detail, error, outcome = {}, f"no answer within {timeout_s:g} s", Outcome.DEADLINE
            except Exception as exc:
                classification = classify_exception(exc)
                detail, outcome = {}, classification.outcome
                error = f"{classification.reason}: {getattr(exc, 'message', None) or exc}"[:500]
            latency = time.perf_counter() - started
        slow_s = min(provider.breaker.slow_call_s, timeout_s / 2)
        ok = outcome is Outcome.SUCCESS
        # The engine decides what counts: an outcome that says nothing about the provider's
        # health (a caller error, a bad key) only gives the permit back, changing no counter.
        if permit is not None:
            await breaker.record(permit, outcome, latency)
            if ok:
                engine.latency.add(provider.name, latency)
        else:
            await engine.record(provider.name, outcome, latency, provider.breaker)
        return ProbeOutcome(
            provider.name,
            at,
            ok,
            ok and latency > slow_s,
            latency * 1000,
            error,
            detail if isinstance(detail, dict) else {},
        )

    # -- 3. results --------------------------------------------------------------------------

    async def collect(self) -> list[ProbeOutcome]:
        """Store finished probes, then take in every probe result newer than the last seen
        (ours, and those run by "check now" from the API or the console)."""
        done = [name for name, task in self.inflight.items() if task.done()]
        results: list[ProbeOutcome] = []
        for name in done:
            task = self.inflight.pop(name)
            if task.cancelled():
                continue
            try:
                results.append(task.result())
            except Exception:
                log.exception("probe of %s failed unexpectedly", name)
        if results:
            await db_call(store_probes, results)
        latest = await db_call(_latest_probes, self._probes_seen_id)
        for name, row in latest.items():
            self._probes_seen_id = max(self._probes_seen_id, row.pk)
            view = self.views.setdefault(name, HealthView())
            if view.last_check_at is None or row.at >= view.last_check_at:
                view.last_check_at, view.last_check_ok = row.at, row.ok
                view.last_check_ms = round(row.latency_ms, 1)
                view.last_error, view.detail = row.error, row.detail
        return results

    # -- 4. evaluation -----------------------------------------------------------------------

    async def evaluate(self) -> list[str]:
        """Score every provider; save what changed since the last save in one batch (a probe's
        result included, so every probe shows within one tick), log status changes and
        publish. Returns the changed names."""
        snapshot = await self.rt.current()
        engine = self.rt.engine
        weights = scores.Weights(*settings.HEALTH_SCORE_WEIGHTS)
        flap = scores.Damping.of(
            getattr(settings, "HEALTH_FLAP_CHECKS", None), getattr(settings, "HEALTH_FLAP_SECONDS", None)
        )
        events: list[tuple[str, str, str, str]] = []
        computed: dict[str, float] = {}
        observations: list[Observation] = []
        at = datetime.fromtimestamp(self.now(), tz=UTC)
        snaps = {}
        for name in snapshot.providers:
            await engine.refresh(name)
            snaps[name] = engine.snapshot(name)
        set_aside = {name: cooldowns.of_snapshot(snap) for name, snap in snaps.items() if snap.cooldowns}
        reasons = await db_call(cooldowns.reasons, set_aside) if set_aside else {}
        for name, provider in snapshot.providers.items():
            snap = snaps[name]
            view = self.views.setdefault(name, HealthView())
            cooling, cooling_reason, rejected = cooldowns.set_aside(
                name, set_aside.get(name, []), [c for c, _ in provider.credentials], reasons
            )
            probe = None if view.last_check_ok is None else ("failed" if not view.last_check_ok else "ok")
            inputs = scores.Inputs(
                enabled=provider.enabled,
                maintenance=provider.maintenance,
                breaker=snap.state,
                cooling=cooling,
                probe=probe,
                success_rate=snap.success_rate,
                calls=snap.calls,
                p95_ms=snap.p95_ms,
                target_p95_ms=TARGET_P95_MS.get(provider.capabilities[0] if provider.capabilities else "chat", 3000.0),
                cooling_reason=cooling_reason,
                rejected=rejected,
            )
            result = scores.score(inputs, weights)
            seen, why = scores.status_of(inputs)
            # A fact (forced open, every credential set aside, a credential refused) and its
            # end show at once: the alert it may send names the status it calls for.
            fact = scores.fact(inputs) is not None or bool(rejected)
            damping = flap.over(provider.flap_checks, provider.flap_seconds)
            decided = scores.debounce(
                view.status,
                view.pending,
                view.pending_count,
                seen,
                damping.checks,
                immediate=fact or view.fact,
                now=self.now(),
                hold_s=damping.seconds,
                since=None if view.pending_since is None else view.pending_since.timestamp(),
            )
            if decided.changed:
                events.append((name, view.status, decided.status, why))
            view.status, view.pending, view.pending_count = decided.status, decided.pending, decided.count
            view.pending_since = None if decided.since is None else datetime.fromtimestamp(decided.since, tz=UTC)
            view.fact = fact
            if decided.status == seen:
                view.reason = why
            view.score, view.parts = result.total, result.parts
            view.breaker = {"metrics_only": "closed"}.get(snap.state, snap.state)
            view.success_rate, view.calls = snap.success_rate, snap.calls
            view.p50_ms, view.p95_ms = snap.p50_ms, snap.p95_ms
            if result.total is not None:
                computed[name] = result.total
            observations.append(
                Observation(
                    name,
                    view.status,
                    view.breaker,
                    provider.enabled,
                    provider.maintenance,
                    why if view.breaker != "open" else f"breaker open ({snap.reason}); {why}",
                    at,
                    rejected=cooling == cooldowns.REJECTED or bool(rejected),
                )
            )
        engine.set_scores(computed)
        changed = [name for name in snapshot.providers if self.views[name].key() != self.saved.get(name)]
        if changed or events:
            await db_call(_save_health, {n: self.views[n] for n in changed}, events)
            for name in changed:
                self.saved[name] = self.views[name].key()
                await publish({"type": "health.update", "provider": name})
        # Incidents open and resolve on what this evaluation decided; alerts are sent per incident.
        tracked = await db_call(incidents.track, observations)
        for event_id, name in tracked.events:
            await publish({"type": "health.event", "provider": name, "event_id": event_id})
        await self.alerter.observe(tracked.observations)
        return changed

    # -- 5. housekeeping ---------------------------------------------------------------------

    async def housekeeping(self) -> bool:
        """Retention and the model catalogs, every MONITOR_HOUSEKEEPING_S; True when it ran."""
        now = self.now()
        if now < self._housekeeping_at:
            return False
        self._housekeeping_at = now + settings.MONITOR_HOUSEKEEPING_S
        cutoff = timezone.now() - timedelta(days=settings.PROBE_RETENTION_DAYS)
        await db_call(lambda: ProbeResult.objects.filter(at__lt=cutoff).delete())
        try:
            from analytics.retention import apply_retention
        except ImportError:
            pass
        else:
            # bounded per pass, so a large backlog never holds up a tick for long
            await db_call(apply_retention, max_rows=settings.MONITOR_RETENTION_ROWS)
        await self.refresh_catalogs()
        return True

    async def refresh_catalogs(self) -> None:
        from providers.catalog import refresh_catalog

        snapshot = await self.rt.current()
        now = self.now()
        for name, provider in snapshot.providers.items():
            if not provider.enabled or provider.kind == "simulated":
                continue
            # A provider with no model known is asked at once; the others on the interval.
            last = self._catalog_checked.setdefault(name, 0.0 if not provider.models else now)
            if last and now - last < settings.CATALOG_REFRESH_S:
                continue
            self._catalog_checked[name] = now
            with contextlib.suppress(Exception):  # a provider that cannot list models is a probe's news
                await refresh_catalog(self.rt, name, timeout_s=10.0)

    # -- the loop ----------------------------------------------------------------------------

    async def tick(self) -> bool:
        """One round; True when more work is ready right now (`ready`)."""
        if not await self.lead():
            return False
        snapshot = await self.rt.current()
        await db_call(self._load_settings)
        if not self._loaded:
            await self.load(list(snapshot.providers))
        await self.start_probes()
        await self.collect()
        await self.evaluate()
        await self.housekeeping()
        return self.ready()

    def ready(self) -> bool:
        """Work ready right now: a probe that finished and is not collected yet, or a provider
        due and not started. Only the leader has work. (Housekeeping is not: it waits for the
        next tick, so a short MONITOR_HOUSEKEEPING_S never turns the loop into a spin.)"""
        if not self.leading:
            return False
        return any(task.done() for task in self.inflight.values()) or self.next_due_in() <= 0

    def next_due_in(self) -> float:
        """Seconds until the next probe of an enabled provider not in flight falls due
        (negative when overdue; infinite when none is waiting)."""
        due = [self.due.get(name, 0.0) for name in self._probed if name not in self.inflight]
        return min(due) - self.now() if due else math.inf

    def idle_s(self) -> float:
        """How long the loop sleeps when nothing wakes it: MONITOR_TICK_S (every provider is
        evaluated that often), and while leading no longer than until the next due work or
        a third of the lease (so it is renewed in time whatever MONITOR_TICK_S is)."""
        limit = settings.MONITOR_TICK_S
        if self.leading:
            limit = min(limit, self.lease.ttl_s / 3, max(self.next_due_in(), 0.0))
        return limit

    def _load_settings(self) -> None:
        rows = Provider.objects.values_list("name", "health_interval_s", "health_timeout_s", "health_probe")
        self._intervals = {n: i for n, i, _, _ in rows}
        self._probe_settings = {n: (t, p == "deep") for n, _, t, p in rows}

    async def wait_for_probes(self) -> None:
        """Let every probe in flight finish (tests; a clean stop)."""
        if self.inflight:
            await asyncio.wait(list(self.inflight.values()))

    async def run(self, stop: asyncio.Event) -> None:
        log.info("monitor starting as %s", self.lease.holder)
        while not stop.is_set():
            self.wake.clear()  # this tick evaluates what a wake until now was for
            try:
                await self.rt.refresh()
                more = await self.tick()
                idle_s = self.idle_s()
            except Exception:
                log.exception("monitor tick failed; trying again")
                # not at once: whatever failed may fail again, and work still "ready" must
                # not turn the loop into a spin
                more, idle_s = False, settings.MONITOR_TICK_S
            if more:
                await asyncio.sleep(0)  # the probes, the consoles and a stop get their turn
                continue
            await self.sleep(stop, idle_s)
        for task in self.inflight.values():
            task.cancel()
        if self.leading:
            await db_call(self.lease.release)
        log.info("monitor stopped")

    async def sleep(self, stop: asyncio.Event, timeout_s: float) -> None:
        """Wait for the first of: a stop, a wake (a breaker change in this process, so the
        consoles see the status follow the breaker at once), a probe in flight finishing
        (collected and shown at once), or `timeout_s`."""
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.wake.wait())]
        running = [task for task in self.inflight.values() if not task.done()]
        try:
            await asyncio.wait([*waiters, *running], timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()


def _load_health(names: list[str]) -> dict[str, tuple[HealthView, datetime | None]]:
    out = {}
    for row in ProviderHealth.objects.select_related("provider").filter(provider__name__in=names):
        view = HealthView(
            status=row.status,
            reason=row.reason,
            score=row.score,
            parts=row.score_parts,
            breaker=row.breaker,
            success_rate=row.success_rate,
            p50_ms=row.p50_ms,
            p95_ms=row.p95_ms,
            calls=row.calls,
            last_check_at=row.last_check_at,
            last_check_ok=row.last_check_ok,
            last_check_ms=row.last_check_ms,
            last_error=row.last_error,
            detail=row.detail,
            pending=row.pending_status,
            pending_count=row.pending_count,
            pending_since=row.pending_since,
        )
        out[row.provider.name] = (view, row.last_check_at)
    return out


def _latest_probes(after_id: int) -> dict[str, ProbeResult]:
    """The newest probe result per provider among those after `after_id` (on a first call,
    the last five minutes' only, not the whole history)."""
    rows = ProbeResult.objects.filter(pk__gt=after_id)
    if not after_id:
        rows = rows.filter(at__gte=timezone.now() - timedelta(minutes=5))
    latest: dict[str, ProbeResult] = {}
    for row in rows.select_related("provider").order_by("pk"):
        latest[row.provider.name] = row
    return latest


def store_probes(results: list[ProbeOutcome]) -> None:
    ids = dict(Provider.objects.filter(name__in=[r.provider for r in results]).values_list("name", "id"))
    ProbeResult.objects.bulk_create(
        [
            ProbeResult(
                provider_id=ids[r.provider],
                at=r.at,
                ok=r.ok,
                slow=r.slow,
                latency_ms=r.latency_ms,
                error=r.error,
                detail=r.detail,
            )
            for r in results
            if r.provider in ids
        ]
    )


HEALTH_FIELDS = (
    "status",
    "reason",
    "score",
    "score_parts",
    "breaker",
    "success_rate",
    "p50_ms",
    "p95_ms",
    "calls",
    "last_check_at",
    "last_check_ok",
    "last_check_ms",
    "last_error",
    "detail",
    "pending_status",
    "pending_count",
    "pending_since",
)


def _health_values(view: HealthView) -> dict[str, Any]:
    return {
        "status": view.status,
        "reason": view.reason,
        "score": view.score,
        "score_parts": view.parts or {},
        "breaker": view.breaker,
        "success_rate": view.success_rate,
        "p50_ms": view.p50_ms,
        "p95_ms": view.p95_ms,
        "calls": view.calls,
        "last_check_at": view.last_check_at,
        "last_check_ok": view.last_check_ok,
        "last_check_ms": view.last_check_ms,
        "last_error": view.last_error,
        "detail": view.detail or {},
        "pending_status": view.pending,
        "pending_count": view.pending_count,
        "pending_since": view.pending_since,
    }


def _save_health(views: dict[str, HealthView], events: list[tuple[str, str, str, str]]) -> None:
    """Save what changed in a few statements, whatever the number of providers."""
    ids = dict(Provider.objects.filter(name__in=list(views)).values_list("name", "id"))
    existing = {row.provider_id: row for row in ProviderHealth.objects.filter(provider_id__in=list(ids.values()))}
    changed, created = [], []
    for name, view in views.items():
        provider_id = ids.get(name)
        if provider_id is None:
            continue
        values = _health_values(view)
        row = existing.get(provider_id)
        if row is None:
            created.append(ProviderHealth(provider_id=provider_id, **values))
            continue
        for field, value in values.items():
            setattr(row, field, value)
        changed.append(row)
    now = timezone.now()
    with transaction.atomic():
        ProviderHealth.objects.bulk_create(created, batch_size=500)
        if changed:
            for row in changed:
                row.updated_at = now
            ProviderHealth.objects.bulk_update(changed, [*HEALTH_FIELDS, "updated_at"], batch_size=500)
        HealthEvent.objects.bulk_create(
            [
                HealthEvent(
                    provider_id=ids.get(name),
                    provider_name=name,
                    at=now,
                    kind=HealthEvent.Kind.STATUS,
                    old=old,
                    new=new,
                    reason=why,
                )
                for name, old, new, why in events
            ],
            batch_size=500,
        )


async def check_now(rt: Runtime, names: list[str]) -> list[ProbeOutcome]:
    """Probe these providers at once, outside the schedule (the API's and console's "check
    now"). Results feed the engine and are stored; the leading monitor takes them in."""
    snapshot = await rt.current()
    monitor = Monitor(rt, holder="check-now")
    await db_call(monitor._load_settings)
    outcomes = await asyncio.gather(*(monitor.probe(snapshot.providers[n]) for n in names))
    await db_call(store_probes, list(outcomes))
    await db_call(_mark_checked, list(outcomes))
    for outcome in outcomes:
        await publish({"type": "health.update", "provider": outcome.provider})
    return list(outcomes)


def _mark_checked(outcomes: list[ProbeOutcome]) -> None:
    """Show the result at once, before the monitor's next evaluation."""
    for outcome in outcomes:
        provider = Provider.objects.filter(name=outcome.provider).first()
        if provider is None:
            continue
        ProviderHealth.objects.update_or_create(
            provider=provider,
            defaults={
                "last_check_at": outcome.at,
                "last_check_ok": outcome.ok,
                "last_check_ms": round(outcome.latency_ms, 1),
                "last_error": outcome.error,
                "detail": outcome.detail,
            },
        )


async def run_embedded(stop: asyncio.Event) -> None:
    """The monitor inside the server process (settings.EMBEDDED_TASKS)."""
    await Monitor().run(stop)

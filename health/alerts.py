"""Alerts: when a provider goes bad, tell the alert channels; remind; say when it recovers.

Alerts are sent per incident (health/incidents.py): while a provider has an open incident
every evaluation counts as bad, even one that sees it degraded or its breaker half-open, so
an outage that wavers sends one alert and, once the incident resolves (healthy again, breaker
closed), one resolution ("recovery"). A muted incident (`muted_until` ahead) sends nothing:
its evaluations count as neither bad nor good, so when the mute ends the alert that is owed
(or the resolution) goes out. `failure_threshold` keeps its meaning: the consecutive bad
evaluations (with the incident open) before the alert; `success_threshold` the good ones
after it resolved. Acknowledging an incident tells the channels that sent its alert
(`notify_acknowledged`).

The monitor hands the `Alerter` one `Observation` per provider per evaluation. For each
(channel, provider) pair (a channel without providers covers every provider) the counts of
consecutive bad and good evaluations decide (`decide`, pure):

- bad: status unhealthy, the breaker open, or a credential the provider rejects (401/403:
  someone must replace the key, even while other credentials still serve). A breaker an
  operator forced open is a drill, not an incident (its status reads unhealthy, since it
  takes no traffic, but it does not alert), and half-open is neither bad nor good (it is
  still finding out), nor is `unknown` (no data yet);
- after `failure_threshold` bad ones in a row: one alert; while still bad, a reminder every
  `reminder_interval_s` (if set); after `success_threshold` good ones: one recovery notice
  (if `notify_recovery`), and the next incident alerts again;
- a disabled provider, or one in a maintenance window, is silenced: nothing is sent and the
  counts start afresh (an open incident is closed without a notice).

The counts live in `AlertState` rows (the database, so a restarted monitor carries on), and
they stop at their thresholds, so a long outage writes nothing per evaluation.

Delivery runs in background tasks, a bounded number at once, each attempt with a timeout:
the monitor's tick never waits for a receiver. Transient errors are retried a couple of
times with backoff; every delivery, sent or failed, is a HealthEvent (kind "alert", actor
"channel:<name>", old = what was sent, new = "sent" / "failed" / "failed permanently") and
is published. A failure is stored on the channel (`last_delivery_error`, `delivery_failures`,
reset on success); ALERT_DISABLE_AFTER permanent failures in a row disable the channel
with the reason in `disabled_reason`.

Grouping (ALERT_GROUPING, on by default): when several providers go bad in the same
evaluation (a shared network or an upstream region failing), each channel gets one alert
for all of them rather than one each; likewise their reminders and their recoveries that
fall in one evaluation (`group_deliveries`, pure). The grouped notice lists every member
(`Notice.group`); the delivery is sent, retried and counted towards ALERT_DISABLE_AFTER
once, and recorded once per member, so each provider's incident timeline still shows its
alert. Acknowledgements, tests and budget notices are never grouped.

A webhook channel that names event types (`events`) gets no alerts: it is an event feed
(health/forwarding.py), which the Alerter feeds at each evaluation too.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
import ssl
import time
import weakref
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import certifi
import httpx
from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Field, Q
from django.utils import timezone

from project import lifecycle
from project.database import db_call
from providers.adapters.scrub import ScrubbingTransport
from providers.engine import backoff_bound
from providers.models import Provider

from .events import publish, publish_sync, record_event
from .forwarding import Feeds
from .models import AlertChannel, AlertState, HealthEvent, Incident
from .transports import GROUPED_EVENTS, DeliveryError, Notice, transport

log = logging.getLogger(__name__)

__all__ = [
    "Alerter",
    "Counts",
    "Delivery",
    "Observation",
    "Rules",
    "decide",
    "group_deliveries",
    "notify_acknowledged",
    "plan_alerts",
    "record_delivery",
    "send_test_alert",
    "verdict",
]

BAD, GOOD, NEUTRAL, SILENCED = "bad", "good", "neutral", "silenced"
SENT, FAILED, FAILED_PERMANENTLY = "sent", "failed", "failed permanently"
RETRY_CAP_S = 30.0


@dataclass(frozen=True)
class Observation:
    """What one evaluation saw of one provider."""

    provider: str
    status: str
    breaker: str
    enabled: bool
    maintenance: bool
    reason: str
    at: datetime
    rejected: bool = False  # the provider refuses one of our credentials
    incident: int | None = None  # the provider's open incident (health/incidents.py)
    latest: int | None = None  # the provider's latest incident, open or recently resolved
    muted: bool = False  # the provider's incident is muted


def verdict(obs: Observation) -> str:
    if not obs.enabled or obs.maintenance or obs.status in ("disabled", "maintenance"):
        return SILENCED
    if obs.muted:
        return NEUTRAL
    if obs.rejected or obs.incident is not None:
        return BAD
    if obs.breaker == "forced_open":
        return GOOD
    if obs.status == "unhealthy" or obs.breaker == "open":
        return BAD
    if obs.status == "unknown" or obs.breaker == "half_open":
        return NEUTRAL
    return GOOD


@dataclass(frozen=True)
class Rules:
    failure_threshold: int
    success_threshold: int
    reminder_interval_s: int | None
    notify_recovery: bool

    @classmethod
    def of(cls, channel: AlertChannel) -> Rules:
        return cls(
            max(1, channel.failure_threshold),
            max(1, channel.success_threshold),
            channel.reminder_interval_s,
            channel.notify_recovery,
        )


@dataclass(frozen=True)
class Counts:
    bad: int = 0
    good: int = 0
    firing: bool = False
    since: datetime | None = None
    last_sent_at: datetime | None = None
    reminders: int = 0


QUIET = Counts()


def decide(counts: Counts, rules: Rules, seen: str, at: datetime) -> tuple[Counts, str | None]:
    """The counts after one evaluation, and what to send ("alert", "reminder", "recovery")."""
    if seen == SILENCED:
        return QUIET, None
    if seen == NEUTRAL:
        return counts, None
    if seen == BAD:
        if not counts.firing:
            bad = min(counts.bad + 1, rules.failure_threshold)
            if bad >= rules.failure_threshold:
                return Counts(bad=bad, firing=True, since=at, last_sent_at=at), "alert"
            return replace(counts, bad=bad, good=0), None
        counts = replace(counts, good=0)
        interval = rules.reminder_interval_s
        if interval and counts.last_sent_at is not None and at - counts.last_sent_at >= timedelta(seconds=interval):
            return replace(counts, last_sent_at=at, reminders=counts.reminders + 1), "reminder"
        return counts, None
    # good
    if not counts.firing:
        return QUIET if counts.bad else counts, None
    good = min(counts.good + 1, rules.success_threshold)
    if good >= rules.success_threshold:
        return QUIET, "recovery" if rules.notify_recovery else None
    return replace(counts, good=good), None


@dataclass(frozen=True)
class Delivery:
    """One notice for one channel, ready to send (the target is decrypted in memory only)."""

    channel_id: int
    channel: str
    kind: str
    target: str | None
    notice: Notice


# -- the plan: counts in, deliveries out ------------------------------------------------


STATE_FIELDS = ["bad_count", "good_count", "firing", "since", "last_sent_at", "reminders", "reason"]


def plan_alerts(observations: list[Observation]) -> list[Delivery]:
    """Advance the counts of every (channel, provider) pair by one evaluation; store what
    changed and return the deliveries it calls for. Only rows with something going on are
    read (a healthy fleet costs two small queries), and writes are batched."""
    # a channel that names event types is an event feed (forwarding.py), not an alert channel
    channels = [c for c in AlertChannel.objects.filter(enabled=True).prefetch_related("providers") if not c.events]
    if not channels or not observations:
        return []
    seen = {obs.provider: (obs, verdict(obs)) for obs in observations}
    bad = [name for name, (_, v) in seen.items() if v == BAD]
    rows: dict[tuple[int, str], tuple[int, Counts, str]] = {}
    for state_pk, channel_id, name, bad_count, good_count, firing, since, last_sent_at, reminders, reason in (
        AlertState.objects.filter(channel__in=channels)
        .filter(Q(firing=True) | Q(bad_count__gt=0) | Q(good_count__gt=0) | Q(provider__name__in=bad))
        .values_list(
            "pk",
            "channel_id",
            "provider__name",
            "bad_count",
            "good_count",
            "firing",
            "since",
            "last_sent_at",
            "reminders",
            "reason",
        )
    ):
        rows[(channel_id, name)] = (
            state_pk,
            Counts(bad_count, good_count, firing, since, last_sent_at, reminders),
            reason,
        )
    ids = dict(Provider.objects.filter(name__in=bad).values_list("name", "id")) if bad else {}
    created: list[AlertState] = []
    updated: list[AlertState] = []
    deliveries: list[Delivery] = []
    for channel in channels:
        scope = {p.name for p in channel.providers.all()}
        rules = Rules.of(channel)
        target: list[str | None] = []  # decrypted once per channel, when first needed
        for name, (obs, v) in seen.items():
            if scope and name not in scope:
                continue
            pk: int | None
            pk, before, reason = rows.get((channel.pk, name), (None, QUIET, ""))
            if pk is None and (v != BAD or name not in ids):
                continue
            after, event = decide(before, rules, v, obs.at)
            if after != before:
                row = AlertState(
                    pk=pk,
                    channel_id=channel.pk,
                    bad_count=after.bad,
                    good_count=after.good,
                    firing=after.firing,
                    since=after.since,
                    last_sent_at=after.last_sent_at,
                    reminders=after.reminders,
                    reason=obs.reason if v == BAD else reason,
                )
                if pk is None:  # a new row; an update writes the state fields only
                    row.provider_id = ids[name]
                    created.append(row)
                else:
                    updated.append(row)
            if event is not None:
                if not target:
                    target.append(channel.target())
                notice = Notice(
                    event=event,
                    channel=channel.name,
                    provider=name,
                    status=obs.status,
                    breaker=obs.breaker,
                    reason=obs.reason,
                    at=obs.at,
                    since=before.since,
                    incident=obs.incident or obs.latest,
                )
                deliveries.append(Delivery(channel.pk, channel.name, channel.kind, target[0], notice))
    if created or updated:  # a transaction only now: under SQLite's IMMEDIATE mode it takes the write lock
        with transaction.atomic():
            AlertState.objects.bulk_create(created, batch_size=500)
            _update_states(updated)
    return group_deliveries(deliveries) if settings.ALERT_GROUPING else deliveries


def group_deliveries(deliveries: list[Delivery]) -> list[Delivery]:
    """One evaluation's deliveries with those of one channel and one event (alert, reminder,
    recovery) for several providers made one: its notice is the first member's (by provider
    name) with every member's own notice in `group`. It takes the place of its first member
    in the list; the rest keep their order."""

    keys = [
        (d.channel_id, d.notice.event) if d.notice.event in GROUPED_EVENTS and d.notice.provider else None
        for d in deliveries
    ]
    members: dict[tuple[int, str], list[Delivery]] = {}
    for key, delivery in zip(keys, deliveries, strict=True):
        if key is not None:
            members.setdefault(key, []).append(delivery)
    grouped: list[Delivery] = []
    for key, delivery in zip(keys, deliveries, strict=True):
        same = members[key] if key is not None else [delivery]
        if len(same) == 1:
            grouped.append(delivery)
        elif same[0] is delivery:
            notices = tuple(sorted((m for d in same for m in d.notice.members), key=lambda n: n.provider))
            grouped.append(replace(delivery, notice=replace(notices[0], group=notices)))
    return grouped


def _state_column(name: str) -> tuple[Field[Any, Any], str]:
    """An AlertState field and its quoted column."""
    field = AlertState._meta.get_field(name)
    assert isinstance(field, Field) and field.column is not None  # a plain column of the table
    return field, connection.ops.quote_name(field.column)


def _update_states(rows: list[AlertState]) -> None:
    """One UPDATE statement run for every row (executemany): when a thousand providers go
    down at once, the ORM's bulk_update would hold the tick for seconds."""
    if not rows:
        return
    fields = [_state_column(name) for name in [*STATE_FIELDS, "updated_at"]]
    table = connection.ops.quote_name(AlertState._meta.db_table)
    columns = ", ".join(f"{column} = %s" for _, column in fields)
    _, pk = _state_column(AlertState._meta.pk.name)
    now = timezone.now()
    params = []
    for row in rows:
        row.updated_at = now
        params.append([f.get_db_prep_save(getattr(row, f.attname), connection) for f, _ in fields] + [row.pk])
    with connection.cursor() as cursor:
        cursor.executemany(f"UPDATE {table} SET {columns} WHERE {pk} = %s", params)


# -- delivery ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    ok: bool
    detail: str  # what was sent, or why it failed
    permanent: bool = False
    attempts: int = 1


async def deliver(
    delivery: Delivery, *, retries: int, semaphore: asyncio.Semaphore | None = None, rng: random.Random | None = None
) -> Outcome:
    """Send with a timeout per attempt; retry transient errors `retries` times with backoff."""
    rng = rng or random.Random()
    timeout_s = settings.ALERT_TIMEOUT_S
    attempt = 0
    while True:
        attempt += 1
        try:
            if not delivery.target:
                raise DeliveryError("no target (an empty value or an unset environment variable)", permanent=True)
            send = transport(delivery.kind)
            async with (
                semaphore or contextlib.nullcontext(),
                httpx.AsyncClient(timeout=timeout_s, transport=_scrubbed()) as client,
            ):
                async with asyncio.timeout(timeout_s):
                    detail = await send(delivery.notice, delivery.target, client)
            return Outcome(True, detail, attempts=attempt)
        except TimeoutError:
            error = DeliveryError(f"no answer within {timeout_s:g} s", permanent=False)
        except DeliveryError as exc:
            error = exc
        except Exception as exc:  # a bug or an unforeseen library error: report it, never disable for it
            log.exception("alert delivery to channel %s failed unexpectedly", delivery.channel)
            error = DeliveryError(f"{type(exc).__name__}: {exc}"[:300], permanent=False)
        if error.permanent or attempt > retries:
            return Outcome(False, error.message, permanent=error.permanent, attempts=attempt)
        delay = backoff_bound(attempt, settings.ALERT_RETRY_BASE_S, RETRY_CAP_S) * rng.uniform(0.5, 1.0)
        if error.retry_after is not None:
            delay = max(delay, min(error.retry_after, RETRY_CAP_S))
        await asyncio.sleep(delay)


def _scrubbed() -> httpx.AsyncBaseTransport:
    """A new transport for one delivery: what a receiver answers (kept in the channel's last
    error) passes the same credential scrubber as every provider answer.

    New each time, never shared: a client closes its transport when it is done, and a shared one
    closed by one delivery cut the connection of another still in flight (the receiver had the
    alert, the sender saw an error and sent it again); nor can one pool serve two event loops."""
    return ScrubbingTransport(httpx.AsyncHTTPTransport(verify=_tls()))


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every delivery: building one costs some 60 ms (the CA bundle)."""
    return ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE") or certifi.where())


def record_delivery(delivery: Delivery, outcome: Outcome, actor: str = "") -> list[HealthEvent]:
    """The delivery as HealthEvents (one per provider of a group, all at one time, each in its
    provider's incident), its result on the channel; disable the channel after
    ALERT_DISABLE_AFTER permanent failures in a row (of deliveries, not of events)."""
    notice = delivery.notice
    tag = f"channel:{delivery.channel}"
    new = SENT if outcome.ok else FAILED_PERMANENTLY if outcome.permanent else FAILED
    tries = f" after {outcome.attempts} attempts" if outcome.attempts > 1 else ""
    by = f" (by {actor})" if actor else ""
    if outcome.ok:
        reason = f"{delivery.kind} channel {delivery.channel}{by}: sent {outcome.detail}{tries}"
    else:
        reason = f"{delivery.kind} channel {delivery.channel}{by}: {notice.event} not sent{tries}: {outcome.detail}"
    now = timezone.now()
    with transaction.atomic():
        events = []
        for member in notice.members:
            event = record_event(
                member.provider, HealthEvent.Kind.ALERT, old=notice.event, new=new, reason=reason, actor=tag, at=now
            )
            if member.incident is not None:  # part of the incident's timeline
                HealthEvent.objects.filter(pk=event.pk).update(incident_id=member.incident)
            events.append(event)
        channels = AlertChannel.objects.filter(pk=delivery.channel_id)
        if outcome.ok:
            channels.update(last_delivery_at=now, last_delivery_error="", delivery_failures=0)
            return events
        channels.update(
            last_delivery_at=now, last_delivery_error=outcome.detail, delivery_failures=F("delivery_failures") + 1
        )
        limit = settings.ALERT_DISABLE_AFTER
        if outcome.permanent and limit > 0 and _permanent_failures_in_a_row(tag, limit) >= limit:
            why = f"disabled after {limit} permanent delivery errors in a row; last: {outcome.detail}"
            if channels.filter(enabled=True).update(enabled=False, disabled_reason=why[:200]):
                log.warning("alert channel %s %s", delivery.channel, why)
    return events


def _permanent_failures_in_a_row(tag: str, limit: int) -> int:
    """The channel's latest deliveries that failed permanently, in a row, counted up to `limit`.
    A group's delivery wrote one event per provider, all at one time: they count once."""
    counted: set[datetime] = set()
    rows = HealthEvent.objects.filter(kind=HealthEvent.Kind.ALERT, actor=tag).order_by("-id").values_list("at", "new")
    for at, new in rows.iterator(chunk_size=200):
        if new != FAILED_PERMANENTLY:
            break
        counted.add(at)
        if len(counted) >= limit:
            break
    return len(counted)


async def _publish(delivery: Delivery, events: list[HealthEvent]) -> None:
    if not delivery.notice.provider:
        await publish({"type": "health.event", "provider": "", "event_id": events[0].pk})
        return
    for name in delivery.notice.providers:
        await publish({"type": "health.update", "provider": name})


class Alerter:
    """Fed by `Monitor.evaluate`; sends in the background. Tests call `observe` through a
    tick and then `wait_for_deliveries`."""

    def __init__(self, *, rng: random.Random | None = None) -> None:
        self.semaphore = asyncio.Semaphore(settings.ALERT_CONCURRENCY)
        self.rng = rng or random.Random()
        self.tasks: set[asyncio.Task[Outcome]] = set()
        self.feeds = Feeds(_scrubbed)
        _alerters.add(self)

    async def observe(self, observations: list[Observation]) -> list[Delivery]:
        """Take in one evaluation; start the deliveries it calls for and return them."""
        try:
            deliveries = await db_call(plan_alerts, observations)
        except Exception:
            log.exception("could not evaluate alerts")
            return []
        for delivery in deliveries:
            task = asyncio.get_running_loop().create_task(self.send(delivery))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        self.feeds.start()
        return deliveries

    async def send(self, delivery: Delivery) -> Outcome:
        started = time.perf_counter()
        outcome = await deliver(delivery, retries=settings.ALERT_RETRIES, semaphore=self.semaphore, rng=self.rng)
        log.info(
            "alert %s for %s via %s: %s in %.0f ms",
            delivery.notice.event,
            ", ".join(delivery.notice.providers) or "-",
            delivery.channel,
            "sent" if outcome.ok else "failed",
            (time.perf_counter() - started) * 1000,
        )
        try:
            events = await db_call(record_delivery, delivery, outcome)
        except Exception:
            log.exception("could not record the delivery of an alert to channel %s", delivery.channel)
            return outcome
        await _publish(delivery, events)
        return outcome

    async def wait_for_deliveries(self) -> None:
        """Let every delivery in flight finish, the event feeds' included (tests; a clean stop)."""
        while self.tasks:
            await asyncio.wait(list(self.tasks))
        await self.feeds.wait()


_alerters: weakref.WeakSet[Alerter] = weakref.WeakSet()


@lifecycle.on_shutdown
async def _finish_deliveries() -> None:
    loop = asyncio.get_running_loop()
    for alerter in list(_alerters):
        feeding = [alerter.feeds.task] if alerter.feeds.task is not None else []
        if any(task.get_loop() is loop for task in [*alerter.tasks, *feeding]):
            await alerter.wait_for_deliveries()


# -- the test button --------------------------------------------------------------------------


def send_test_alert(channel: AlertChannel, actor: str = "") -> Outcome:
    """Send a test notice now (the admin action, `manage.py send_test_alert`), from sync code.

    No retries (the operator is waiting for the answer); recorded like any delivery.
    """
    note = f"A test sent by {actor}." if actor else "A test sent from the command line."
    notice = Notice(
        event="test", channel=channel.name, provider="", status="", breaker="", reason=note, at=timezone.now()
    )
    delivery = Delivery(channel.pk, channel.name, channel.kind, channel.target(), notice)
    outcome = async_to_sync(deliver)(delivery, retries=0)
    [event] = record_delivery(delivery, outcome, actor=actor)
    publish_sync({"type": "health.event", "provider": "", "event_id": event.pk})
    return outcome


# -- API key budgets ----------------------------------------------------------------------------


def notify_key_budget(
    sender: Any, *, key_name: str, prefix: str, threshold: float, spend: Any, budget: Any, period: str, **kwargs: Any
) -> list[Outcome]:
    """Receiver of `providers.signals.key_budget_crossed` (connected in HealthConfig.ready): tell
    every enabled alert channel that watches every provider (no provider scope; an event feed
    is not an alert channel) that a key passed 80 % or 100 % of its budget. The signal fires
    once per threshold and period across workers (providers/keys.py), from a database thread."""
    share = f"{threshold:.0%}" if isinstance(threshold, float) and threshold <= 1 else f"{threshold}%"
    note = f"API key {key_name} ({prefix}) has spent {spend} of its {period} budget of {budget} ({share})"
    outcomes = []
    for channel in AlertChannel.objects.filter(enabled=True, providers__isnull=True):
        if channel.events:
            continue
        notice = Notice(
            event="budget", channel=channel.name, provider="", status="", breaker="", reason=note, at=timezone.now()
        )
        try:
            delivery = Delivery(channel.pk, channel.name, channel.kind, channel.target(), notice)
        except Exception as exc:  # an unreadable target: said in the log, the other channels still hear
            log.warning("alert channel %s: cannot send the budget notice: %s", channel.name, exc)
            continue
        outcome = async_to_sync(deliver)(delivery, retries=1)
        record_delivery(delivery, outcome)
        outcomes.append(outcome)
    return outcomes


# -- incidents ----------------------------------------------------------------------------------


def notify_acknowledged(incident_id: int, provider: str, actor: str, reason: str) -> list[Outcome]:
    """Tell the channels whose alert for this provider is out (firing, not muted) that someone
    acknowledged the incident; from sync code (the API and the console, in a database thread)."""
    if Incident.objects.filter(pk=incident_id, muted_until__gt=timezone.now()).exists():
        return []
    outcomes = []
    states = AlertState.objects.filter(firing=True, provider__name=provider, channel__enabled=True).select_related(
        "channel"
    )
    for state in states:
        channel = state.channel
        if channel.events:
            continue
        notice = Notice(
            event="acknowledged",
            channel=channel.name,
            provider=provider,
            status="",
            breaker="",
            reason=reason,
            at=timezone.now(),
            since=state.since,
            incident=incident_id,
        )
        try:
            delivery = Delivery(channel.pk, channel.name, channel.kind, channel.target(), notice)
        except Exception as exc:  # an unreadable target: said in the log, the other channels still hear
            log.warning("alert channel %s: cannot send the acknowledgement: %s", channel.name, exc)
            continue
        outcome = async_to_sync(deliver)(delivery, retries=1)
        record_delivery(delivery, outcome, actor=actor)
        outcomes.append(outcome)
    return outcomes

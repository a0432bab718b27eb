"""API keys' limits with the in-process store: routes, requests and tokens per minute, a budget
per calendar period (on an injected clock), spend kept in the database, budget alerts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from providers.engine import Engine, FakeClock
from providers.gateway.records import RequestRecord
from providers.keys import KeyLimits, KeyRefused, period_bounds
from providers.models import ApiKey, KeySpend
from providers.signals import key_budget_crossed
from providers.snapshot import KeyEntry, Snapshot

pytestmark = pytest.mark.django_db(transaction=True)

# A Tuesday, 23:58:00 UTC, the last day of March.
LATE = datetime(2026, 3, 31, 23, 58, tzinfo=UTC).timestamp()


def entry(row: ApiKey) -> KeyEntry:
    return KeyEntry(
        id=row.pk,
        name=row.name,
        prefix=row.prefix,
        scopes=frozenset(row.scopes),
        rate_limit_per_minute=row.rate_limit_per_minute,
        expires_at=row.expires_at,
        routes=frozenset(row.routes),
        tokens_per_minute=row.tokens_per_minute,
        budget=row.budget,
        budget_period=row.budget_period,
    )


@pytest.fixture
def make() -> Callable[..., Any]:
    """`await make(**fields)`: a key row and its KeyEntry."""

    @sync_to_async
    def create(**fields: Any) -> tuple[ApiKey, KeyEntry]:
        row, _ = ApiKey.issue(f"app-{ApiKey.objects.count()}", ["gateway"], **fields)
        return row, entry(row)

    return create


def worker(clock: FakeClock, *entries: KeyEntry) -> KeyLimits:
    """One worker's key limits on the in-process store, seeing `entries` in its configuration."""
    snapshot = Snapshot(version=1, providers={}, routes={}, keys={str(e.id): e for e in entries})
    return KeyLimits(Engine(clock=clock), snapshot=lambda: snapshot)


def record(
    key: KeyEntry, clock: FakeClock, *, cost: str = "0", tokens_in: int = 0, tokens_out: int = 0, request_id: str = "r"
) -> RequestRecord:
    return RequestRecord(
        at=datetime.fromtimestamp(clock.time(), UTC),
        request_id=request_id,
        route="chat",
        capability="chat",
        outcome="success",
        status=200,
        latency_ms=5.0,
        provider="p",
        model="m",
        api_key_id=key.id,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        cost=Decimal(cost),
    )


async def refused(limits: KeyLimits, key: KeyEntry, route: str = "chat") -> KeyRefused:
    with pytest.raises(KeyRefused) as caught:
        await limits.admit(key, route)
    return caught.value


@pytest.fixture
def alerts() -> Iterator[list[dict[str, Any]]]:
    told: list[dict[str, Any]] = []

    def hear(sender: Any, **kwargs: Any) -> None:
        told.append(kwargs)

    key_budget_crossed.connect(hear, dispatch_uid="test-key-limits")
    yield told
    key_budget_crossed.disconnect(dispatch_uid="test-key-limits")


# -- routes -------------------------------------------------------------------------------------


async def test_a_key_limited_to_routes_is_refused_on_another_with_a_403(make):
    _, key = await make(routes=["chat", "embed"])
    limits = worker(FakeClock(wall=LATE), key)
    await limits.admit(key, "chat")
    await limits.admit(key, "embed")
    refusal = await refused(limits, key, "images")
    assert (refusal.status, refusal.type, refusal.retry_after) == (403, "route_not_allowed", None)
    assert "'images'" in str(refusal)


async def test_a_key_without_routes_may_use_every_route(make):
    _, key = await make()
    limits = worker(FakeClock(wall=LATE), key)
    for route in ("chat", "openai/gpt-4o", "anything"):
        await limits.admit(key, route)


def test_route_names_are_checked_when_the_key_is_saved():
    from django.core.exceptions import ValidationError

    for bad, said in (
        ("chat", "must be a list"),
        (["a", "a"], "twice"),
        (["a,b"], "','"),
        ([""], "empty"),
        ([3], "must be a string"),
    ):
        with pytest.raises(ValidationError, match=said):
            ApiKey.issue("bad", ["gateway"], routes=bad)
    assert not ApiKey.objects.filter(name="bad").exists()


# -- requests and tokens per minute -------------------------------------------------------------


async def test_the_request_limit_admits_n_requests_a_minute_and_says_when_to_retry(make):
    _, key = await make(rate_limit_per_minute=5)
    clock = FakeClock(wall=LATE)  # at the start of a calendar minute
    limits = worker(clock, key)
    for _ in range(5):
        await limits.admit(key, "chat")
    refusal = await refused(limits, key)
    assert (refusal.status, refusal.type) == (429, "rate_limited")
    # The 5 of this minute fade out of the sliding minute during the next: one fits after
    # 60 s + 60/5 s.
    assert refusal.retry_after == pytest.approx(72.0)
    clock.advance(71)
    assert (await refused(limits, key)).type == "rate_limited"
    clock.advance(1.5)
    await limits.admit(key, "chat")


async def test_a_refused_request_is_not_counted(make):
    _, key = await make(rate_limit_per_minute=2)
    clock = FakeClock(wall=LATE)
    limits = worker(clock, key)
    await limits.admit(key, "chat")
    await limits.admit(key, "chat")
    for _ in range(10):
        await refused(limits, key)
    clock.advance(120)  # two minutes on: only admitted requests counted, and they are gone
    await limits.admit(key, "chat")
    await limits.admit(key, "chat")


async def test_tokens_settled_stop_the_key_once_its_minute_holds_its_token_limit(make):
    _, key = await make(tokens_per_minute=1000)
    clock = FakeClock(wall=LATE)
    limits = worker(clock, key)
    await limits.admit(key, "chat")
    limits.settle(record(key, clock, tokens_in=400, tokens_out=599))
    await limits.flush()
    await limits.admit(key, "chat")  # 999 < 1000
    limits.settle(record(key, clock, tokens_out=1))
    await limits.flush()
    refusal = await refused(limits, key)
    assert (refusal.status, refusal.type) == (429, "rate_limited")
    assert "1000 tokens per minute" in str(refusal) and refusal.retry_after is not None
    assert 60 < refusal.retry_after <= 120
    clock.advance(refusal.retry_after + 0.01)
    await limits.admit(key, "chat")


# -- budget -------------------------------------------------------------------------------------


async def test_a_key_whose_budget_is_spent_is_refused_with_a_429(make):
    _, key = await make(budget=Decimal("1.00"), budget_period="day")
    clock = FakeClock(wall=LATE)
    limits = worker(clock, key)
    await limits.admit(key, "chat")
    limits.settle(record(key, clock, cost="0.6"))
    await limits.flush()
    await limits.admit(key, "chat")  # 0.6 < 1: a request may start; it may pass the budget
    limits.settle(record(key, clock, cost="0.5"))
    await limits.flush()
    refusal = await refused(limits, key)
    assert (refusal.status, refusal.type, refusal.retry_after) == (429, "budget_exceeded", None)
    assert "spent 1.1" in str(refusal) and "2026-04-01 00:00 UTC" in str(refusal)
    assert await limits.spend(key.id, "day") == Decimal("1.1")


async def test_a_budget_of_zero_refuses_every_request(make):
    _, key = await make(budget=Decimal(0))
    limits = worker(FakeClock(wall=LATE), key)
    assert (await refused(limits, key)).type == "budget_exceeded"


async def test_the_budget_renews_when_its_utc_period_ends(make):
    _, daily = await make(budget=Decimal(1), budget_period="day")
    _, monthly = await make(budget=Decimal(1), budget_period="month")
    _, weekly = await make(budget=Decimal(1), budget_period="week")
    clock = FakeClock(wall=LATE)  # Tuesday 31 March, 23:58
    limits = worker(clock, daily, monthly, weekly)
    for key in (daily, monthly, weekly):
        limits.settle(record(key, clock, cost="1"))
    await limits.flush()
    for key in (daily, monthly, weekly):
        assert (await refused(limits, key)).type == "budget_exceeded"
    clock.advance(180)  # Wednesday 1 April, 00:01: a new day and a new month, the same week
    await limits.admit(daily, "chat")
    await limits.admit(monthly, "chat")
    assert (await refused(limits, weekly)).type == "budget_exceeded"
    clock.advance(5 * 86_400)  # Monday 6 April: a new week
    await limits.admit(weekly, "chat")


def test_periods_are_utc_calendar_periods():
    at = datetime(2026, 2, 28, 22, 0, tzinfo=UTC)  # a Saturday
    assert period_bounds("day", at) == (datetime(2026, 2, 28, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))
    assert period_bounds("week", at) == (datetime(2026, 2, 23, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC))
    assert period_bounds("month", at) == (datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))
    december = datetime(2026, 12, 31, 23, 59, tzinfo=UTC)
    assert period_bounds("month", december)[1] == datetime(2027, 1, 1, tzinfo=UTC)


async def test_a_request_settled_after_midnight_counts_in_the_period_it_started_in(make):
    _, key = await make(budget=Decimal(1), budget_period="day")
    clock = FakeClock(wall=LATE)
    limits = worker(clock, key)
    started = record(key, clock, cost="0.7")  # a stream that started at 23:58...
    clock.advance(300)  # ...and ended at 00:03
    limits.settle(started)
    await limits.flush()
    await limits.admit(key, "chat")  # today has spent nothing
    rows = await sync_to_async(lambda: list(KeySpend.objects.values_list("day", "spend")))()
    assert rows == [(date(2026, 3, 31), Decimal("0.7"))]


# -- spend in the database ----------------------------------------------------------------------


async def test_spend_requests_and_tokens_are_written_per_day_as_the_request_log_rounds_cost(make):
    _, key = await make()
    clock = FakeClock(wall=LATE)
    limits = worker(clock, key)
    costs = ["0.000000015", "0.000000025", "0.12345678", "2"]  # the log keeps 8 places, half-even
    for i, cost in enumerate(costs):
        limits.settle(record(key, clock, cost=cost, tokens_in=10, tokens_out=i, request_id=f"r{i}"))
    await limits.flush()
    row = await sync_to_async(KeySpend.objects.get)(key_id=key.id)
    assert row.day == date(2026, 3, 31)
    assert row.spend == Decimal("0.00000002") + Decimal("0.00000002") + Decimal("0.12345678") + 2
    assert (row.requests, row.tokens_in, row.tokens_out) == (4, 40, 6)
    assert await limits.spend(key.id, "month") == row.spend


async def test_spend_survives_a_restart(make):
    _, key = await make(budget=Decimal(5), budget_period="month")
    clock = FakeClock(wall=LATE)
    before = worker(clock, key)
    for _ in range(5):
        before.settle(record(key, clock, cost="1"))
    await before.flush()
    after = worker(clock, key)  # a new process: its store starts empty and reads the database
    assert (await refused(after, key)).type == "budget_exceeded"
    assert await after.spend(key.id, "month") == 5


async def test_a_new_count_includes_what_this_worker_has_not_written_yet(make, settings):
    settings.KEY_SPEND_FLUSH_INTERVAL_S = 3600
    _, key = await make(budget=Decimal(2), budget_period="day")
    clock = FakeClock(wall=LATE)
    limits = worker(clock, key)
    limits.settle(record(key, clock, cost="1.5"))
    await limits.flush()
    limits.settle(record(key, clock, cost="0.5"))
    await limits.count()  # counted, not written: the database has 1.5
    assert await sync_to_async(lambda: KeySpend.objects.get().spend)() == Decimal("1.5")
    # The key's budget becomes monthly: a new count, started from the database and this batch.
    monthly = entry(await sync_to_async(ApiKey.objects.get)(pk=key.id))
    monthly = KeyEntry(**{**vars(monthly), "budget_period": "month"})
    assert (await refused(limits, monthly)).type == "budget_exceeded"


async def test_requests_that_finish_together_are_counted_once_per_key_and_period(make):
    _, key = await make(budget=Decimal(10), budget_period="day", tokens_per_minute=1000)
    _, other = await make(budget=Decimal(10), budget_period="day")
    clock = FakeClock(wall=LATE)
    limits = worker(clock, key, other)
    calls: list[tuple[int, int, int]] = []
    settle_key = limits.store.settle_key

    async def seen(name: str, **given: Any) -> Any:  # the real store, its calls noted
        calls.append((int(name), given["spend"], given["tokens"]))
        return await settle_key(name, **given)

    limits.store.settle_key = seen  # type: ignore[method-assign]
    yesterday = record(key, clock, cost="1", tokens_in=10, request_id="y")  # started at 23:58
    clock.advance(300)  # the others in the new day
    for i in range(3):
        limits.settle(record(key, clock, cost="2", tokens_in=5, tokens_out=1, request_id=f"k{i}"))
    limits.settle(record(other, clock, cost="0.5", request_id="o"))
    limits.settle(yesterday)
    await limits.flush()

    nano = 10**9
    assert sorted(calls) == sorted([(key.id, 6 * nano, 18), (key.id, 1 * nano, 10), (other.id, nano // 2, 0)])
    assert await limits.spend(key.id, "day") == 6 and await limits.spend(other.id, "day") == Decimal("0.5")
    rows = await sync_to_async(
        lambda: sorted(KeySpend.objects.values_list("key_id", "day", "spend", "requests", "tokens_in", "tokens_out"))
    )()
    assert rows == sorted(
        [
            (key.id, date(2026, 3, 31), Decimal(1), 1, 10, 0),
            (key.id, date(2026, 4, 1), Decimal(6), 3, 15, 3),
            (other.id, date(2026, 4, 1), Decimal("0.5"), 1, 0, 0),
        ]
    )


# -- alerts -------------------------------------------------------------------------------------


async def test_passing_80_and_100_percent_of_the_budget_is_told_once_each_per_period(make, alerts):
    row, key = await make(budget=Decimal(10), budget_period="day")
    clock = FakeClock(wall=LATE)
    limits = worker(clock, key)
    for cost in ("5", "2.9", "0.2", "1", "0.5", "3"):  # 5, 7.9, 8.1 (80 %), 9.1, 9.6, 12.6 (100 %)
        limits.settle(record(key, clock, cost=cost))
        await limits.flush()
    assert [(a["threshold"], a["spend"]) for a in alerts] == [(80, Decimal("8.1")), (100, Decimal("12.6"))]
    assert alerts[0]["key_name"] == row.name and alerts[0]["prefix"] == row.prefix
    assert alerts[0]["budget"] == Decimal(10) and alerts[0]["period"] == "day"
    assert alerts[0]["period_start"] == datetime(2026, 3, 31, tzinfo=UTC)
    clock.advance(180)  # a new day
    limits.settle(record(key, clock, cost="9"))
    await limits.flush()
    assert [a["threshold"] for a in alerts] == [80, 100, 80]


async def test_one_request_past_both_thresholds_tells_both(make, alerts):
    _, key = await make(budget=Decimal(1), budget_period="day")
    clock = FakeClock(wall=LATE)
    limits = worker(clock, key)
    limits.settle(record(key, clock, cost="3"))
    await limits.flush()
    assert [a["threshold"] for a in alerts] == [80, 100]

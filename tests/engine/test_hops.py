"""Failovers and retries: one definition (`count_hops`), used by the chain, the gateway's
failure answers, the rollups and the seeder."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.engine import (
    AllTargetsFailed,
    CallerError,
    Engine,
    Outcome,
    RoutePolicy,
    TargetSpec,
    count_hops,
)
from providers.engine.errors import UpstreamError
from providers.engine.outcome import Classification
from providers.engine.result import AttemptRecord, hops_of

A, B, C = ("a", "m"), ("b", "m"), ("c", "m")


def test_a_single_call_has_no_hops():
    assert count_hops([A], A)[:2] == (0, 0)


def test_a_retry_then_a_failover():
    hops = count_hops([A, A, B], B)
    assert (hops.failovers, hops.retries, hops.left, hops.calls) == (1, 1, (A,), {A: 2, B: 1})


def test_when_nothing_served_the_last_target_tried_is_not_a_failover():
    assert count_hops([A, B, B, C], None)[:3] == (2, 1, (A, B))


def test_a_hedge_s_losing_primary_is_a_failover():
    # the primary was sent first, the hedge (second target) won
    assert count_hops([A, B], B).left == (A,)


targets = st.sampled_from([A, B, C])


@given(st.lists(targets, min_size=1, max_size=12), st.booleans())
def test_every_call_is_the_first_one_a_retry_or_reaches_the_end(sent, served_last):
    served = sent[-1] if served_last else None
    hops = count_hops(sent, served)
    distinct = list(dict.fromkeys(sent))
    assert hops.retries == len(sent) - len(distinct)
    assert sum(hops.calls.values()) == len(sent)
    assert hops.failovers == len(distinct) - 1
    assert served not in hops.left


def test_skipped_targets_count_in_neither():
    attempts = [
        AttemptRecord("a", "m", None, None, None, 0.0, skipped="open"),
        AttemptRecord("b", "m", "k", Outcome.FAILURE, 500, 1.0),
        AttemptRecord("c", "m", "k", Outcome.SUCCESS, 200, 1.0),
    ]
    assert hops_of(attempts, C)[:3] == (1, 0, (B,))


async def test_a_failed_chain_carries_the_same_counts_as_a_served_one(engine: Engine):
    def fail(status: int):
        async def call(target, ctx):
            raise UpstreamError(
                Classification(Outcome.FAILURE if status >= 500 else Outcome.CALLER_ERROR, f"http_{status}"),
                status=status,
                message="x",
            )

        return call

    route = RoutePolicy(name="r", max_attempts=4)
    specs = (TargetSpec("a", "m"), TargetSpec("b", "m"))
    with pytest.raises(AllTargetsFailed) as failed:
        await engine.execute(route, specs, fail(500))
    sent = [(a.provider, a.model) for a in failed.value.attempts if a.skipped is None]
    assert failed.value.hops == count_hops(sent)
    assert failed.value.hops.failovers == 1
    with pytest.raises(CallerError) as refused:
        await engine.execute(route, specs, fail(400))
    assert refused.value.hops[:2] == (0, 0)

"""Scenario 21 (resilience.md): four gateway workers, each its own process, sharing breaker
state through Redis. Real Redis, real time; each test under a key prefix of its own.

What is asserted is what each worker does (refuses without a call, decides on local state);
how soon (a third worker refuses within a second of the trip; a call costs at most one 50 ms
operation timeout while Redis is away) are bench/engine/redis_run.py's figures. Waits have
generous bounds that only stop a hang (the workers' `wait` and `wait_rejected`)."""

from __future__ import annotations

import time

import pytest

from .conftest import Fleet, PrivateRedis, shared_hash

pytestmark = pytest.mark.scaleout

# A 1 s break without jitter keeps the suite fast and the timings exact; the rest are §10's.
POLICY = {"break_s": 1.0, "max_break_s": 5.0, "jitter": 0.0}


def test_twenty_failures_from_one_worker_open_only_its_local_breaker(fleet: Fleet, prefix: str, redis_url: str):
    fleet.configure(redis_url, prefix, **POLICY)
    fleet["A"]("record", outcome="failure", n=20)
    assert fleet["A"]("wait", field="shared", value="closed")["at"] is not None
    a = fleet["A"]("state")
    assert (a["view"], a["local"], a["shared"]) == ("open", "open", "closed")
    assert shared_hash(redis_url, prefix).get("state", "closed") == "closed"  # the quorum rule
    for name in "BCD":
        assert fleet[name]("state")["view"] == "closed"
    b = fleet["B"]("execute", n=5)
    assert b["sent"] == 5 and b["endings"] == {"ok": 5}


def test_failures_from_two_workers_open_the_shared_breaker_and_a_third_rejects_without_a_call(
    fleet: Fleet, prefix: str, redis_url: str
):
    fleet.configure(redis_url, prefix, **POLICY)
    fleet.all("execute", n=1)  # every worker has used the key
    fleet["A"]("record", outcome="failure", n=20)
    fleet["B"]("record", outcome="failure", n=1)
    state = shared_hash(redis_url, prefix)
    assert (state["state"], state["gen"]) == ("open", "1")
    rejected = fleet.all("wait_rejected", names=("C", "D"))
    for name, result in rejected.items():
        assert result["at"] is not None, name
        assert result["endings"] == {"skipped:open": 1}


def test_after_the_break_four_workers_with_fifty_concurrent_calls_each_send_exactly_three_probes(
    fleet: Fleet, prefix: str, redis_url: str
):
    fleet.configure(redis_url, prefix, **POLICY)
    fleet["A"]("record", outcome="failure", n=3)
    fleet["B"]("record", outcome="failure", n=2)  # five in a row from two workers
    assert shared_hash(redis_url, prefix)["state"] == "open"
    for name in "ABCD":
        assert fleet[name]("wait", field="view", value="half_open")["at"] is not None
    results = fleet.all("execute", n=50, delay=0.3, at=time.time() + 0.2)
    assert sum(r["sent"] for r in results.values()) == 3
    endings: dict[str, int] = {}
    for r in results.values():
        for ending, count in r["endings"].items():
            endings[ending] = endings.get(ending, 0) + count
    assert endings.pop("ok") == 3
    assert set(endings) <= {"skipped:half_open_full", "skipped:open"}
    assert sum(endings.values()) == 197
    state = shared_hash(redis_url, prefix)
    assert (state["state"], state["reason"]) == ("closed", "probe_ok")  # two probes were enough


def test_two_workers_tripping_at_once_emit_exactly_one_transition(fleet: Fleet, prefix: str, redis_url: str):
    fleet.configure(redis_url, prefix, consecutive_failures=0, **POLICY)
    fleet["C"]("record", outcome="success", n=5)
    fleet["C"]("record", outcome="failure", n=2)
    fleet["D"]("record", outcome="failure", n=2)  # 9 calls, 4 failures, 2 reporters: closed
    assert shared_hash(redis_url, prefix).get("state", "closed") == "closed"
    race = fleet.all("execute", n=25, status=503, at=time.time() + 0.3)  # the same instant
    # at least two workers sent failing calls before any of them saw the breaker open
    assert sum(1 for result in race.values() if result["sent"]) >= 2
    transitions = fleet.all("transitions")
    emitted = [(name, t) for name, ts in transitions.items() for t in ts]
    assert len(emitted) == 1, transitions  # one event in the whole fleet, no local trip either
    assert emitted[0][1][:2] == ["closed", "open"]
    state = shared_hash(redis_url, prefix)
    assert (state["state"], state["gen"], state["ver"]) == ("open", "1", "1")
    sent = {name: result["sent"] for name, result in race.items()}
    print(f"calls sent in the race {sent}; the transition came from worker {emitted[0][0]}")


def test_a_429_on_one_worker_cools_the_key_on_every_worker_without_a_call(fleet: Fleet, prefix: str, redis_url: str):
    fleet.configure(redis_url, prefix, **POLICY)
    fleet.all("execute", n=1)
    a = fleet["A"]("execute", n=1, status=429, headers={"retry-after": "30"})
    assert a["sent"] == 1
    for name in "BCD":
        seen = fleet[name]("wait", field="cooldown", value=["rate_limited"])
        assert seen["at"] is not None, name
        result = fleet[name]("execute", n=3)
        assert result["sent"] == 0
        assert result["endings"] == {"skipped:cooldown": 3}
        assert fleet[name]("state")["view"] == "closed"  # a rate limit is not an outage


def test_a_killed_redis_leaves_each_worker_on_its_local_breaker_and_shared_state_returns_with_redis(
    fleet: Fleet, prefix: str, private_redis: PrivateRedis
):
    names = ("A", "B", "C")
    fleet.configure(private_redis.url, prefix, names=names, **POLICY)
    before = fleet.all("execute", names=names, n=20)
    assert all(r["endings"] == {"ok": 20} for r in before.values())

    private_redis.shutdown()
    endings = [fleet["A"]("execute", n=1, status=503)["endings"] for _ in range(8)]
    assert endings == [{"failed:http_503": 1}] * 5 + [{"skipped:open": 1}] * 3  # A's local breaker
    during = fleet.all("execute", names=("B", "C"), n=20)
    for result in during.values():
        assert result["endings"] == {"ok": 20}  # nothing from Redis reaches a caller
    assert fleet["A"]("state")["available"] is False

    private_redis.start()  # the same port, empty
    for name in names:
        assert fleet[name]("wait", field="available", value=True)["at"] is not None
    fleet["A"]("record", outcome="failure", n=1)
    fleet["B"]("record", outcome="failure", n=5)
    assert shared_hash(private_redis.url, prefix)["state"] == "open"  # shared again
    rejected = fleet["C"]("wait_rejected")
    assert rejected["at"] is not None and rejected["endings"] == {"skipped:open": 1}

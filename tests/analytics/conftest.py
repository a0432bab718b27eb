"""Analytics fixtures: request records built by hand, and the gateway fixtures."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from analytics.records import RequestRecord
from tests.gateway.conftest import upstream_a, upstream_b  # noqa: F401

NOW = datetime(2026, 11, 20, 12, 30, 15, tzinfo=UTC)


def attempt(
    provider: str,
    outcome: str | None = "success",
    ms: float = 50.0,
    *,
    status: int | None = 200,
    model: str = "m",
    skipped: str | None = None,
    reason: str = "",
    hedge: bool = False,
) -> dict[str, Any]:
    return {
        "provider": provider,
        "model": model,
        "credential": "1",
        "outcome": None if skipped else outcome,
        "status": None if skipped else status,
        "duration_ms": ms,
        "skipped": skipped,
        "reason": reason or ("" if outcome == "success" else outcome or ""),
        "error": "",
        "hedge": hedge,
    }


def record(
    attempts: list[dict[str, Any]],
    *,
    outcome: str | None = None,
    route: str = "chat",
    at: datetime = NOW,
    latency_ms: float | None = None,
    tokens: tuple[int, int] = (10, 5),
    cost: str = "0.0001",
    request_id: str = "r",
    **fields: Any,
) -> RequestRecord:
    """A record as the gateway writes it: the last sent attempt's provider served it when it succeeded."""
    sent = [a for a in attempts if not a["skipped"]]
    last = sent[-1] if sent else None
    if outcome is None:
        outcome = "success" if last and last["outcome"] == "success" else "failure"
    served = last if last and outcome in ("success", "caller_error", "stream_aborted") else None
    ok = outcome == "success"
    return RequestRecord(
        at=at,
        request_id=request_id,
        route=route,
        capability="chat",
        outcome=outcome,
        status=200 if ok else 400 if outcome == "caller_error" else 502,
        latency_ms=latency_ms if latency_ms is not None else sum(a["duration_ms"] for a in attempts) + 1,
        provider=served["provider"] if served else "",
        model=served["model"] if served else "",
        attempts=attempts,
        calls=len(sent),
        tokens_in=tokens[0] if ok else 0,
        tokens_out=tokens[1] if ok else 0,
        cost=Decimal(cost) if ok else Decimal(0),
        error="" if ok else (last["reason"] if last else "no_targets"),
        **fields,
    )


@pytest.fixture
def burst() -> list[RequestRecord]:
    """A burst of mixed outcomes: 5 successes on a, 3 failovers a->b (a retried once), 1 caller error
    on a, 2 requests where a and b both failed twice, 1 request with a skipped (breaker open)."""
    out = [record([attempt("a", ms=40)]) for _ in range(5)]
    out += [
        record(
            [
                attempt("a", "failure", 30, status=500, reason="http_500"),
                attempt("a", "failure", 30, status=500, reason="http_500"),
                attempt("b", ms=60),
            ]
        )
        for _ in range(3)
    ]
    out.append(record([attempt("a", "caller_error", 20, status=400, reason="http_400")], outcome="caller_error"))
    out += [
        record(
            [
                attempt("a", "failure", 10, status=503, reason="http_503"),
                attempt("a", "failure", 10, status=503, reason="http_503"),
                attempt("b", "failure", 15, status=502, reason="http_502"),
                attempt("b", "failure", 15, status=502, reason="http_502"),
            ]
        )
        for _ in range(2)
    ]
    out.append(record([attempt("a", skipped="open", ms=0), attempt("b", ms=70)]))
    return out


# What the burst must add up to.
BURST_ROUTE = {
    "requests": 12,
    "successes": 9,
    "failures": 2,
    "caller_errors": 1,
    "failovers": 5,
    "retries": 7,
    "calls": 24,
}
BURST_A = {
    "attempts": 16,
    "successes": 5,
    "failures": 10,
    "caller_errors": 1,
    "skipped": 1,
    "failovers": 5,
    "retries": 5,
    "served": 6,
}
BURST_B = {"attempts": 8, "successes": 4, "failures": 4, "failovers": 0, "retries": 2, "served": 4}


class SharedDatabase:
    """A database that several threads can write at once, as worker processes do.

    The SQLite test database lives in memory with a shared cache, where a second writer gets
    "table is locked" at once instead of waiting on the lock; deployments use a file (or
    PostgreSQL). On SQLite this is a migrated file with the project's connection options,
    opened by each thread as its own connection (`open()`); on PostgreSQL, the test database.
    """

    def __init__(self, settings_dict: dict[str, Any] | None) -> None:
        self.settings_dict = settings_dict
        self.alias = "analytics_shared" if settings_dict else "default"

    def open(self) -> None:
        """Call first in each thread: binds the alias to this thread's own connection."""
        if self.settings_dict is None:
            return
        from django.db import connections
        from django.db.backends.sqlite3.base import DatabaseWrapper

        # A connection the test case did not list: Django lets dynamically made ones through.
        setattr(connections._connections, self.alias, DatabaseWrapper(self.settings_dict, self.alias))

    def close(self) -> None:
        from django.db import connections

        connections[self.alias].close()


@pytest.fixture
def shared_db(tmp_path, transactional_db):
    from django.db import connections

    default = connections["default"].settings_dict
    if default["ENGINE"] != "django.db.backends.sqlite3":
        yield SharedDatabase(None)
        return
    from django.core.management import call_command

    shared = SharedDatabase({**default, "NAME": str(tmp_path / "shared.sqlite3")})
    shared.open()
    call_command("migrate", "analytics", database=shared.alias, verbosity=0)
    shared.close()
    yield shared

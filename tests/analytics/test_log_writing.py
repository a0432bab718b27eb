"""The request log's rows as the writer inserts them: many per statement, each as it was."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection

from analytics.models import RequestLog
from analytics.recorder import _parameters_per_statement, write_and_release, write_batch
from analytics.records import COLUMNS

from .conftest import NOW, attempt, record

pytestmark = pytest.mark.django_db


def test_a_batch_of_more_rows_than_one_statement_takes_is_written_row_for_row():
    per = _parameters_per_statement(connection) // len(COLUMNS)
    n = 2 * per + 7  # two full statements and a short one
    made = [
        record(
            [attempt(f"p{i % 3}", ms=float(i))],
            request_id=f"r{i:05d}",
            at=NOW + timedelta(milliseconds=i),
            cost="0.00012345" if i % 2 else "3",
            tokens=(i, 2 * i),
        )
        for i in range(n)
    ]
    write_batch(made)
    rows = {r.request_id: r for r in RequestLog.objects.all()}
    assert len(rows) == n
    for sent in (made[0], made[per], made[-1]):
        row = rows[sent.request_id]
        assert (row.at, row.provider, row.tokens_in, row.tokens_out) == (
            sent.at,
            sent.provider,
            sent.tokens_in,
            sent.tokens_out,
        )
        assert row.cost == Decimal(sent.cost) and row.attempts == sent.attempts


@pytest.mark.django_db(transaction=True)
def test_the_writer_leaves_no_sqlite_connection_open_behind_a_batch():
    write_and_release([record([attempt("a")], request_id="one")])
    if connection.vendor == "sqlite":  # closed: the memory it held is given back
        assert connection.connection is None
    assert RequestLog.objects.filter(request_id="one").exists()

from __future__ import annotations

import itertools
import random

import pytest

from analytics import histogram, queries
from analytics.models import RequestLog
from analytics.recorder import write_batch

from .conftest import NOW, attempt, record


def test_every_bucket_is_about_twenty_percent_wide_from_1_ms_to_10_minutes():
    bounds = histogram.BOUNDS_MS
    assert bounds[0] == 1 and 600_000 <= bounds[-1] < 720_000
    ratios = [b / a for a, b in itertools.pairwise(bounds)]
    assert all(1.18 < r < 1.22 for r in ratios)
    assert histogram.bucket_of(0.3) == 0 and histogram.bucket_of(1.0) == 1 and histogram.bucket_of(10**7) == 74


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_histogram_percentiles_fall_in_the_bucket_of_the_exact_percentile(seed):
    rng = random.Random(seed)
    values = [rng.lognormvariate(5, 1.2) for _ in range(5000)] + [rng.uniform(0, 3) for _ in range(300)]
    counts = [0] * histogram.BUCKETS
    for v in values:
        counts[histogram.bucket_of(v)] += 1
    for q in (50, 90, 95, 99, 99.9):
        estimate, exact = histogram.percentile(counts, q), histogram.exact_percentile(values, q)
        assert histogram.bucket_of(estimate) == histogram.bucket_of(exact), q


@pytest.mark.django_db
def test_percentiles_from_rollups_agree_with_percentiles_of_the_raw_rows_within_one_bucket():
    rng = random.Random(7)
    records = []
    for i in range(3000):
        a_ms = rng.lognormvariate(4.5, 0.8)  # ~90 ms median, a long tail
        if i % 10 == 0:  # a failover: a slow failure on a, then b
            attempts = [
                attempt("a", "failure", a_ms * 3, status=500, reason="http_500"),
                attempt("b", ms=rng.lognormvariate(5.5, 0.5)),
            ]
        else:
            attempts = [attempt("a", ms=a_ms)]
        total = sum(x["duration_ms"] for x in attempts) + rng.uniform(0.2, 2)
        records.append(record(attempts, latency_ms=total, at=NOW.replace(minute=rng.randrange(0, 30))))
    for start in range(0, len(records), 500):
        write_batch(records[start : start + 500])

    answer = queries.summary("24h", now=NOW)
    raw = list(RequestLog.objects.values_list("latency_ms", flat=True))
    per_provider: dict[str, list[float]] = {}
    for attempts in RequestLog.objects.values_list("attempts", flat=True):
        for a in attempts:
            per_provider.setdefault(a["provider"], []).append(a["duration_ms"])
    checks = [(answer["total"]["latency_ms"], raw)] + [
        (answer["providers"][p]["latency_ms"], values) for p, values in per_provider.items()
    ]
    for latency, values in checks:
        for q in (50, 95, 99):
            got, exact = latency[f"p{q}"], histogram.exact_percentile(values, q)
            assert abs(histogram.bucket_of(got) - histogram.bucket_of(exact)) <= 1, (q, got, exact)
            assert abs(got - exact) / exact < 0.21
        assert latency["avg"] == pytest.approx(sum(values) / len(values), abs=0.06)

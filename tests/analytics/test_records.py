"""Every record is put within its columns' bounds before it is queued."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal

from analytics.models import RequestLog
from analytics.records import JSON_CHARS, JSON_DEPTH, bound, clean_text, degrade

from .conftest import attempt, record


def test_text_is_made_valid_utf8_without_controls_and_cut_to_its_column():
    assert clean_text("gpt\ud800-4o", 200) == "gpt\ufffd-4o"
    assert clean_text("\ud83d\ude00 ok", 200) == "\U0001f600 ok"  # a pair that pairs stays one character
    assert clean_text("a\x00b\r\nc\x7f\x9fd", 200) == "abcd"
    assert clean_text("é" * 500, 200) == "é" * 200
    assert clean_text(None, 10) == "" and clean_text(42, 10) == "42"


def test_every_string_column_is_cut_to_the_models_max_length():
    r = bound(
        replace(
            record([attempt("a")]),
            route="r" * 5000,
            model="m" * 5000,
            provider="p" * 5000,
            error="e" * 5000,
            request_id="i" * 5000,
            capability="c" * 99,
            outcome="o" * 99,
        )
    )
    for name in ("route", "model", "provider", "error", "request_id", "capability", "outcome"):
        assert len(getattr(r, name)) == RequestLog._meta.get_field(name).max_length, name


def test_numbers_are_clamped_to_what_their_columns_hold():
    r = bound(
        replace(
            record([attempt("a")]),
            status=-3,
            calls=10**9,
            tokens_in=10**30,
            tokens_out=float("inf"),
            latency_ms=float("nan"),
            ttft_ms=float("inf"),
            cost=Decimal("1e40"),
            api_key_id=-(10**30),
        )
    )
    assert (r.status, r.calls, r.tokens_in, r.tokens_out) == (0, 32767, 2**31 - 1, 0)
    assert r.latency_ms == 0.0 and r.ttft_ms == 1e9 and r.api_key_id == -(2**63)
    assert r.cost == Decimal("999999.99999999")
    assert bound(replace(record([attempt("a")]), cost=Decimal("0.123456789"))).cost == Decimal("0.12345679")
    assert bound(replace(record([attempt("a")]), ttft_ms=None)).ttft_ms is None


def test_the_attempt_list_is_sanitised_recursively_and_bounded():
    deep: dict = {}
    node = deep
    for _ in range(50):
        node["x"] = {}
        node = node["x"]
    a = {
        **attempt("a"),
        "error": "boom\x00\ud800" + "z" * 10**6,
        "nested": deep,
        "nan": float("nan"),
        "big": 10**100,
        "amount": Decimal("1.5"),
        "k\x00ey": 1,
    }
    r = bound(replace(record([a]), attempts=[a, "not an attempt"] * 500))
    assert len(r.attempts) == 50  # 100 items at most, the strings dropped
    text = json.dumps(r.attempts)  # plain JSON: no NaN, no giant integers
    assert "\\u0000" not in text and "NaN" not in text and "\\ud800" not in text
    first = r.attempts[0]
    assert first["error"].startswith("boom\ufffdzzz") and first["nan"] is None and first["big"] == 2**63 - 1
    assert first["amount"] == "1.5" and first["key"] == 1
    depth, node = 0, first["nested"]
    while isinstance(node, dict):
        depth, node = depth + 1, node.get("x")
    assert depth < JSON_DEPTH
    assert sum(len(s) for s in _strings(r.attempts)) <= JSON_CHARS + 2000


def test_a_degraded_record_is_plain_ascii_with_escapes():
    r = degrade(replace(record([attempt("a", model="gpt\ud800é")]), model="gpt\ud800é", route="ré"))
    assert r.model == "gpt\\ud800\\xe9" and r.route == "r\\xe9" and r.attempts[0]["model"] == "gpt\\ud800\\xe9"


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)

"""The bounded JSON parser every /v1 and /api body goes through (providers/bounds.py)."""

from __future__ import annotations

import pytest

from providers.bounds import MAX_DEPTH, BoundsError, load_json


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model": "x\\ud800"}',
        b'{"model": "x\\uDFFF"}',
        b'{"messages": [{"content": "a\\udc00b"}]}',
        b'{"\\ud9ab": 1}',
        b'{"a": ' + b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1) + b"}",
        b'{"a": NaN}',
        b'{"a": 1e999}',
    ],
)
def test_a_body_past_the_bounds_is_refused_whatever_shortcut_is_taken(raw):
    with pytest.raises(BoundsError):
        load_json(raw)


@pytest.mark.parametrize(
    "raw, value",
    [
        (b'{"a": "\\ud83d\\ude00"}', {"a": "\U0001f600"}),  # a surrogate pair is one character
        (b'{"a": "\\\\ud800"}', {"a": "\\ud800"}),  # an escaped backslash, then text
        (b'{"a": "' + b"[" * 200 + b'"}', {"a": "[" * 200}),  # brackets inside a string nest nothing
        (b'{"a": ' + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1) + b"}", {"a": nested(MAX_DEPTH - 1)}),
    ],
)
def test_a_body_within_the_bounds_is_read_as_json_reads_it(raw, value):
    assert load_json(raw) == value

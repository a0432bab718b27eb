"""`wirejson.loads` reads what `json.loads` reads, to the same values, and refuses what it refuses:
documents generated from every kind of JSON value (integers past 64 bits, NaN and Infinity,
lone surrogates, non-ASCII text), as text and as UTF-8 bytes, and byte strings that are not
JSON at all."""

from __future__ import annotations

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from providers.adapters import wirejson

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
)


def outcome(load, data):
    try:
        return "ok", _comparable(load(data))
    except ValueError as exc:
        return "error", type(exc).__name__


def _comparable(value):
    """NaN is not equal to itself: compare its repr; a float and an int must not pass as equal."""
    if isinstance(value, float):
        return ("float", "nan" if math.isnan(value) else repr(value))
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()}
    return (type(value).__name__, value)


@settings(max_examples=400, deadline=None)
@given(values, st.booleans(), st.booleans())
def test_a_document_reads_as_the_standard_library_reads_it(value, ascii_only, as_bytes):
    text = json.dumps(value, ensure_ascii=ascii_only)
    data = text.encode("utf-8", "surrogatepass") if as_bytes else text
    assert outcome(wirejson.loads, data) == outcome(json.loads, data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64) | st.text(max_size=64))
def test_what_is_not_json_is_refused_as_the_standard_library_refuses_it(data):
    assert outcome(wirejson.loads, data) == outcome(json.loads, data)


def test_an_integer_past_64_bits_stays_an_exact_integer():
    big = 2**64 + 1
    assert wirejson.loads(f'{{"seed": {big}}}') == {"seed": big}
    assert wirejson.loads(f"[-{big}]".encode()) == [-big]

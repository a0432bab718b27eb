"""The response cache's key and its in-process store (the Redis store: tests/scaleout)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from providers.engine import FakeClock
from providers.gateway.cache import Cached, LocalCache, cache_key

ANSWER = Cached(b'{"ok": true}', "application/json", "up-a", "gpt-4o-mini", 10, 2)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)


@given(st.dictionaries(st.text(max_size=4), json_values, max_size=5))
def test_the_key_ignores_the_order_of_a_body_s_keys(body):
    reordered = dict(reversed(list(body.items())))
    assert cache_key(route="r", endpoint="chat", scope="1", body=body) == cache_key(
        route="r", endpoint="chat", scope="1", body=reordered
    )


def test_the_key_changes_with_route_endpoint_scope_and_every_value():
    base = {"route": "r", "endpoint": "chat", "scope": "1", "body": {"messages": [{"content": "hi"}], "n": 1}}
    keys = {cache_key(**base)}
    for change in (
        {"route": "r2"},
        {"endpoint": "messages"},
        {"scope": "2"},
        {"body": {"messages": [{"content": "hi!"}], "n": 1}},
        {"body": {"messages": [{"content": "hi"}]}},
        {"body": {"messages": [{"content": "hi"}], "n": 1.5}},
    ):
        keys.add(cache_key(**{**base, **change}))
    assert len(keys) == 7
    # no separator trick: ("ab", "c") and ("a", "bc") are different requests
    assert cache_key(route="ab", endpoint="c", scope="", body=1) != cache_key(
        route="a", endpoint="bc", scope="", body=1
    )


def test_a_kept_answer_survives_its_own_serialisation():
    raw = Cached(b"line one\nline two\x00\xff", "audio/mpeg", "p", "m")
    assert Cached.loads(raw.dumps()) == raw
    assert Cached.loads(b"no header") is None and Cached.loads(b"{bad json\nbody") is None


async def test_an_answer_expires_after_its_ttl():
    clock = FakeClock()
    cache = LocalCache(now=clock.monotonic)
    await cache.put("k", ANSWER, ttl_s=30)
    clock.advance(29.9)
    assert await cache.get("k") == ANSWER
    clock.advance(0.2)
    assert await cache.get("k") is None and len(cache) == 0


async def test_the_least_recently_used_answer_goes_first_past_the_bound():
    clock = FakeClock()
    cache = LocalCache(max_entries=2, now=clock.monotonic)
    await cache.put("a", ANSWER, 60)
    await cache.put("b", ANSWER, 60)
    assert await cache.get("a") == ANSWER  # a is now the most recent
    await cache.put("c", ANSWER, 60)
    assert await cache.get("b") is None
    assert await cache.get("a") == ANSWER and await cache.get("c") == ANSWER


async def test_a_zero_ttl_keeps_nothing():
    cache = LocalCache()
    await cache.put("k", ANSWER, 0)
    assert await cache.get("k") is None

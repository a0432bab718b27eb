"""SimulatedAdapter: seeded, scripted behaviour with a fake clock and sleep; no network."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import math
import random
import statistics
import struct
import wave
from decimal import Decimal

import httpx
import pytest

from providers.adapters import adapter_class
from providers.adapters.base import Price, ProviderConfig
from providers.adapters.simulated import Behaviour, SimulatedAdapter
from providers.engine.errors import UpstreamError
from providers.engine.outcome import Outcome, classify_exception

from .expect import raised
from .mp4 import mp4_seconds

HELLO = {"messages": [{"role": "user", "content": "status report please"}]}


class Sleeps:
    """A sleep that records what it was asked and returns at once."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def make(options=None, *, now: float = 0.0, rng=None) -> tuple[SimulatedAdapter, Sleeps]:
    sleeps = Sleeps()
    config = ProviderConfig(name="sim-a", kind="simulated", base_url="", options=options or {})
    return SimulatedAdapter(config, None, rng=rng, clock=lambda: now, sleep=sleeps), sleeps


async def outcome_of(awaitable) -> Outcome:
    try:
        await awaitable
    except Exception as exc:
        return classify_exception(exc).outcome
    return Outcome.SUCCESS


def test_the_registry_finds_the_simulated_adapter():
    assert adapter_class("simulated") is SimulatedAdapter


async def test_chat_is_deterministic_and_counts_tokens():
    adapter, _ = make()

    first = await adapter.chat(HELLO, model="sim-chat", timeout=5)
    second = await adapter.chat(HELLO, model="sim-chat", timeout=5)

    content = first.data["choices"][0]["message"]["content"]
    assert content == "This is a simulated answer from sim-a (sim-chat) to: status report please"
    assert second.data["choices"][0]["message"]["content"] == content
    assert first.data["object"] == "chat.completion"
    assert (first.usage.tokens_in, first.usage.tokens_out) == (8, 12)
    assert first.data["usage"] == {"prompt_tokens": 8, "completion_tokens": 12, "total_tokens": 20}
    assert first.usage.cost(Price(input_per_mtok=Decimal(1), output_per_mtok=Decimal(3))) == Decimal("0.000044")


async def test_max_tokens_cuts_the_reply_with_finish_reason_length():
    adapter, _ = make()

    result = await adapter.chat({**HELLO, "max_tokens": 4}, model="m", timeout=5)

    assert result.data["choices"][0]["finish_reason"] == "length"
    assert result.usage.tokens_out == 4


async def test_a_stream_sends_several_chunks_that_add_up_to_the_chat_answer():
    adapter, _ = make()
    plain = await adapter.chat(HELLO, model="m", timeout=5)

    stream = await adapter.chat_stream({**HELLO, "stream_options": {"include_usage": True}}, model="m", timeout=5)
    chunks = [c async for c in stream]

    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert content == plain.data["choices"][0]["message"]["content"]
    assert len(chunks) > 5
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] == stream.usage.tokens_out == plain.usage.tokens_out


async def test_a_cut_stream_breaks_mid_way_as_a_failure():
    adapter, _ = make({"stream_cut_rate": 1.0})
    stream = await adapter.chat_stream(HELLO, model="m", timeout=5)
    got = []

    async def read():
        async for chunk in stream:
            got.append(chunk)

    error = await raised(read())

    assert isinstance(error, httpx.RemoteProtocolError)
    assert classify_exception(error).outcome is Outcome.FAILURE
    assert 1 < len(got) < 12


async def test_error_rate_one_fails_with_a_503_in_openais_shape():
    adapter, _ = make({"error_rate": 1.0})

    error = await raised(adapter.chat(HELLO, model="m", timeout=5))

    assert isinstance(error, UpstreamError) and error.status == 503
    assert classify_exception(error).outcome is Outcome.FAILURE
    assert json.loads(error.body)["error"]["type"] == "server_error"


async def test_rate_limits_come_with_retry_after():
    adapter, _ = make({"rate_limit_rate": 1.0, "retry_after_s": 7})

    error = await raised(adapter.embeddings({"input": "x"}, model="m", timeout=5))

    assert error.status == 429
    assert classify_exception(error).outcome is Outcome.RATE_LIMITED
    assert classify_exception(error).retry_after == 7
    assert error.headers["retry-after"] == "7"


async def test_exhausted_quota_is_exhausted():
    adapter, _ = make({"exhausted_rate": 1.0})

    error = await raised(adapter.speech({"input": "hi"}, model="m", timeout=5))

    assert classify_exception(error).outcome is Outcome.EXHAUSTED


async def test_a_timeout_sleeps_past_the_budget_and_then_raises_a_read_timeout():
    adapter, sleeps = make({"timeout_rate": 1.0})

    error = await raised(adapter.chat(HELLO, model="m", timeout=2.5))

    assert sleeps.calls == [3.5]
    assert classify_exception(error).outcome is Outcome.FAILURE


async def test_a_timeout_lets_the_engines_own_timeout_fire():
    config = ProviderConfig(name="sim", kind="simulated", base_url="", options={"timeout_rate": 1.0})
    adapter = SimulatedAdapter(config, None)  # real asyncio.sleep

    async def attempt():
        async with asyncio.timeout(0.02):
            await adapter.chat(HELLO, model="m", timeout=0.02)

    error = await raised(attempt())

    assert isinstance(error, TimeoutError)
    assert classify_exception(error).outcome is Outcome.DEADLINE


async def test_the_same_seed_gives_the_same_outcomes_and_another_seed_others():
    async def run(seed: int) -> list[Outcome]:
        adapter, _ = make({"seed": seed, "error_rate": 0.3, "rate_limit_rate": 0.2})
        return [await outcome_of(adapter.chat(HELLO, model="m", timeout=5)) for _ in range(40)]

    first, again, other = await run(1), await run(1), await run(2)

    assert first == again
    assert first != other
    assert {Outcome.SUCCESS, Outcome.FAILURE, Outcome.RATE_LIMITED} <= set(first)


async def test_latency_is_the_mean_plus_uniform_jitter():
    adapter, sleeps = make({"latency_ms": 200, "latency_jitter_ms": 50, "seed": 3})

    for _ in range(50):
        await adapter.chat(HELLO, model="m", timeout=5)

    assert all(0.15 <= s <= 0.25 for s in sleeps.calls)
    assert statistics.mean(sleeps.calls) == pytest.approx(0.2, abs=0.02)


async def test_lognormal_latency_matches_its_p50_and_p95():
    adapter, sleeps = make({"latency_p50_ms": 100, "latency_p95_ms": 400}, rng=random.Random(11))

    for _ in range(4000):
        await adapter.probe(timeout=5)

    cuts = statistics.quantiles(sleeps.calls, n=20)
    assert cuts[9] == pytest.approx(0.1, rel=0.1)  # the median
    assert cuts[18] == pytest.approx(0.4, rel=0.15)  # the 95th percentile


async def test_a_periodic_outage_fails_every_call_inside_it_and_none_outside():
    inside, _ = make({"outage": {"period_s": 600, "down_s": 60}}, now=1_200 + 30)
    outside, _ = make({"outage": {"period_s": 600, "down_s": 60}}, now=1_200 + 61)

    error = await raised(inside.probe(timeout=5))

    assert error.status == 503
    assert classify_exception(error).outcome is Outcome.FAILURE
    assert classify_exception(error).retry_after == 30
    assert await outcome_of(outside.probe(timeout=5)) is Outcome.SUCCESS


async def test_explicit_outage_windows_accept_iso_times():
    options = {"outage": {"windows": [["2030-01-01T10:00:00+00:00", "2030-01-01T10:05:00+00:00"]]}}
    start = 1_893_492_000.0  # 2030-01-01T10:00:00Z
    during, _ = make(options, now=start + 10)
    after, _ = make(options, now=start + 301)

    assert (
        await outcome_of(during.translate({"text": "a", "target_lang": "de"}, model="m", timeout=5)) is Outcome.FAILURE
    )
    assert (
        await outcome_of(after.translate({"text": "a", "target_lang": "de"}, model="m", timeout=5)) is Outcome.SUCCESS
    )


async def test_embeddings_are_deterministic_unit_vectors_also_in_base64():
    adapter, _ = make({"embedding_dims": 8})

    plain = await adapter.embeddings({"input": ["a", "b"]}, model="sim-embed", timeout=5)
    packed = await adapter.embeddings({"input": ["a"], "encoding_format": "base64"}, model="sim-embed", timeout=5)

    vector = plain.data["data"][0]["embedding"]
    assert len(vector) == 8 and math.isclose(sum(v * v for v in vector), 1.0)
    assert plain.data["data"][1]["embedding"] != vector
    assert struct.unpack("<8f", base64.b64decode(packed.data["data"][0]["embedding"])) == pytest.approx(
        vector, rel=1e-6
    )
    assert plain.usage.tokens_in == 2


async def test_images_are_valid_tiny_pngs():
    adapter, _ = make()

    result = await adapter.images({"prompt": "a cat", "n": 2}, model="sim-image", timeout=5)

    pngs = [base64.b64decode(d["b64_json"]) for d in result.data["data"]]
    assert all(p.startswith(b"\x89PNG\r\n\x1a\n") and struct.unpack(">II", p[16:24]) == (8, 8) for p in pngs)
    assert result.usage.images == 2


async def test_speech_is_a_short_valid_wav_billed_in_characters():
    adapter, _ = make()

    result = await adapter.speech({"input": "Hello operator", "voice": "x"}, model="sim-tts", timeout=5)

    with wave.open(io.BytesIO(result.content)) as audio:
        assert audio.getnframes() / audio.getframerate() == pytest.approx(result.usage.audio_seconds)
    assert result.media_type == "audio/wav"
    assert result.usage.characters == 14


async def test_a_video_is_a_tiny_valid_mp4_as_a_data_url():
    adapter, _ = make()

    result = await adapter.video({"prompt": "a boat", "duration_s": 3}, model="sim-video", timeout=5)

    [item] = result.data["data"]
    head, _, payload = item["url"].partition(",")
    assert head == "data:video/mp4;base64" and mp4_seconds(base64.b64decode(payload)) == 3
    assert result.usage.images == 1 and "sim-video" in {m.name for m in adapter.models()}


async def test_a_video_without_a_prompt_is_a_caller_error_and_an_outage_fails_it():
    adapter, _ = make()
    down, _ = make({"outage": {"windows": [[0, 60]]}}, now=10)

    assert await outcome_of(adapter.video({"duration_s": 3}, model="sim-video", timeout=5)) is Outcome.CALLER_ERROR
    assert await outcome_of(down.video({"prompt": "x"}, model="sim-video", timeout=5)) is Outcome.FAILURE


async def test_translation_marks_the_target_language():
    adapter, _ = make()

    result = await adapter.translate({"text": ["good day", "bye"], "target_lang": "de"}, model="m", timeout=5)

    assert result.data == {
        "translations": [
            {"text": "[DE] good day", "detected_source_language": "EN"},
            {"text": "[DE] bye", "detected_source_language": "EN"},
        ]
    }
    assert result.usage.characters == 11


async def test_models_come_from_options_or_the_defaults():
    default, _ = make()
    configured, _ = make({"models": ["gpt-sim", {"name": "embed-sim", "capabilities": ["embeddings"]}]})

    assert {m.name for m in await default.list_models(timeout=5)} >= {"sim-chat", "sim-embed", "sim-tts"}
    listed = await configured.list_models(timeout=5)
    assert [(m.name, m.capabilities) for m in listed] == [
        ("gpt-sim", frozenset({"chat"})),
        ("embed-sim", frozenset({"embeddings"})),
    ]


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"error_rate": 1.5}, "error_rate"),
        ({"error_rate": 0.6, "timeout_rate": 0.6}, "must not exceed 1"),
        ({"latency_p50_ms": 100}, "latency_p50_ms"),
        ({"outage": {"period_s": 60, "down_s": 90}}, "outage"),
        ({"outage": {"period_s": 60, "down_s": None}}, "outage"),
        ({"outage": [["yesterday", "today"]]}, "outage window"),
        ({"seed": "abc"}, "seed"),
    ],
)
def test_bad_options_are_refused_naming_the_field(options, field):
    with pytest.raises(ValueError, match=field):
        Behaviour.from_options(options)


async def test_a_bad_request_is_a_caller_error():
    adapter, _ = make()

    error = await raised(adapter.chat({"messages": []}, model="m", timeout=5))

    assert classify_exception(error).outcome is Outcome.CALLER_ERROR

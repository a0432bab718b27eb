"""The adapters against a mock server nobody here wrote: fakellm 0.3.5 from PyPI.

Our own fakes could share our misreadings of the wire formats; a third-party mock cannot.
fakellm speaks OpenAI's /v1/chat/completions and Anthropic's /v1/messages (plain and
streamed, with tool calls and scripted errors) from a YAML rule file, and has no model list,
which is itself a case worth covering: llama.cpp-era servers without /models exist.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from providers.adapters.anthropic import AnthropicAdapter
from providers.adapters.base import ProviderConfig
from providers.adapters.openai import OpenAIAdapter
from providers.engine.errors import UpstreamError
from providers.engine.outcome import Outcome
from tests.fakes.base import free_port

pytest.importorskip("fakellm", reason="fakellm==0.3.5 is not installed (pip install fakellm==0.3.5)")

RULES = """\
version: 1
defaults:
  fallback: deterministic_echo
rules:
  - name: weather_tool
    when:
      messages_contain: "weather in paris"
      tools_include: get_weather
    respond:
      tool_calls:
        - name: get_weather
          arguments: {city: Paris}
  - name: rate_limited
    when:
      messages_contain: "trigger rate limit"
    respond:
      status: 429
      error: "Rate limit exceeded (mock)"
  - name: broken
    when:
      messages_contain: "trigger server error"
    respond:
      status: 500
      error: "Internal error (mock)"
  - name: greeting
    when:
      messages_contain: "hello"
    respond:
      content: "Hi there from fakellm."
"""
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def ask(text: str, **extra: object) -> dict:
    return {"messages": [{"role": "user", "content": text}], **extra}


@pytest.fixture(scope="module")
def fakellm(tmp_path_factory):
    """fakellm serving on a free loopback port, as a subprocess we start and stop."""
    home: Path = tmp_path_factory.mktemp("fakellm")
    (home / "fakellm.yaml").write_text(RULES)
    port = free_port()
    log = (home / "fakellm.log").open("wb")  # a file, not a pipe nobody drains
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fakellm.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--config",
            str(home / "fakellm.yaml"),
        ],
        cwd=home,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(url + "/_fakellm/stats", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait(timeout=5)
            log.close()
            output = (home / "fakellm.log").read_text(errors="replace")[-2000:]
            pytest.fail(f"fakellm did not start: {output}")
        time.sleep(0.1)
    yield url
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
    log.close()


@pytest.fixture
async def http():
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def openai_adapter(fakellm, http):
    config = ProviderConfig(name="fakellm", kind="openai", base_url=fakellm + "/v1", api_key="sk-anything")
    return OpenAIAdapter(config, http)


@pytest.fixture
def anthropic_adapter(fakellm, http):
    config = ProviderConfig(name="fakellm-claude", kind="anthropic", base_url=fakellm, api_key="sk-anything")
    return AnthropicAdapter(config, http)


async def drain(stream) -> list[dict]:
    return [chunk async for chunk in stream]


def text_of(chunks: list[dict]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


# -- OpenAIAdapter ------------------------------------------------------------------------------


async def test_openai_chat_reads_fakellms_completion(openai_adapter):
    result = await openai_adapter.chat(ask("hello there"), model="gpt-4o-mini", timeout=5)

    assert result.data["object"] == "chat.completion"
    assert result.data["choices"][0]["message"]["content"] == "Hi there from fakellm."
    assert result.usage.tokens_in > 0 and result.usage.tokens_out > 0
    assert json.loads(result.content) == result.data


async def test_openai_chat_gets_fakellms_deterministic_echo_for_unscripted_prompts(openai_adapter):
    first = await openai_adapter.chat(ask("what is two plus two"), model="gpt-4o-mini", timeout=5)
    again = await openai_adapter.chat(ask("what is two plus two"), model="gpt-4o-mini", timeout=5)

    content = first.data["choices"][0]["message"]["content"]
    assert content.startswith("[mock response for gpt-4o-mini, fingerprint ")
    assert again.data["choices"][0]["message"]["content"] == content


async def test_openai_stream_reads_fakellms_sse_to_done(openai_adapter):
    stream = await openai_adapter.chat_stream(ask("hello there"), model="gpt-4o-mini", timeout=5)
    chunks = await drain(stream)

    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    assert text_of(chunks) == "Hi there from fakellm."
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    # fakellm ignores stream_options, so no usage arrives; the stream still ends cleanly.
    assert stream.usage.tokens_in == 0


async def test_openai_tool_calls_come_through_plain_and_streamed(openai_adapter):
    request = ask("what is the weather in Paris?", tools=[WEATHER_TOOL])
    plain = await openai_adapter.chat(request, model="gpt-4o-mini", timeout=5)
    chunks = await drain(await openai_adapter.chat_stream(request, model="gpt-4o-mini", timeout=5))

    call = plain.data["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
    fragments = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks
        if c["choices"] and c["choices"][0]["delta"].get("tool_calls")
    ]
    assert fragments[0]["function"]["name"] == "get_weather"
    assert json.loads("".join(f["function"]["arguments"] for f in fragments)) == {"city": "Paris"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_fakellms_429_is_rate_limited_and_its_500_a_failure(openai_adapter):
    with pytest.raises(UpstreamError) as limited:
        await openai_adapter.chat(ask("trigger rate limit"), model="gpt-4o-mini", timeout=5)
    with pytest.raises(UpstreamError) as broken:
        await openai_adapter.chat(ask("trigger server error"), model="gpt-4o-mini", timeout=5)

    assert (limited.value.status, limited.value.outcome) == (429, Outcome.RATE_LIMITED)
    assert limited.value.classification.retry_after is None  # fakellm sends no hint
    assert limited.value.message == "Rate limit exceeded (mock)"
    assert (broken.value.status, broken.value.outcome) == (500, Outcome.FAILURE)


async def test_a_server_without_a_model_list_fails_a_shallow_probe_but_passes_a_deep_one(
    openai_adapter,
):
    with pytest.raises(UpstreamError) as shallow:
        await openai_adapter.probe(timeout=5)
    deep = await openai_adapter.probe(timeout=5, deep=True, model="gpt-4o-mini")

    assert (shallow.value.status, shallow.value.outcome) == (404, Outcome.CALLER_ERROR)
    assert deep["model"] == "gpt-4o-mini" and deep["finish_reason"] == "stop"


# -- AnthropicAdapter ---------------------------------------------------------------------------


async def test_anthropic_chat_translates_fakellms_message(anthropic_adapter):
    result = await anthropic_adapter.chat(
        {
            "messages": [
                {"role": "system", "content": "be kind"},
                {"role": "user", "content": "hello"},
            ]
        },
        model="claude-sonnet-4-6",
        timeout=5,
    )

    assert result.data["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Hi there from fakellm.",
    }
    assert result.data["choices"][0]["finish_reason"] == "stop"
    assert result.usage.tokens_out > 0


async def test_anthropic_stream_translates_fakellms_events(anthropic_adapter):
    stream = await anthropic_adapter.chat_stream(ask("hello"), model="claude-sonnet-4-6", timeout=5)
    chunks = await drain(stream)

    assert text_of(chunks) == "Hi there from fakellm."
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert stream.usage.tokens_out > 0


async def test_anthropic_streamed_tool_use_becomes_openai_tool_call_fragments(anthropic_adapter):
    request = ask("what is the weather in Paris?", tools=[WEATHER_TOOL])
    chunks = await drain(await anthropic_adapter.chat_stream(request, model="claude-sonnet-4-6", timeout=5))

    fragments = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks
        if c["choices"] and c["choices"][0]["delta"].get("tool_calls")
    ]
    assert fragments[0]["function"]["name"] == "get_weather" and fragments[0]["index"] == 0
    assert json.loads("".join(f["function"]["arguments"] for f in fragments)) == {"city": "Paris"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"

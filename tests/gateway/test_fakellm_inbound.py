"""A third-party server nobody here wrote, fakellm 0.3.5 from PyPI, as the upstream of every
client API the gateway speaks: `/v1/chat/completions` and `/v1/responses` driven by the official
`openai` SDK, `/v1/messages` by the official `anthropic` SDK, each through fakellm's OpenAI
format and its Anthropic one; plain, streamed, a tool round trip, and an upstream failure in
the caller's own error shape.

Our fakes (tests/fakes/) could share our misreadings of the wire formats; fakellm cannot.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest

from tests.fakes.base import free_port

from .conftest import provider

pytest.importorskip("fakellm", reason="fakellm==0.3.5 is not installed (pip install fakellm==0.3.5)")

pytestmark = pytest.mark.django_db(transaction=True)

# fakellm remembers tool results per conversation (a hash of the first user message): each test
# asks with words of its own, and the state is reset before each test.
RULES = """\
version: 1
defaults:
  fallback: deterministic_echo
rules:
  - name: weather_answer
    when:
      tool_result_contains: "sunny"
    respond:
      content: "It is sunny in Paris."
  - name: weather_tool
    when:
      messages_contain: "weather in paris"
      tools_include: get_weather
    respond:
      tool_calls:
        - name: get_weather
          arguments: {city: Paris}
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
ROUTES = ["via-openai-format", "via-anthropic-format"]
GREETING = "Hi there from fakellm."
PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
CHAT_TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": PARAMETERS}}
RESPONSES_TOOL = {"type": "function", "name": "get_weather", "parameters": PARAMETERS}
MESSAGES_TOOL = {"name": "get_weather", "input_schema": PARAMETERS}


@pytest.fixture(scope="module")
def fakellm(tmp_path_factory) -> Iterator[str]:
    """fakellm serving on a free loopback port, as a subprocess this fixture starts and stops."""
    home: Path = tmp_path_factory.mktemp("fakellm-inbound")
    (home / "fakellm.yaml").write_text(RULES)
    port = free_port()
    log = (home / "fakellm.log").open("wb")
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
    deadline = time.monotonic() + 30  # a guard against a hang, not a timing expectation
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
            pytest.fail(f"fakellm did not start: {(home / 'fakellm.log').read_text(errors='replace')[-2000:]}")
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
async def routes(configure, fakellm):
    async with httpx.AsyncClient() as http:
        (await http.post(fakellm + "/_fakellm/reset", timeout=5)).raise_for_status()
    quiet = {"consecutive_failures": 100, "min_calls": 1000}
    await configure(
        {
            "providers": [
                provider(
                    "fakellm-openai", fakellm + "/v1", key="sk-anything", breaker=quiet, retry={"max_attempts": 1}
                ),
                provider(
                    "fakellm-anthropic",
                    fakellm,
                    kind="anthropic",
                    key="sk-anything",
                    breaker=quiet,
                    retry={"max_attempts": 1},
                ),
            ],
            "routes": [
                {
                    "name": "via-openai-format",
                    "capability": "chat",
                    "targets": [{"provider": "fakellm-openai", "model": "gpt-4o-mini"}],
                },
                {
                    "name": "via-anthropic-format",
                    "capability": "chat",
                    "targets": [{"provider": "fakellm-anthropic", "model": "claude-sonnet-4-6"}],
                },
            ],
        }
    )


@pytest.fixture
async def oai(gateway, routes, key) -> AsyncIterator[openai.AsyncOpenAI]:
    from project.asgi import application

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), timeout=30) as http:
        yield openai.AsyncOpenAI(base_url="http://testserver/v1", api_key=key, http_client=http, max_retries=0)


@pytest.fixture
async def claude(gateway, routes, key) -> AsyncIterator[anthropic.AsyncAnthropic]:
    from project.asgi import application

    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=application), timeout=30) as http:
        yield anthropic.AsyncAnthropic(base_url="http://testserver", api_key=key, http_client=http, max_retries=0)


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


# -- /v1/chat/completions ------------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
async def test_chat_completions_plain_and_streamed(oai, route):
    plain = await oai.chat.completions.create(model=route, messages=user("hello from chat"))
    stream = await oai.chat.completions.create(model=route, messages=user("hello from chat"), stream=True)
    pieces = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]

    assert plain.choices[0].message.content == GREETING and plain.choices[0].finish_reason == "stop"
    assert "".join(pieces) == GREETING


@pytest.mark.parametrize("route", ROUTES)
async def test_chat_completions_tool_round_trip(oai, route):
    ask = user(f"what is the weather in Paris? (chat, {route})")
    first = await oai.chat.completions.create(model=route, messages=ask, tools=[CHAT_TOOL])
    call = first.choices[0].message.tool_calls[0]
    assert (call.function.name, json.loads(call.function.arguments)) == ("get_weather", {"city": "Paris"})

    second = await oai.chat.completions.create(
        model=route,
        tools=[CHAT_TOOL],
        messages=[
            *ask,
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"},
        ],
    )

    assert second.choices[0].message.content == "It is sunny in Paris."


# -- /v1/messages ----------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
async def test_messages_plain_and_streamed(claude, route):
    plain = await claude.messages.create(model=route, max_tokens=64, messages=user("hello from messages"))
    async with claude.messages.stream(model=route, max_tokens=64, messages=user("hello from messages")) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()

    assert plain.content[0].text == GREETING and plain.stop_reason == "end_turn"
    assert text == GREETING and final.stop_reason == "end_turn"


@pytest.mark.parametrize("route", ROUTES)
async def test_messages_tool_round_trip(claude, route):
    ask = user(f"what is the weather in Paris? (messages, {route})")
    first = await claude.messages.create(model=route, max_tokens=64, messages=ask, tools=[MESSAGES_TOOL])
    call = next(block for block in first.content if block.type == "tool_use")
    assert first.stop_reason == "tool_use" and (call.name, call.input) == ("get_weather", {"city": "Paris"})

    second = await claude.messages.create(
        model=route,
        max_tokens=64,
        tools=[MESSAGES_TOOL],
        messages=[
            *ask,
            {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny, 21C"}]},
        ],
    )

    assert second.content[0].text == "It is sunny in Paris."


# -- /v1/responses -------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
async def test_responses_plain_and_streamed(oai, route):
    plain = await oai.responses.create(model=route, input="hello from responses")
    async with oai.responses.stream(model=route, input="hello from responses") as stream:
        deltas = [event.delta async for event in stream if event.type == "response.output_text.delta"]
        final = await stream.get_final_response()

    assert plain.output_text == GREETING and plain.status == "completed"
    assert "".join(deltas) == GREETING and final.output_text == GREETING


@pytest.mark.parametrize("route", ROUTES)
async def test_responses_tool_round_trip(oai, route):
    ask = f"what is the weather in Paris? (responses, {route})"
    first = await oai.responses.create(model=route, input=ask, tools=[RESPONSES_TOOL])
    call = next(item for item in first.output if item.type == "function_call")
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Paris"})

    second = await oai.responses.create(
        model=route,
        tools=[RESPONSES_TOOL],
        input=[
            {"role": "user", "content": ask},
            call.model_dump(exclude_none=True),
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21C"},
        ],
    )

    assert second.output_text == "It is sunny in Paris."


# -- an upstream failure, in each caller's shape -----------------------------------------------------


@pytest.mark.parametrize("route", ROUTES)
async def test_fakellms_500_is_a_502_in_each_callers_shape(oai, claude, route):
    with pytest.raises(openai.APIStatusError) as chat:
        await oai.chat.completions.create(model=route, messages=user("trigger server error (chat)"))
    with pytest.raises(openai.APIStatusError) as responses:
        await oai.responses.create(model=route, input="trigger server error (responses)")
    with pytest.raises(anthropic.APIStatusError) as messages:
        await claude.messages.create(model=route, max_tokens=64, messages=user("trigger server error (messages)"))

    assert chat.value.status_code == responses.value.status_code == messages.value.status_code == 502
    assert chat.value.body["type"] == "all_targets_failed" and responses.value.body["param"] is None
    assert messages.value.body["type"] == "error" and messages.value.body["error"]["type"] == "api_error"

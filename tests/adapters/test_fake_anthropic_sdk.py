"""FakeAnthropic is faithful: the official `anthropic` SDK drives it without noticing it is a fake."""

from __future__ import annotations

import anthropic
import httpx
import httpx2
import pytest

from tests.fakes.anthropic import API_KEY, FakeAnthropic

MODEL = "claude-sonnet-4-6"
HELLO = [{"role": "user", "content": "hello world"}]
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture(scope="module")
def fake():
    with FakeAnthropic() as server:
        yield server


@pytest.fixture
def sdk(fake):
    with anthropic.Anthropic(base_url=fake.url, api_key=API_KEY, max_retries=0) as client:
        yield client


@pytest.fixture
async def async_sdk(fake):
    async with anthropic.AsyncAnthropic(base_url=fake.url, api_key=API_KEY, max_retries=0) as client:
        yield client


# -- messages -----------------------------------------------------------------------------------


def test_a_message_parses_into_the_sdks_model(sdk):
    message = sdk.messages.create(model=MODEL, max_tokens=100, messages=HELLO)

    assert message.type == "message" and message.role == "assistant" and message.id.startswith("msg_")
    assert message.content[0].type == "text" and message.content[0].text == "Echo: hello world"
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert (message.usage.input_tokens, message.usage.output_tokens) == (2, 3)
    assert message._request_id.startswith("req_")


def test_a_system_prompt_and_stop_sequences_are_understood(sdk):
    message = sdk.messages.create(
        model=MODEL, max_tokens=100, system="Be brief.", stop_sequences=["world"], messages=HELLO
    )

    assert message.content[0].text == "Echo: hello"
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "world")
    assert message.usage.input_tokens == 4


def test_max_tokens_stops_the_answer(sdk):
    message = sdk.messages.create(model=MODEL, max_tokens=1, messages=HELLO)

    assert message.stop_reason == "max_tokens" and message.content[0].text == "Echo:"


def test_raw_stream_events_come_in_the_real_order(sdk):
    events = list(sdk.messages.create(model=MODEL, max_tokens=100, messages=HELLO, stream=True))

    assert [e.type for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]  # the SDK drops the ping
    assert events[6].delta.stop_reason == "end_turn" and events[6].usage.output_tokens == 3


def test_the_sdks_stream_helper_assembles_the_final_message(sdk):
    with sdk.messages.stream(model=MODEL, max_tokens=100, messages=HELLO) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()

    assert pieces == ["Echo:", " hello", " world"]
    assert final.content[0].text == "Echo: hello world" and final.usage.output_tokens == 3


def test_a_tool_use_block_parses_with_its_input(sdk):
    message = sdk.messages.create(
        model=MODEL,
        max_tokens=100,
        tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": 'call get_weather {"city": "Paris"}'}],
    )

    tool_use = message.content[1]
    assert message.stop_reason == "tool_use"
    assert (tool_use.type, tool_use.name, tool_use.input) == (
        "tool_use",
        "get_weather",
        {"city": "Paris"},
    )


def test_the_stream_helper_assembles_streamed_tool_input_json(sdk):
    with sdk.messages.stream(
        model=MODEL,
        max_tokens=100,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "any"},
        messages=[{"role": "user", "content": 'weather please {"city": "Oslo"}'}],
    ) as stream:
        final = stream.get_final_message()

    assert final.content[0].text == "Calling get_weather."
    assert final.content[1].input == {"city": "Oslo"} and final.stop_reason == "tool_use"


def test_a_tool_result_round_trip_is_accepted(sdk):
    first = sdk.messages.create(
        model=MODEL,
        max_tokens=100,
        tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": 'call get_weather {"city": "Paris"}'}],
    )
    tool_use = first.content[1]
    second = sdk.messages.create(
        model=MODEL,
        max_tokens=100,
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": 'call get_weather {"city": "Paris"}'},
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "sunny"}],
            },
        ],
    )

    assert second.content[0].text == "Tool result: sunny" and second.stop_reason == "end_turn"


def test_a_tool_use_left_without_its_result_is_refused_as_the_api_does(sdk):
    with pytest.raises(anthropic.BadRequestError) as info:
        sdk.messages.create(
            model=MODEL,
            max_tokens=100,
            messages=[
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}],
                },
                {"role": "user", "content": "never mind"},
            ],
        )

    assert "`tool_use` ids were found without `tool_result` blocks" in info.value.api_message


def test_count_tokens_counts_words(sdk):
    assert sdk.messages.count_tokens(model=MODEL, system="be brief", messages=HELLO).input_tokens == 4


async def test_the_async_client_streams_too(async_sdk):
    async with async_sdk.messages.stream(model=MODEL, max_tokens=100, messages=HELLO) as stream:
        text = "".join([piece async for piece in stream.text_stream])

    assert text == "Echo: hello world"


# -- models -------------------------------------------------------------------------------------


def test_models_paginate_and_retrieve_by_alias(sdk):
    page = sdk.models.list(limit=2)
    everything = [m.id for m in page]  # auto-pagination follows after_id

    assert page.has_more is True and len(page.data) == 2
    assert everything[0] == "claude-opus-4-6" and len(everything) == 6
    assert sdk.models.retrieve("claude-haiku-4-5").id == "claude-haiku-4-5-20251001"
    with pytest.raises(anthropic.NotFoundError):
        sdk.models.retrieve("claude-nonexistent")


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "exception", "kind"),
    [
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (401, anthropic.AuthenticationError, "authentication_error"),
        (403, anthropic.PermissionDeniedError, "permission_error"),
        (404, anthropic.NotFoundError, "not_found_error"),
        (413, anthropic.RequestTooLargeError, "request_too_large"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (503, anthropic.InternalServerError, "api_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
def test_every_error_status_parses_into_the_sdks_own_exception(sdk, fake, status, exception, kind):
    fake.fault(status=status)

    with pytest.raises(exception) as info:
        sdk.messages.create(model=MODEL, max_tokens=100, messages=HELLO)

    error = info.value
    assert isinstance(error, anthropic.APIStatusError) and error.status_code == status
    assert error.type == kind and error.request_id == error.body["request_id"]
    assert len(fake.requests_to("/v1/messages")) == 1  # max_retries=0: one request


def test_a_spend_cap_429_names_its_error_code(sdk, fake):
    fake.fault(status=429, error_code="enforced_spend_limit_reached")

    with pytest.raises(anthropic.RateLimitError) as info:
        sdk.messages.create(model=MODEL, max_tokens=100, messages=HELLO)

    assert info.value.error_code == "enforced_spend_limit_reached"


def test_an_empty_credit_balance_is_a_bad_request_saying_so(sdk, fake):
    fake.fault(status=400, error_code="credit_balance_too_low")

    with pytest.raises(anthropic.BadRequestError) as info:
        sdk.messages.create(model=MODEL, max_tokens=100, messages=HELLO)

    assert "credit balance is too low" in info.value.api_message


def test_a_wrong_key_is_an_authentication_error(fake):
    with (
        anthropic.Anthropic(base_url=fake.url, api_key="sk-ant-wrong", max_retries=0) as client,
        pytest.raises(anthropic.AuthenticationError) as info,
    ):
        client.messages.create(model=MODEL, max_tokens=100, messages=HELLO)

    assert info.value.api_message == "invalid x-api-key"


def test_an_overloaded_error_event_mid_stream_raises_in_the_sdk(sdk, fake):
    fake.fault(error_code="overloaded_error")
    received = []

    with pytest.raises(anthropic.APIStatusError) as info:
        for event in sdk.messages.create(model=MODEL, max_tokens=100, messages=HELLO, stream=True):
            received.append(event.type)

    assert received == ["message_start", "content_block_start", "content_block_delta"]
    assert info.value.body["error"]["type"] == "overloaded_error"


def test_a_cut_stream_breaks_the_sdks_iteration(sdk, fake):
    fake.fault(cut_stream_after=3)
    received = []

    # Mid-stream, the anthropic SDK lets its HTTP library's transport error through.
    with pytest.raises(httpx2.RemoteProtocolError):
        for event in sdk.messages.create(model=MODEL, max_tokens=100, messages=HELLO, stream=True):
            received.append(event.type)

    assert received == ["message_start", "content_block_start"]  # and the ping, which the SDK drops


def test_the_fake_requires_max_tokens_and_the_version_header_as_the_api_does(fake):
    headers = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}
    no_max_tokens = httpx.post(fake.url + "/v1/messages", headers=headers, json={"model": MODEL, "messages": HELLO})
    no_version = httpx.post(
        fake.url + "/v1/messages",
        headers={"x-api-key": API_KEY},
        json={"model": MODEL, "max_tokens": 5, "messages": HELLO},
    )

    assert no_max_tokens.status_code == 400
    assert no_max_tokens.json()["error"] == {
        "type": "invalid_request_error",
        "message": "max_tokens: Field required",
    }
    assert no_version.status_code == 400
    assert no_version.json()["error"]["message"] == "anthropic-version: header is required"

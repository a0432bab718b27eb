"""FakeOllama is faithful: the official `ollama` Python client parses every native answer it
gives, and the official `openai` SDK its OpenAI-compatible `/v1` answers.

ollama-python 0.6 has no `version()` method, so /api/version is read with the client's own
httpx session (`client._client`), the one its other calls use.
"""

from __future__ import annotations

import ollama
import pytest

from tests.fakes.ollama import FakeOllama

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture(scope="module")
def fake():
    with FakeOllama() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake, monkeypatch):
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)
    fake.reset()


@pytest.fixture
def client(fake):
    with ollama.Client(host=fake.url) as sdk:
        yield sdk


def test_the_sdk_reads_a_plain_chat_answer(client):
    response = client.chat(model="llama3.2", messages=[{"role": "user", "content": "hi"}])

    assert response.message.role == "assistant"
    assert response.message.content == "Hello from llama3.2! You said: hi"
    assert response.done is True and response.done_reason == "stop"
    assert response.prompt_eval_count == 5 and response.eval_count == 6


def test_the_sdk_reads_a_streamed_chat_to_the_done_part(client):
    parts = list(client.chat(model="llama3.2", messages=[{"role": "user", "content": "hi"}], stream=True))

    assert "".join(p.message.content or "" for p in parts) == "Hello from llama3.2! You said: hi"
    assert [p.done for p in parts].count(True) == 1 and parts[-1].done
    assert parts[-1].eval_count == 6


def test_the_sdk_reads_tool_calls_with_object_arguments(client):
    response = client.chat(model="llama3.2", messages=[{"role": "user", "content": "Rome"}], tools=[WEATHER_TOOL])

    call = response.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert call.function.arguments == {"city": "Rome"}


def test_the_sdk_reads_embeddings(client):
    response = client.embed(model="nomic-embed-text", input=["a", "b"])

    assert len(response.embeddings) == 2
    assert len(response.embeddings[0]) == 768
    assert response.prompt_eval_count == 2


def test_the_sdk_lists_models_with_details(client):
    listed = client.list()

    by_name = {m.model: m for m in listed.models}
    assert set(by_name) == {"llama3.2:latest", "nomic-embed-text:latest", "llava:latest"}
    assert by_name["llava:latest"].details.families == ["llama", "clip"]
    assert by_name["llama3.2:latest"].size == 2_019_393_189


def test_the_sdk_reads_show_with_model_info_and_capabilities(client):
    shown = client.show("llava")

    assert shown.modelinfo["llama.context_length"] == 32768
    assert shown.capabilities == ["completion", "vision"]
    assert "num_ctx" in shown.parameters
    assert shown.details.family == "llama"


def test_the_sdk_pulls_with_a_stream_to_success(client):
    parts = list(client.pull("all-minilm", stream=True))

    assert parts[0].status == "pulling manifest"
    layers = [p for p in parts if p.digest]
    assert all(p.status == f"pulling {p.digest[7:19]}" for p in layers)
    assert any(p.completed == p.total for p in layers)
    assert parts[-1].status == "success"
    assert "all-minilm:latest" in {m.model for m in client.list().models}


def test_the_sdk_pulls_without_a_stream(client):
    assert client.pull("qwen2.5:0.5b").status == "success"


def test_the_server_version_has_ollamas_shape(client):
    response = client._client.get("/api/version")

    assert response.json() == {"version": "0.12.6"}


def test_an_unknown_model_raises_response_error_with_status_404(client):
    with pytest.raises(ollama.ResponseError) as info:
        client.chat(model="mistral", messages=[{"role": "user", "content": "hi"}])

    assert info.value.status_code == 404
    assert info.value.error == 'model "mistral" not found, try pulling it first'


def test_an_injected_server_error_raises_response_error_with_its_status(client, fake):
    fake.fault(path="/api/tags", status=500)

    with pytest.raises(ollama.ResponseError) as info:
        client.list()

    assert info.value.status_code == 500
    assert info.value.error == "llama runner process has terminated: exit status 2"


def test_an_error_line_in_a_pull_stream_raises_response_error(client):
    with pytest.raises(ollama.ResponseError) as info:
        list(client.pull("no-such-model", stream=True))

    assert info.value.error == "pull model manifest: file does not exist"


async def test_the_async_sdk_chats_streams_embeds_lists_and_pulls(fake):
    sdk = ollama.AsyncClient(host=fake.url)

    answer = await sdk.chat(model="llama3.2", messages=[{"role": "user", "content": "yo"}])
    parts = [
        p async for p in await sdk.chat(model="llama3.2", messages=[{"role": "user", "content": "yo"}], stream=True)
    ]
    embedded = await sdk.embed(model="nomic-embed-text", input="yo")
    listed = await sdk.list()
    pulled = [p async for p in await sdk.pull("qwen2.5:0.5b", stream=True)]

    assert answer.message.content == "Hello from llama3.2! You said: yo"
    assert parts[-1].done and "".join(p.message.content or "" for p in parts) == answer.message.content
    assert len(embedded.embeddings) == 1
    assert len(listed.models) == 3
    assert pulled[-1].status == "success"


async def test_the_async_sdk_raises_response_error_with_status(fake):
    sdk = ollama.AsyncClient(host=fake.url)

    with pytest.raises(ollama.ResponseError) as info:
        await sdk.show("nope")

    assert info.value.status_code == 404


# -- the OpenAI-compatible endpoints, read with the official openai SDK ---------------------------


@pytest.fixture
def openai_client(fake):
    import openai

    with openai.OpenAI(base_url=f"{fake.url}/v1", api_key="ollama", max_retries=0) as sdk:
        yield sdk


def test_the_openai_sdk_reads_the_compatible_chat_stream_and_models(openai_client):
    answer = openai_client.chat.completions.create(model="llama3.2", messages=[{"role": "user", "content": "hi"}])
    chunks = list(
        openai_client.chat.completions.create(
            model="llama3.2",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    models = openai_client.models.list()

    assert answer.choices[0].message.content == "Hello from llama3.2! You said: hi"
    assert answer.usage.completion_tokens == 6
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == answer.choices[0].message.content
    assert chunks[-1].usage.total_tokens == answer.usage.total_tokens
    assert {m.id for m in models} == {"llama3.2:latest", "nomic-embed-text:latest", "llava:latest"}


def test_the_openai_sdk_reads_compatible_tool_calls(openai_client):
    answer = openai_client.chat.completions.create(
        model="llama3.2", messages=[{"role": "user", "content": "Rome"}], tools=[WEATHER_TOOL]
    )

    assert answer.choices[0].finish_reason == "tool_calls"
    assert answer.choices[0].message.tool_calls[0].function.arguments == '{"city": "Rome"}'


def test_compatible_errors_are_openai_shaped_for_the_sdk(openai_client, fake):
    import openai

    with pytest.raises(openai.NotFoundError) as missing:
        openai_client.chat.completions.create(model="mistral", messages=[{"role": "user", "content": "hi"}])
    fake.fault(path="/v1/chat/completions", status=503, times=1)
    with pytest.raises(openai.InternalServerError) as busy:
        openai_client.chat.completions.create(model="llama3.2", messages=[{"role": "user", "content": "hi"}])

    assert missing.value.body["type"] == "not_found_error"
    assert missing.value.body["message"] == 'model "mistral" not found, try pulling it first'
    assert busy.value.status_code == 503
    assert busy.value.body["type"] == "api_error"

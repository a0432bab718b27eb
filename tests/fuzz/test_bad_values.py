"""Generated bad input on every /v1 and /api write endpoint (issue 14 §4): deep nesting, lone
surrogates in keys and values, control characters, huge strings and numbers, wrong types for
the common parameters, bad names in paths. Zero 5xx; every refusal a JSON error; no header
carries a control character or a caller's text of any size.

The real ASGI application in-process, a simulated provider that never fails. Hypothesis draws
the cases (a fixed seed, FUZZ_EXAMPLES per endpoint, default 40); they are replayed against the
app in the test's own event loop. A longer, randomised run:

    FUZZ_EXAMPLES=500 FUZZ_RANDOM=1 .venv/bin/pytest tests/fuzz/test_bad_values.py -p no:cacheprovider
"""

from __future__ import annotations

import json
import os
import re
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.conftest import auth
from tests.gateway.test_bad_input import JSON_ENDPOINTS, PATH_ENDPOINTS, QUERY, TEMPLATES

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
RANDOM = bool(os.environ.get("FUZZ_RANDOM"))
ROUTES = {
    "chat": ("chat", "sim-chat"),
    "embed": ("embeddings", "sim-embed"),
    "image": ("image", "sim-image"),
    "speak": ("tts", "sim-tts"),
    "listen": ("stt", "sim-chat"),
}
CONFIG = {
    "providers": [
        {
            "name": "up",
            "kind": "simulated",
            "options": {"seed": 1},
            "capabilities": ["chat", "embeddings", "image", "tts", "translation"],
        }
    ],
    "routes": [
        {"name": name, "capability": capability, "targets": [{"provider": "up", "model": model}]}
        for name, (capability, model) in ROUTES.items()
        if capability != "stt"
    ],
}
# The parameters each endpoint reads; a generated value lands on one of these or on any key.
COMMON = [
    "model",
    "messages",
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "stop",
    "stream",
    "seed",
    "tools",
    "tool_choice",
    "response_format",
    "presence_penalty",
    "input",
    "dimensions",
    "encoding_format",
    "prompt",
    "size",
    "voice",
    "speed",
    "capability",
    "route",
    "options",
    "providers",
    "routes",
    "minutes",
    "name",
    "kind",
]
NEST = re.compile(r'"__nest_(\d+)__"')
CONTROL = re.compile(r"[\x00-\x1f\x7f]")

control = st.characters(max_codepoint=0x1F) | st.just("\x7f")
surrogate = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
bad_text = st.text(control | surrogate | st.characters(), min_size=1, max_size=24)
huge_text = st.integers(1_000, 400_000).map(lambda n: "m" * n)
deep = st.integers(65, 4000).map(lambda depth: f"__nest_{depth}__")  # written as raw brackets
leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**80), 2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
any_json = st.recursive(
    leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
bad_value = (
    bad_text
    | huge_text
    | deep
    | any_json
    | st.lists(bad_text, max_size=3)
    | st.dictionaries(bad_text, leaf, max_size=2)
)
mutation = st.tuples(st.sampled_from(COMMON) | bad_text, bad_value)


def draw_cases(strategy: Any) -> list[Any]:
    """Cases drawn by hypothesis, to replay in the test's event loop (the app and its runtime
    belong to that loop)."""
    cases: list[Any] = []

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=not RANDOM,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def collect(case: Any) -> None:
        cases.append(case)

    collect()
    return cases


def raw_body(path: str, mutations: list[tuple[str, Any]]) -> bytes:
    data = json.loads(TEMPLATES.get(path, '{"x": {}}').replace("{}", "1", 1))
    target = data["providers"][0] if path == "/api/config" else data
    for key, value in mutations:
        target[key] = value
    text = json.dumps(data)  # ensure_ascii: lone surrogates travel as \\ud800 escapes, as a client sends them
    return NEST.sub(lambda m: "[" * int(m.group(1)) + "]" * int(m.group(1)), text).encode()


def check(response: Any, what: str) -> None:
    assert response.status_code < 500, (what[:300], response.status_code, response.text[:500])
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/json"), (what[:300], response.text[:300])
        assert response.json()["error"]["message"], what[:300]
    for name, value in response.headers.items():
        assert not CONTROL.search(value) and len(value) <= 1000, (what[:300], name, value[:200])


@pytest.fixture
async def simulated(configure):
    await configure(CONFIG)


@pytest.mark.parametrize(("method", "path"), JSON_ENDPOINTS)
async def test_generated_bad_values_in_a_json_body_never_get_a_server_error(gateway, key, simulated, method, path):
    from analytics.recorder import flush_all

    url = path.replace("{name}", "up") + QUERY.get(path, "")
    for mutations in draw_cases(st.lists(mutation, min_size=1, max_size=3)):
        content = raw_body(path, mutations)
        response = await gateway.request(
            method, url, content=content, headers={**auth(key), "Content-Type": "application/json"}
        )
        check(response, repr(mutations))
        if path == "/api/config" and response.status_code < 300:
            await configure_again(gateway, key)
    await flush_all()  # and the request log takes every record of it


async def configure_again(gateway: Any, key: str) -> None:
    response = await gateway.put("/api/config", json=CONFIG, headers=auth(key))
    assert response.status_code == 200, response.text


async def test_generated_bad_multipart_fields_never_get_a_server_error(gateway, key, simulated):
    fields = st.dictionaries(
        st.sampled_from(["model", "temperature", "language", "prompt", "response_format"])
        | st.text(min_size=1, max_size=8),
        st.text(control | st.characters(exclude_categories=["Cs"]), max_size=40) | huge_text,
        min_size=1,
        max_size=3,
    )
    for data in draw_cases(fields):
        response = await gateway.post(
            "/v1/audio/transcriptions",
            headers=auth(key),
            data=data,
            files={"file": ("a.wav", b"RIFF....WAVE", "audio/wav")},
        )
        check(response, repr(data))


@pytest.mark.parametrize(("method", "path"), PATH_ENDPOINTS)
async def test_generated_bad_names_in_paths_never_get_a_server_error(gateway, key, simulated, method, path):
    long_name = st.integers(1_000, 30_000).map(lambda n: "m" * n)  # httpx refuses URLs past 64 KiB
    names = bad_text.map(lambda t: quote(t.encode("utf-8", "surrogatepass"), safe="")) | long_name
    content = TEMPLATES.get(path, "").replace("{}", "1", 1).encode() or None
    for name in draw_cases(names):
        url = path.replace("{name}", name).replace("{model}", name[:50] or "m")
        response = await gateway.request(
            method, url, content=content, headers={**auth(key), "Content-Type": "application/json"}
        )
        check(response, url)


@pytest.mark.parametrize("header", ["X-Gateway-Prefer", "X-Gateway-Deadline"])
async def test_generated_bad_steering_headers_never_get_a_server_error(gateway, key, simulated, header):
    values = st.text(
        st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), min_size=1, max_size=60
    )
    chat = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    for value in draw_cases(values):
        response = await gateway.post(
            "/v1/chat/completions", json=chat, headers={**auth(key), header: value.encode("latin-1")}
        )
        check(response, f"{header}: {value!r}")

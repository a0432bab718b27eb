"""Bad input on every /v1 and /api write endpoint: a 4xx with a JSON error, never a 5xx, no
provider called, and no caller text in a response header (issue 14 §4).

The endpoints come from the OpenAPI document, so a new write endpoint is covered at once: its
body gets the generic bad-input classes (deep nesting, lone surrogates, NaN), its path
parameters the name classes (control characters, huge names). The gateway's endpoints get
the classes of their own on top: names with control characters, huge names, wrong types for
the common OpenAI parameters, huge values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import auth
from tests.fakes.anthropic import API_KEY as ANTHROPIC_KEY
from tests.fakes.base import FakeServer
from tests.fakes.openai import FakeOpenAI

from .conftest import provider

pytestmark = pytest.mark.django_db(transaction=True)

ROUTES = {
    "chat": ("chat", "gpt-4o-mini"),
    "embed": ("embeddings", "text-embedding-3-small"),
    "image": ("image", "dall-e-2"),
    "speak": ("tts", "tts-1"),
    "listen": ("stt", "whisper-1"),
}
CAPABILITY_PATHS = (
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/images/generations",
    "/v1/audio/speech",
    "/v1/audio/transcriptions",
)


@pytest.fixture
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(models=[*dict(ROUTES.values()).values(), "whisper-1"]) as server:
        yield server


@pytest.fixture
async def routes(configure, upstream):
    await configure(
        {
            "providers": [
                provider("up", upstream.url + "/v1", capabilities=["chat", "embeddings", "image", "tts", "stt"])
            ],
            "routes": [
                {"name": name, "capability": capability, "targets": [{"provider": "up", "model": model}]}
                for name, (capability, model) in ROUTES.items()
            ],
        }
    )


# -- the endpoints and a valid body for each, with a place to put a bad value ------------------------


def write_endpoints() -> list[tuple[str, str, str | None]]:
    """(method, path, request media type or None) of every write operation in the document."""
    import django
    from django.urls import get_resolver

    django.setup()
    get_resolver().url_patterns  # noqa: B018  (imports every view, so the registry is full)
    from providers.openapi import build_schema

    found = []
    for path, operations in build_schema()["paths"].items():
        if not path.startswith(("/v1/", "/api/")):
            continue
        for method, operation in operations.items():
            if method in ("post", "put", "patch", "delete"):
                content = operation.get("requestBody", {}).get("content", {})
                found.append((method.upper(), path, next(iter(content), None)))
    return sorted(found)


ENDPOINTS = write_endpoints()
JSON_ENDPOINTS = [(m, p) for m, p, media in ENDPOINTS if media == "application/json"]
PATH_ENDPOINTS = [(m, p) for m, p, _ in ENDPOINTS if "{" in p]
NAMED = {"/v1/chat/completions", "/v1/embeddings", "/v1/images/generations", "/v1/audio/speech", "/api/execute"}

# A raw JSON body with `{}` where a bad value goes; each is accepted as it is (INJECT = 1).
TEMPLATES = {
    "/v1/chat/completions": '{"model": "chat", "messages": [{"role": "user", "content": "hi"}], "metadata": {"x": {}}}',
    "/v1/embeddings": '{"model": "embed", "input": "hi", "extra": {}}',
    "/v1/images/generations": '{"model": "image", "prompt": "a cat", "extra": {}}',
    "/v1/audio/speech": '{"model": "speak", "input": "hi", "voice": "alloy", "extra": {}}',
    "/api/execute": '{"capability": "chat", "route": "chat", "input": "hi", "options": {"extra": {}}}',
    "/api/config": '{"providers": [{"name": "other", "kind": "openai", "base_url": "http://127.0.0.1:9/v1", '
    '"options": {"x": {}}}]}',
    "/api/breakers/{name}/force-open": '{"minutes": 5, "x": {}}',
    "/v1/messages": '{"model": "chat", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}], '
    '"metadata": {"x": {}}}',
    "/v1/messages/count_tokens": '{"model": "chat", "messages": [{"role": "user", "content": "hi"}], '
    '"metadata": {"x": {}}}',
    "/api/keys/{prefix}": '{"rpm": {}}',
    "/v1/responses": '{"model": "chat", "input": "hi", "extra": {}}',
    "/api/incidents/{id}/mute": '{"minutes": 5, "x": {}}',
}
QUERY = {"/api/config": "?prune=false"}


def url(method: str, path: str, name: str = "up", prefix: str = "gw_x") -> str:
    return path.replace("{name}", name).replace("{model}", "m").replace("{prefix}", prefix).replace(
        "{id}", "1"
    ) + QUERY.get(path, "")


def body(path: str, injected: str) -> bytes:
    return TEMPLATES.get(path, '{"x": {}}').replace("{}", injected, 1).encode()


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# The generic classes: (name, raw JSON put in the template's place, or a whole raw body).
GENERIC = {
    "deep nesting (5,000 levels)": nested(5000),
    "nesting past the limit (100 levels)": nested(100),
    "deep objects": '{"a":' * 3000 + "1" + "}" * 3000,
    "a lone surrogate in a value": '"caf\\ud800e"',
    "a lone surrogate in a key": '{"\\udfff": 1}',
    "a lone surrogate pair reversed": '"\\ude00\\ud83d"',
    "NaN": "NaN",
    "Infinity": "-Infinity",
    "a number past the float range": "1e999",
}

CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def assert_refused(response: Any, upstream: FakeServer | None = None) -> dict[str, Any]:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json"), response.text[:500]
    error = response.json()["error"]
    assert error["type"] and error["message"]
    for name, value in response.headers.items():
        assert not CONTROL.search(value), (name, value[:200])
        assert len(value) <= 1000, (name, len(value))  # no caller text of any size reflected
    if upstream is not None:
        assert not [r for r in upstream.requests if r.path in CAPABILITY_PATHS], "a provider was called"
    return error


# The configuration is YAML (JSON is YAML): there `NaN`, `-Infinity` and `1e999` are strings.
YAML_STRINGS = {"NaN", "Infinity", "a number past the float range"}


@pytest.mark.parametrize(("method", "path"), JSON_ENDPOINTS)
async def test_a_malformed_value_anywhere_in_a_json_body_is_a_json_400(gateway, key, routes, upstream, method, path):
    from providers.models import Provider

    for case, raw in GENERIC.items():
        if path == "/api/config" and case in YAML_STRINGS:
            continue  # a string in YAML; YAML's own NaN and infinity are tested below
        response = await gateway.request(
            method,
            url(method, path, prefix=key[:11]),
            content=body(path, raw),
            headers={**auth(key), "Content-Type": "application/json"},
        )
        error = assert_refused(response, upstream)
        assert response.status_code == 400, case
        assert error["code"] in ("invalid_json", "invalid_config"), (case, error)
    assert not await Provider.objects.filter(name="other").aexists()
    # the same body with an ordinary value is taken: what was refused was the bad value
    target = url(method, path, prefix=key[:11])
    if "{id}" in path:  # an incident to act on
        from django.utils import timezone

        from health.models import Incident

        incident = await Incident.objects.acreate(provider_name="up", opened_at=timezone.now())
        target = target.replace("/1/", f"/{incident.pk}/")
    response = await gateway.request(
        method, target, content=body(path, "1"), headers={**auth(key), "Content-Type": "application/json"}
    )
    assert response.status_code < 300, response.text[:500]


@pytest.mark.parametrize("value", [".nan", "-.inf", ".Inf"])
async def test_a_configuration_with_a_yaml_nan_or_infinity_is_refused(gateway, key, routes, value):
    from providers.models import Provider

    text = f"providers: [{{name: other, kind: openai, base_url: 'http://127.0.0.1:9/v1', options: {{x: {value}}}}}]"
    response = await gateway.put("/api/config?prune=false", content=text.encode(), headers=auth(key))
    assert_refused(response)
    assert "providers[0].options.x" in response.json()["error"]["message"]
    assert not await Provider.objects.filter(name="other").aexists()


BAD_NAMES = {
    "a NUL": "chat\x00",
    "CR LF and a header": "up/gpt-4o-mini\r\nX-Injected: yes",
    "a lone LF": "chat\n",
    "DEL": "chat\x7f",
    "a right-to-left override": "up/\u202egpt",
    "a zero-width space": "ch\u200bat",
    "a 1 MB name": "up/" + "m" * 1_000_000,
    "an empty name": "",
    "a number": 5,
    "a list": ["chat"],
}


@pytest.mark.parametrize("path", sorted(NAMED))
async def test_a_name_that_cannot_be_a_name_is_refused_before_routing(gateway, key, routes, upstream, path):
    field = "route" if path == "/api/execute" else "model"
    for case, name in BAD_NAMES.items():
        data = {**json.loads(body(path, "1")), field: name}
        response = await gateway.post(
            path, content=json.dumps(data).encode(), headers={**auth(key), "Content-Type": "application/json"}
        )
        error = assert_refused(response, upstream)
        assert response.status_code == 400 and error["param"] == field, (case, error)
        assert "x-injected" not in response.headers and "x-gateway-route" not in response.headers


async def test_a_multipart_model_name_that_cannot_be_a_name_is_refused(gateway, key, routes, upstream):
    for case, name in BAD_NAMES.items():
        if not isinstance(name, str) or not name:
            continue
        response = await gateway.post(
            "/v1/audio/transcriptions",
            headers=auth(key),
            data={"model": name},
            files={"file": ("a.wav", b"RIFF", "audio/wav")},
        )
        assert assert_refused(response, upstream)["param"] == "model", case


WRONG = {
    "/v1/chat/completions": [
        ("temperature", "hot"),
        ("temperature", 5),
        ("temperature", True),
        ("top_p", 2),
        ("top_p", "0.5"),
        ("presence_penalty", "x"),
        ("frequency_penalty", -3),
        ("max_tokens", "10"),
        ("max_tokens", 0),
        ("max_tokens", 1.5),
        ("n", 0),
        ("n", "2"),
        ("stop", 5),
        ("stop", ["a", 1]),
        ("stream", "yes"),
        ("stream", 1),
        ("seed", "1"),
        ("tools", "x"),
        ("tools", [1]),
        ("tool_choice", 5),
        ("response_format", "json"),
        ("messages", [{"role": 5, "content": "x"}]),
        ("messages", [{"role": "user", "content": 5}]),
        ("messages", [{"content": "x"}]),
        ("messages", ["hello"]),
        ("messages", "hello"),
        ("messages", []),
    ],
    "/v1/embeddings": [
        ("input", 5),
        ("input", [["a"]]),
        ("input", [1, "a"]),
        ("input", ["x"] * 3000),
        ("input", None),
        ("dimensions", "8"),
        ("dimensions", 0),
        ("dimensions", 2_000_000),
        ("dimensions", 1e9),
        ("encoding_format", "hex"),
    ],
    "/v1/images/generations": [("n", "2"), ("n", 0), ("n", 1000), ("size", 5), ("prompt", 5), ("prompt", "")],
    "/v1/audio/speech": [("speed", "fast"), ("speed", 100), ("voice", 5), ("input", 5), ("input", "")],
    "/api/execute": [
        ("options", {"temperature": "hot"}),
        ("options", {"stop": 5}),
        ("options", {"deadline_s": "x"}),
        ("options", {"deadline_s": True}),
        ("options", {"deadline_s": 0}),
        ("options", {"prefer": "a\r\nb"}),
        ("options", []),
        ("capability", "nope"),
        ("capability", 5),
        ("input", 5),
        ("input", [{"role": "user", "content": 5}]),
        ("input", {"messages": [{"role": "user", "content": {}}]}),
    ],
}


@pytest.mark.parametrize("path", list(WRONG))
async def test_a_common_parameter_of_the_wrong_type_or_range_is_a_400_naming_it(gateway, key, routes, upstream, path):
    for field, value in WRONG[path]:
        data = {**json.loads(body(path, "1")), field: value}
        response = await gateway.post(path, json=data, headers=auth(key))
        error = assert_refused(response, upstream)
        assert response.status_code == 400 and error["type"] == "invalid_request_error", (field, value)
        assert error.get("param", "").split(".")[0].split("[")[0] in (field, "input", "options"), (field, error)


@pytest.mark.parametrize(
    ("capability", "options", "param"),
    [
        ("embeddings", {"dimensions": 2_000_000}, "options.dimensions"),
        ("chat", {"temperature": "hot"}, "options.temperature"),
        ("image", {"n": "4"}, "options.n"),
        ("tts", {"speed": "fast"}, "options.speed"),
        ("translation", {"target_lang": 5}, "options.target_lang"),
    ],
)
async def test_execute_checks_what_the_v1_endpoint_would_and_names_the_option(
    gateway, key, routes, upstream, capability, options, param
):
    response = await gateway.post(
        "/api/execute",
        headers=auth(key),
        json={"capability": capability, "route": "chat", "input": "hello", "options": options},
    )
    error = assert_refused(response, upstream)
    assert error["param"] == param, error


@pytest.mark.parametrize(("field", "value"), [("temperature", "hot"), ("temperature", "7"), ("temperature", "nan")])
async def test_a_multipart_number_that_is_not_one_is_refused(gateway, key, routes, upstream, field, value):
    response = await gateway.post(
        "/v1/audio/transcriptions",
        headers=auth(key),
        data={"model": "listen", field: value},
        files={"file": ("a.wav", b"RIFF", "audio/wav")},
    )
    assert assert_refused(response, upstream)["param"] == field


@pytest.mark.parametrize(
    "extra",
    [
        {"data": {f"field{i}": "x" for i in range(1500)}},
        {"files": {f"file{i}": (f"a{i}.wav", b"RIFF", "audio/wav") for i in range(150)}},
    ],
    ids=["too many fields", "too many files"],
)
async def test_a_multipart_upload_past_djangos_limits_is_a_json_400(gateway, key, routes, upstream, extra):
    files = {"file": ("a.wav", b"RIFF", "audio/wav"), **extra.get("files", {})}
    response = await gateway.post(
        "/v1/audio/transcriptions", headers=auth(key), data={"model": "listen", **extra.get("data", {})}, files=files
    )
    assert_refused(response, upstream)
    assert response.status_code == 400


@pytest.mark.parametrize("path", ["/api/analytics", "/api/config"])
async def test_a_query_string_past_djangos_limits_is_a_json_400(gateway, key, routes, path):
    response = await gateway.get(path + "?" + "&".join(f"p{i}=1" for i in range(1500)), headers=auth(key))
    assert_refused(response)


PATH_NAMES = {
    "a NUL": "up%00",
    "CR LF": "up%0D%0AX-Injected:%20yes",
    "an encoded lone surrogate": "up%ED%A0%80",
    "a 10,000-character name": "u" * 10_000,
    "a dot-dot": "..%2F..%2Fetc",
}


@pytest.mark.parametrize(("method", "path"), PATH_ENDPOINTS)
async def test_a_bad_name_in_the_path_is_a_json_4xx(gateway, key, routes, upstream, method, path):
    content = body(path, "1") if (method, path) in JSON_ENDPOINTS else None
    for name in PATH_NAMES.values():
        response = await gateway.request(
            method, url(method, path, name), content=content, headers={**auth(key), "Content-Type": "application/json"}
        )
        assert_refused(response, upstream)


# -- the classes from the issue, one by one ---------------------------------------------------------


async def test_a_malformed_parameter_for_an_anthropic_target_never_opens_its_breaker(
    gateway, configure, key, upstream_anthropic
):
    await configure(
        {
            "providers": [
                provider(
                    "claude",
                    upstream_anthropic.url,
                    kind="anthropic",
                    key=ANTHROPIC_KEY,
                    breaker={"consecutive_failures": 2, "min_calls": 2},
                )
            ],
            "routes": [{"name": "claude", "targets": [{"provider": "claude", "model": "claude-sonnet-4-5"}]}],
        }
    )
    chat = {"model": "claude", "messages": [{"role": "user", "content": "hi"}]}
    for bad in ({"temperature": "hot"}, {"stop": 5}, {"max_tokens": "ten"}, {"top_p": [1]}, {"stop": [None]}):
        response = await gateway.post("/v1/chat/completions", headers=auth(key), json={**chat, **bad})
        assert response.status_code == 400, response.text
    assert upstream_anthropic.requests_to("/v1/messages") == []
    response = await gateway.post("/v1/chat/completions", headers=auth(key), json={**chat, "temperature": 0.2})
    assert response.status_code == 200, response.text
    breakers = (await gateway.get("/api/breakers", headers=auth(key))).json()["breakers"]
    assert breakers[0]["state"] == "closed" and breakers[0]["failures"] == 0


async def test_known_fields_are_checked_and_unknown_ones_pass_through_untouched(gateway, key, routes, upstream):
    extra = {"metadata": {"nested": [1, {"deep": True}]}, "vendor_knob": "on", "logit_bias": {"50256": -100}}
    refused = await gateway.post(
        "/v1/chat/completions",
        headers=auth(key),
        json={"model": "chat", "messages": [{"role": "user", "content": "hi"}], "temperature": "0", **extra},
    )
    assert refused.status_code == 400 and upstream.requests_to("/v1/chat/completions") == []
    response = await gateway.post(
        "/v1/chat/completions",
        headers=auth(key),
        json={
            "model": "chat",
            "messages": [{"role": "user", "content": "hi", "name": "ann"}],
            "temperature": 0,
            **extra,
        },
    )
    assert response.status_code == 200, response.text
    sent = upstream.requests_to("/v1/chat/completions")[0].json()
    assert {k: sent[k] for k in extra} == extra and sent["messages"][0]["name"] == "ann"


async def test_the_error_is_in_openai_shape_and_names_the_field(gateway, key, routes):
    response = await gateway.post(
        "/v1/chat/completions",
        headers=auth(key),
        json={"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stop": ["ok", 5]},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "stop[1]"
    assert error["code"] == "invalid_type" and "`stop[1]`" in error["message"]


async def test_a_lone_surrogate_is_refused_before_it_reaches_the_request_log(gateway, key, routes, upstream):
    from analytics.recorder import flush_all

    raw = b'{"model": "up/gpt-4o-mini\\ud800", "messages": [{"role": "user", "content": "hi"}]}'
    response = await gateway.post(
        "/v1/chat/completions", content=raw, headers={**auth(key), "Content-Type": "application/json"}
    )
    error = assert_refused(response, upstream)
    assert error["param"] == "model" and "surrogate" in error["message"]
    await flush_all()


async def test_huge_dimensions_are_refused_at_the_edge(gateway, configure, key):
    await configure(
        {
            "providers": [{"name": "sim", "kind": "simulated"}],
            "routes": [
                {"name": "embed", "capability": "embeddings", "targets": [{"provider": "sim", "model": "sim-embed"}]}
            ],
        }
    )
    response = await gateway.post(
        "/v1/embeddings", headers=auth(key), json={"model": "embed", "input": "hi", "dimensions": 2_000_000}
    )
    assert assert_refused(response)["param"] == "dimensions"
    ok = await gateway.post(
        "/v1/embeddings", headers=auth(key), json={"model": "embed", "input": "hi", "dimensions": 64}
    )
    assert ok.status_code == 200 and len(ok.json()["data"][0]["embedding"]) == 64


async def test_a_route_header_never_carries_raw_non_ascii_text(gateway, key, routes, upstream):
    response = await gateway.post(
        "/v1/chat/completions",
        headers=auth(key),
        json={"model": "up/modèle-😀", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 404  # the caller named the target: the provider's own 404
    assert response.headers["x-gateway-route"] == "up/mod%C3%A8le-%F0%9F%98%80"


# -- 405, static files ----------------------------------------------------------------------------------


METHOD_CASES = [
    ("GET", "/v1/chat/completions"),
    ("PUT", "/v1/embeddings"),
    ("DELETE", "/api/execute"),
    ("POST", "/v1/models"),
    ("GET", "/api/breakers/up/reset"),
    ("POST", "/api/config"),
    ("GET", "/api/cache"),
    ("PATCH", "/api/breakers/up/force-open"),
]


@pytest.mark.parametrize(("method", "path"), METHOD_CASES)
async def test_a_method_an_api_endpoint_does_not_take_is_a_json_405(gateway, key, routes, method, path):
    response = await gateway.request(method, path, headers=auth(key))
    assert response.status_code == 405, response.text[:300]
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["type"] == "method_not_allowed"
    assert response.headers["allow"] and response.headers["allow"] in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "path",
    [
        "/static/..%2f..%2fpyproject.toml",
        "/static/..%2F..%2F..%2Fetc%2Fpasswd",
        "/static/%2e%2e/%2e%2e/manage.py",
        "/static/css/..%2f..%2f..%2fREADME.md",
    ],
)
async def test_a_static_path_that_climbs_out_is_a_404(gateway, path):
    response = await gateway.get(path)
    assert response.status_code == 404
    assert b"django" not in response.content.lower() and b"[tool" not in response.content


# -- helpers exposed to the lead: the YAML depth check ------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "providers: " + "[" * 3000 + "]" * 3000,
        "a: " + "{b: " * 200 + "1" + "}" * 200,
        "".join("  " * i + "k:\n" for i in range(100)) + "  " * 100 + "v\n",
    ],
)
def test_a_yaml_document_nested_too_deep_is_refused_before_it_is_loaded(text):
    from providers.bounds import BoundsError, check_yaml_text

    with pytest.raises(BoundsError, match="nests deeper than"):
        check_yaml_text(text)


def test_an_ordinary_configuration_passes_the_yaml_depth_check():
    from providers.bounds import check_yaml_text
    from providers.demo import DEMO_CONFIG

    check_yaml_text(DEMO_CONFIG)

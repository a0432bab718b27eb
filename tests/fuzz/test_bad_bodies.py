"""Malformed and oversized bodies on every endpoint that takes one: 400 or 413, with a JSON error.

The endpoints come from the OpenAPI document (every API view is in it: a test elsewhere
checks that every API URL is documented), so a new endpoint with a body is covered at once.
"""

from __future__ import annotations

import pytest

from tests.conftest import auth

pytestmark = pytest.mark.django_db(transaction=True)


def body_endpoints() -> list[tuple[str, str, str]]:
    import django
    from django.urls import get_resolver

    django.setup()
    get_resolver().url_patterns  # noqa: B018  (imports every view, so the registry is full)
    from providers.openapi import build_schema

    found = []
    for path, operations in build_schema()["paths"].items():
        for method, operation in operations.items():
            if "requestBody" in operation:
                [media_type] = operation["requestBody"]["content"]
                found.append(
                    (
                        method.upper(),
                        path.replace("{name}", "sim").replace("{model}", "m").replace("{id}", "1"),
                        media_type,
                    )
                )
    return sorted(found)


ENDPOINTS = body_endpoints()


def test_the_document_names_the_endpoints_with_bodies():
    assert ("POST", "/v1/chat/completions", "application/json") in ENDPOINTS
    assert ("PUT", "/api/config", "application/json") in ENDPOINTS
    assert len(ENDPOINTS) >= 8


@pytest.fixture
async def simulated(configure):
    await configure(
        {
            "providers": [{"name": "sim", "kind": "simulated", "capabilities": ["chat"]}],
            "routes": [{"name": "chat", "capability": "chat", "targets": [{"provider": "sim", "model": "sim-chat"}]}],
        }
    )


def is_json_error(response) -> bool:
    return response.headers["content-type"].startswith("application/json") and "error" in response.json()


GARBAGE = [b"{not json", b"\xff\xfe\x00", b"[1, 2", b"null", b'"text"', b"[]"]


@pytest.mark.parametrize(("method", "path", "media_type"), ENDPOINTS)
async def test_a_malformed_body_is_a_400_with_a_json_error(gateway, key, simulated, method, path, media_type):
    for garbage in GARBAGE:
        response = await gateway.request(
            method, path, content=garbage, headers={**auth(key), "Content-Type": media_type}
        )
        assert response.status_code == 400, (garbage, response.text[:300])
        assert is_json_error(response), (garbage, response.text[:300])


@pytest.mark.parametrize(("method", "path", "media_type"), ENDPOINTS)
async def test_an_oversized_body_is_a_413_with_a_json_error(
    gateway, key, simulated, settings, method, path, media_type
):
    settings.GATEWAY_MAX_BODY_BYTES = settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    body = b'{"model": "chat", "messages": [{"role": "user", "content": "' + b"x" * 20_000 + b'"}]}'
    response = await gateway.request(method, path, content=body, headers={**auth(key), "Content-Type": media_type})
    assert response.status_code == 413, response.text[:300]
    assert is_json_error(response), response.text[:300]


@pytest.mark.parametrize("body", [b"", b"null", b"  \n", b"# only a comment\n", b"{}"])
async def test_an_empty_config_document_deletes_nothing(gateway, key, simulated, body):
    from providers.models import Provider, Route

    response = await gateway.put("/api/config", content=body, headers={**auth(key), "Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_config"
    assert await Provider.objects.filter(name="sim").aexists() and await Route.objects.filter(name="chat").aexists()


async def test_an_explicitly_empty_config_document_does_delete_everything(gateway, key, simulated):
    from providers.models import Provider

    response = await gateway.put(
        "/api/config", json={"providers": [], "routes": [], "alert_channels": []}, headers=auth(key)
    )
    assert response.status_code == 200 and response.json()["deleted"] == ["route chat", "provider sim"]
    assert not await Provider.objects.aexists()


async def test_an_empty_document_without_prune_changes_nothing_and_is_fine(gateway, key, simulated):
    response = await gateway.put("/api/config?prune=false", content=b"{}", headers=auth(key))
    assert response.status_code == 200 and response.json()["deleted"] == []


@pytest.mark.parametrize("prune", ["fasle", "-1.7976931348623157e+308", ""])
async def test_a_prune_flag_that_is_neither_true_nor_false_is_refused_and_deletes_nothing(
    gateway, key, simulated, prune
):
    from providers.models import Provider

    response = await gateway.put(
        f"/api/config?prune={prune}", json={"providers": [], "routes": [], "alert_channels": []}, headers=auth(key)
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_prune"
    assert await Provider.objects.filter(name="sim").aexists()


async def test_a_refresh_flag_that_is_neither_true_nor_false_is_refused(gateway, key, simulated):
    response = await gateway.get("/api/providers/sim/models?refresh=maybe", headers=auth(key))
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_refresh"


@pytest.mark.parametrize("body", [b"null", b'"ten"', b"[5]", b"5"])
async def test_force_open_with_a_body_that_is_not_an_object_is_refused_and_opens_nothing(gateway, key, simulated, body):
    response = await gateway.post(
        "/api/breakers/sim/force-open", content=body, headers={**auth(key), "Content-Type": "application/json"}
    )
    assert response.status_code == 400 and "minutes" in response.json()["error"]["message"]
    breaker = (await gateway.get("/api/breakers", headers=auth(key))).json()["breakers"][0]
    assert breaker["state"] == "closed"


@pytest.mark.parametrize(
    "content_type", ["multipart/form-data", "multipart/form-data; boundary=x", "multipart/form-data; boundary="]
)
async def test_a_malformed_multipart_upload_is_a_400_not_a_500(gateway, key, simulated, content_type):
    response = await gateway.post(
        "/v1/audio/transcriptions",
        content=b"--y\r\nnot a part at all",
        headers={**auth(key), "Content-Type": content_type},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("path", ["/api/config", "/api/breakers/sim/force-open"])
async def test_an_oversized_body_to_the_operations_api_is_a_413_with_a_json_error(
    gateway, key, simulated, settings, path
):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = b'{"providers": [], "minutes": 5, "pad": "' + b"x" * 2000 + b'"}'
    method = "PUT" if path == "/api/config" else "POST"
    response = await gateway.request(
        method, path, content=body, headers={**auth(key), "Content-Type": "application/json"}
    )
    assert response.status_code == 413, response.text[:200]
    assert response.json()["error"]["code"] == "request_too_large"
    breaker = (await gateway.get("/api/breakers", headers=auth(key))).json()["breakers"][0]
    assert breaker["name"] == "sim" and breaker["state"] == "closed"


@pytest.mark.parametrize("fmt", ["xml", "YAML ", ""])
async def test_an_unknown_config_format_is_a_400_naming_the_formats(gateway, key, simulated, fmt):
    response = await gateway.get("/api/config", params={"format": fmt}, headers=auth(key))
    assert response.status_code == 400 and "json or yaml" in response.json()["error"]["message"]


async def test_the_config_comes_as_json_by_default_and_as_yaml_on_request(gateway, key, simulated):
    assert (await gateway.get("/api/config", headers=auth(key))).json()["providers"][0]["name"] == "sim"
    yaml = await gateway.get("/api/config?format=yaml", headers=auth(key))
    assert yaml.headers["content-type"] == "application/yaml" and "name: sim" in yaml.text

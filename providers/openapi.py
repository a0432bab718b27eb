"""The OpenAPI 3.1 document of the gateway and operations APIs, generated from the code.

Every API view is registered with `document(...)`, which names its method, path, scope and
the pydantic models of its request and answers (providers/schemas.py). `build_schema()`
assembles the document from that registry and from the models' own JSON Schema, and a test
checks that every API URL pattern is documented, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

JSON = "application/json"
SSE = "text/event-stream"
# One server-sent event, as OpenAPI tools read a text/event-stream schema: per event.
SSE_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "event": {"type": "string"},
        "data": {"type": "string"},
        "id": {"type": "string"},
        "retry": {"type": "integer", "minimum": 0},
    },
}


@dataclass(frozen=True)
class Response:
    description: str
    model: type[BaseModel] | None = None
    content_type: str = JSON
    headers: tuple[str, ...] = ()
    # Other media types the same answer can come in (YAML on request, an SSE stream, ...): a
    # structured one (JSON, YAML) has the model's schema, an SSE stream one per event, any
    # other is a string.
    also: tuple[str, ...] = ()


@dataclass(frozen=True)
class Param:
    name: str
    where: str = "query"  # query | path | header
    description: str = ""
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # OpenAPI form: /api/providers/{name}
    summary: str
    scope: str | None
    tags: tuple[str, ...]
    request: type[BaseModel] | None
    request_content_type: str
    responses: dict[int, Response]
    params: tuple[Param, ...]
    operation_id: str


REGISTRY: list[Endpoint] = []

ERRORS = {
    400: "The request is malformed (bad JSON, a missing or wrong field).",
    401: "No API key, or an unknown, expired or revoked one.",
    403: "The API key lacks the scope this endpoint needs.",
    404: "No such route, provider or model.",
    413: "The request body is too large.",
    429: "The API key is over its request limit.",
}


def document(
    method: str,
    path: str,
    summary: str,
    *,
    scope: str | None,
    tags: Iterable[str] = (),
    request: type[BaseModel] | None = None,
    request_content_type: str = JSON,
    responses: dict[int, Response] | None = None,
    errors: Iterable[int] = (400, 401, 403),
    params: Iterable[Param] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a view in the OpenAPI document (the view itself is returned unchanged)."""

    def register(view: Callable[..., Any]) -> Callable[..., Any]:
        from .schemas import ErrorBody

        answers = dict(responses or {200: Response("OK")})
        for status in errors:
            answers.setdefault(status, Response(ERRORS.get(status, "Error"), ErrorBody))
        path_params = tuple(
            Param(part[1:-1], "path", required=True) for part in path.split("/") if part.startswith("{")
        )
        REGISTRY.append(
            Endpoint(
                method=method.lower(),
                path=path,
                summary=summary,
                scope=scope,
                tags=tuple(tags),
                request=request,
                request_content_type=request_content_type,
                responses=answers,
                params=path_params + tuple(params),
                operation_id=f"{method.lower()}_{view.__name__}",
            )
        )
        return view

    return register


def _schema_of(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in [*schema.pop("$defs", {}).items(), (model.__name__, schema)]:
        # Components are named after their classes: two different ones of one name would
        # silently describe one endpoint with the other's schema.
        if components.setdefault(name, definition) != definition:
            raise ValueError(f"two different schemas are both named {name!r}: rename one")
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def build_schema(server_url: str = "/") -> dict[str, Any]:
    components: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}
    for ep in REGISTRY:
        operation: dict[str, Any] = {
            "summary": ep.summary,
            "operationId": ep.operation_id,
            "tags": list(ep.tags) or ["gateway"],
        }
        operation["security"] = [{"bearer": []}] if ep.scope else []
        if ep.scope:
            operation["description"] = f"Needs an API key with the `{ep.scope}` scope."
        if ep.params:
            operation["parameters"] = [
                {
                    "name": p.name,
                    "in": p.where,
                    "required": p.required or p.where == "path",
                    "description": p.description,
                    "schema": p.schema,
                }
                for p in ep.params
            ]
        if ep.request is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {ep.request_content_type: {"schema": _schema_of(ep.request, components)}},
            }
        answers: dict[str, Any] = {}
        for status, response in sorted(ep.responses.items()):
            answer: dict[str, Any] = {"description": response.description}
            for media_type in (response.content_type, *response.also):
                structured = media_type == JSON or media_type.endswith(("yaml", "+json"))
                if response.model is not None and structured:
                    schema = _schema_of(response.model, components)
                elif media_type == SSE:
                    schema = SSE_EVENT
                elif media_type != JSON:
                    schema = {"type": "string"}
                else:
                    continue
                answer.setdefault("content", {})[media_type] = {"schema": schema}
            if response.headers:
                answer["headers"] = {h: {"schema": {"type": "string"}} for h in response.headers}
            answers[str(status)] = answer
        operation["responses"] = answers
        paths.setdefault(ep.path, {})[ep.method] = operation
    return {
        "openapi": "3.1.0",  # the schemas are JSON Schema 2020-12 (pydantic)
        "info": {
            "title": "AI gateway",
            "version": "1.0",
            "description": "OpenAI-compatible gateway endpoints, the generic execute endpoint and the "
            "operations API. Authenticate with `Authorization: Bearer <key>`.",
        },
        "servers": [{"url": server_url}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }

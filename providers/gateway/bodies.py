"""Callers' request bodies, read and checked once, at the edge, before any target is tried.

Every JSON endpoint under /v1 and /api reads its body with `parse_json` (bounded: see
providers/bounds.py), checks the names it will route on with `check_name`, and the gateway's
endpoints validate the common OpenAI parameters with the models of providers/schemas.py
(`validate`). A refusal is a 400 in OpenAI's error shape naming the field in `param`; it is
the caller's error, so no provider is called and no breaker hears of it. Unknown fields pass
through untouched: providers take extras of their own, and the body is forwarded as it came.
"""

from __future__ import annotations

import re
from typing import Any

from django.http import HttpRequest
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from providers.bounds import BoundsError, load_json, name_problem

from .errors import RequestError


def parse_json(request: HttpRequest, *, what: str = "The body") -> dict[str, Any]:
    """The body as a JSON object, or a 400 saying what is wrong with it."""
    try:
        body = load_json(request.body or b"null")
    except BoundsError as exc:
        raise RequestError(
            400, f"{what} is refused: {_located(exc)}", code="invalid_json", param=exc.path or None
        ) from None
    except ValueError as exc:
        raise RequestError(400, f"{what} is not valid JSON: {exc}", code="invalid_json") from None
    if not isinstance(body, dict):
        raise RequestError(400, f"{what} must be a JSON object.", code="invalid_json")
    return body


def _located(exc: BoundsError) -> str:
    return f"`{exc.path}` {exc}" if exc.path else str(exc)


def check_name(value: Any, param: str) -> str:
    """A route, model or provider name the caller sent, refused (400) before it is resolved,
    recorded or put in a header when it cannot be a name."""
    problem = name_problem(value)
    if problem:
        raise RequestError(400, f"`{param}` {problem}.", code="invalid_name", param=param)
    return value


def validate(model: type[BaseModel], body: dict[str, Any], *, origin: dict[str, str] | None = None) -> None:
    """Check `body` against `model` (strict types, bounds); a 400 naming the first bad field.
    `origin` renames a top-level field to where the caller wrote it (execute builds the body
    from its `input` and `options`)."""
    try:
        model.model_validate(body)
    except ValidationError as exc:
        param, message, kind = _first_error(exc, body)
        top = re.split(r"[.\[]", param, maxsplit=1)[0]
        if origin and top in origin:
            param = origin[top] + param[len(top) :]
        raise RequestError(400, f"Invalid `{param}`: {message}.", code=kind, param=param) from None


def _data_path(loc: tuple[Any, ...], data: Any, missing: bool) -> tuple[str, int]:
    """The field a pydantic error location points at, in the caller's own terms: union member
    tags (`str`, `list[str]`) are not fields and are skipped. Returns (path, depth)."""
    path = ""
    depth = 0
    for i, part in enumerate(loc):
        if (
            isinstance(data, dict) and isinstance(part, str) and (part in data or (missing and i == len(loc) - 1))
        ):  # a required field left out
            path = f"{path}.{part}" if path else part
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            path = f"{path}[{part}]"
            data = data[part]
        else:
            continue
        depth += 1
    return path, depth


def _first_error(exc: ValidationError, body: dict[str, Any]) -> tuple[str, str, str]:
    """(param, message, code) of the most specific error: a union reports one error per member;
    the one that went deepest into the value says best what is wrong."""
    found: dict[str, list[ErrorDetails]] = {}
    best, best_depth = "", -1
    for error in exc.errors(include_url=False, include_input=False):
        path, depth = _data_path(tuple(error["loc"]), body, error["type"] == "missing")
        found.setdefault(path, []).append(error)
        if depth > best_depth:
            best, best_depth = path, depth
    errors = found[best]
    messages = list(dict.fromkeys(e["msg"] for e in errors))
    kinds = {e["type"] for e in errors}
    code = (
        "missing_required_parameter"
        if kinds == {"missing"}
        else "invalid_type"
        if all(k.endswith("_type") for k in kinds)
        else "invalid_value"
    )
    return best, " or ".join(messages), code

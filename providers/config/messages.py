"""pydantic's validation errors as the document's "path: message" lines.

`providers[0].retry.max_attempts: must be a whole number`, `providers[2].color: unknown field
(allowed: ...)`: short, at the key's path, and never showing the value (it may be a secret).
"""

from __future__ import annotations

import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

MESSAGES = {
    "missing": "is required",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "string_too_short": "must not be empty",
    "too_short": "must not be empty",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
}
SCALARS = ("int_type", "float_type", "bool_type", "string_type")
BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


def error_lines(exc: ValidationError, model: type[BaseModel], path: str) -> list[str]:
    """One line per error of validating an entry of `model` found at `path`."""
    lines = []
    for error in exc.errors(include_url=False):
        where, parent, key = _locate(model, error["loc"])
        lines.append(f"{path}{where}: {_message(error, parent, key)}")
    return lines


def _message(error: Any, parent: type[BaseModel] | None, key: bool) -> str:
    kind = error["type"]
    if kind in ("extra_forbidden", "invalid_key") and parent is not None:
        return f"unknown field (allowed: {', '.join(sorted(parent.model_fields))})"
    if kind in SCALARS and error.get("input", ...) is None:
        return "must not be empty"
    if kind in BOUNDS:
        limit = next(iter(error["ctx"].values()))
        if isinstance(limit, float) and limit.is_integer():
            limit = int(limit)
        return f"must be {BOUNDS[kind]} {limit}"
    message = MESSAGES.get(kind) or error["msg"]
    return f"key {message}" if key else message


def _locate(model: type[BaseModel], loc: tuple[int | str, ...]) -> tuple[str, type[BaseModel] | None, bool]:
    """The loc as a path suffix (`.breaker.window_s`, `.targets[1]`), the entry model whose key
    its last part is (for an unknown key: what it allows), and whether it names a mapping's key."""
    where, current, parent, key = "", _bare(model), None, False
    for part in loc:
        parent = None
        if part == "[key]":  # pydantic's mark for a mapping's key, not its value
            key = True
        elif isinstance(current, type) and issubclass(current, BaseModel):
            parent = current
            where += f".{part}"
            field = current.model_fields.get(part) if isinstance(part, str) else None
            current = _bare(field.annotation) if field else None
        elif get_origin(current) is list and isinstance(part, int):
            where += f"[{part}]"
            current = _bare(get_args(current)[0])
        elif get_origin(current) is dict:
            where += f".{part}"
            current = _bare(get_args(current)[1])
        else:
            where += f"[{part}]" if isinstance(part, int) else f".{part}"
            current = None
    return where, parent, key


def _bare(annotation: Any) -> Any:
    """`X` for `Annotated[X, ...]` and for `X | None`."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            others = [a for a in get_args(annotation) if a is not type(None)]
            if len(others) != 1:
                return annotation
            annotation = others[0]
        else:
            return annotation

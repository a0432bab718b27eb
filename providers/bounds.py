"""Bounds on JSON and names that come from outside: a caller's request body, an operator's
configuration document, a provider's `options`.

Pure Python (no Django), so the gateway's edge, the adapters' option checks and the
configuration importer share one definition of "too deep", "not real text" and "not a name":

- `load_json(raw)`: the one JSON parser for request bodies. Refuses NaN/Infinity (not JSON,
  and no provider takes them), nesting deeper than `MAX_DEPTH` (the C parser would raise
  RecursionError far deeper, and every recursive walk after it, from translation to logging,
  would fail at its own depth) and lone surrogates, which cannot be encoded as UTF-8 to a
  provider or a database.
- `check_json(value)`: the same checks on an already parsed value (YAML, a JSONField).
- `check_yaml_text(text)`: depth from PyYAML's event stream, which is a state machine, before
  `yaml.safe_load` composes the tree recursively (3,000 nested `[` overflow the stack there).
- `name_problem(value)`: what is wrong with a route, model or provider name a caller sent.
- `header_value(text)`: text safe to put in a response header.

Every refusal is a `BoundsError` (a ValueError) with a message and the path of the offending
value (`messages[0].content`), so callers can answer 400 naming the field.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any
from urllib.parse import quote

MAX_DEPTH = 64  # containers inside containers; real requests (tool schemas included) use < 20
MAX_NAME_LENGTH = 300  # a provider (64) "/" a model (200), with room to spare
# Values in one configuration document: hundreds of providers make a few thousand. YAML
# aliases can make a short text a huge tree; this bounds the walk, the import and the export.
MAX_DOCUMENT_VALUES = 200_000
_SURROGATE = re.compile("[\ud800-\udfff]")


class BoundsError(ValueError):
    """A value outside the bounds; `path` names where (empty for the whole document)."""

    def __init__(self, message: str, path: str = "") -> None:
        self.path = path
        super().__init__(message)


def _constant(name: str) -> float:
    raise BoundsError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BoundsError(f"the number {text[:40]} is out of range")
    return value


def load_json(raw: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse a JSON document within the bounds; BoundsError (or ValueError for malformed
    JSON, with the parser's message)."""
    try:
        value = json.loads(raw, parse_constant=_constant, parse_float=_finite)
    except RecursionError:
        raise BoundsError(f"the JSON nests deeper than {max_depth} levels") from None
    # The walk costs several times the parse (it is on every gateway request): skip it when the
    # bytes alone show it cannot find anything. Fewer brackets than the depth limit cannot nest
    # past it, and a lone surrogate can only come from a \uD8xx-\uDFxx escape (UTF-8 bytes
    # cannot carry one). Brackets or escapes inside strings only make the walk run.
    if not (
        isinstance(raw, bytes | bytearray)
        and raw.count(b"{") + raw.count(b"[") < max_depth
        and not _SURROGATE_ESCAPE.search(raw)
    ):
        check_json(value, max_depth=max_depth)
    return value


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def check_json(value: Any, *, max_depth: int = MAX_DEPTH, max_nodes: int | None = None, where: str = "") -> None:
    """Refuse nesting deeper than `max_depth`, more than `max_nodes` values (when given), lone
    surrogates in keys or strings, and NaN or infinite numbers (none is JSON, and PostgreSQL
    refuses them). Iterative: any depth is safe to check."""
    nodes = 0
    stack: list[tuple[Any, str, int]] = [(value, where, 1)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, dict):
            items: Any = node.items()
        elif isinstance(node, list | tuple):
            items = enumerate(node)
        else:
            if isinstance(node, str) and _SURROGATE.search(node):
                raise BoundsError("contains a lone surrogate (not valid Unicode text)", path)
            continue
        if depth > max_depth:
            raise BoundsError(f"nests deeper than {max_depth} levels", path)
        for key, child in items:
            nodes += 1
            if max_nodes is not None and nodes > max_nodes:
                raise BoundsError(f"has more than {max_nodes} values", where)
            if isinstance(key, str) and _SURROGATE.search(key):
                raise BoundsError("has a key with a lone surrogate (not valid Unicode text)", path)
            if isinstance(child, dict | list | tuple | str):
                stack.append((child, _join(path, key), depth + 1))
            elif isinstance(child, float) and not math.isfinite(child):  # YAML's .nan and .inf
                raise BoundsError("is not a finite number", _join(path, key))


def check_yaml_text(text: str, *, max_depth: int = MAX_DEPTH) -> None:
    """Refuse a YAML (or JSON) text that nests deeper than `max_depth`, before it is loaded.
    Malformed YAML passes: the loader reports it with its own message."""
    import yaml

    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > max_depth:
                    mark = event.start_mark
                    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
                    raise BoundsError(f"{where}the document nests deeper than {max_depth} levels")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError:
        return


def name_problem(value: Any, *, max_length: int = MAX_NAME_LENGTH) -> str | None:
    """Why `value` cannot be a route, model or provider name (None when it can): names are
    non-empty strings of printable characters (no control, format or separator characters,
    no lone surrogates), at most `max_length` long."""
    if not isinstance(value, str):
        return "must be a string"
    if not value:
        return "must not be empty"
    if len(value) > max_length:
        return f"must be at most {max_length} characters"
    if not value.isprintable():
        return "must not contain control or invisible characters"
    return None


def header_value(text: str, *, max_length: int = MAX_NAME_LENGTH) -> str:
    """`text` as a header value: printable ASCII kept, anything else percent-encoded, cut at
    `max_length`. A header never carries a caller's raw bytes."""
    return quote(text[:max_length], safe=" !\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~")

"""The configuration file's keys and the model fields they map to.

One table per section; the importer reads values through it, the exporter writes them
through it, and validation errors on a model field are reported at its config path. So a
key exists in exactly one place (a later app's section keeps its table with its own code,
as health/channel_config.py does for alert channels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Key:
    path: tuple[str, ...]  # e.g. ("breaker", "failure_rate")
    field: str  # model field
    type: str  # "str" | "int" | "float" | "bool" | "list" | "dict" | "str_list"
    nullable: bool = False

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


PROVIDER_KEYS: tuple[Key, ...] = (
    Key(("kind",), "kind", "str"),
    Key(("base_url",), "base_url", "str"),
    Key(("models",), "configured_models", "str_list"),
    Key(("capabilities",), "capabilities", "str_list"),
    Key(("priority",), "priority", "int"),
    Key(("weight",), "weight", "float"),
    Key(("enabled",), "enabled", "bool"),
    Key(("timeout_s",), "timeout_s", "float", nullable=True),
    Key(("max_concurrent",), "max_concurrent", "int"),
    Key(("options",), "options", "dict"),
    Key(("retry", "max_attempts"), "retry_max_attempts", "int"),
    Key(("retry", "base_delay_s"), "retry_base_delay_s", "float"),
    Key(("retry", "max_delay_s"), "retry_max_delay_s", "float"),
    Key(("breaker", "mode"), "breaker_mode", "str"),
    Key(("breaker", "window_s"), "breaker_window_s", "float", nullable=True),
    Key(("breaker", "min_calls"), "breaker_min_calls", "int"),
    Key(("breaker", "failure_rate"), "breaker_failure_rate", "float"),
    Key(("breaker", "consecutive_failures"), "breaker_consecutive_failures", "int"),
    Key(("breaker", "break_s"), "breaker_break_s", "float"),
    Key(("breaker", "max_break_s"), "breaker_max_break_s", "float"),
    Key(("breaker", "half_open_probes"), "breaker_half_open_probes", "int"),
    Key(("health_check", "interval_s"), "health_interval_s", "float"),
    Key(("health_check", "timeout_s"), "health_timeout_s", "float"),
    Key(("health_check", "probe"), "health_probe", "str"),
    Key(("limits", "requests_per_minute"), "limit_requests_per_minute", "int", nullable=True),
    Key(("limits", "tokens_per_minute"), "limit_tokens_per_minute", "int", nullable=True),
)
# Keys handled by hand: name, api_key / api_keys (secrets), prices (model catalog).
PROVIDER_SPECIAL = ("name", "api_key", "api_keys", "prices")

PRICE_KEYS: tuple[Key, ...] = (
    Key(("input_per_mtok",), "input_price_per_mtok", "float"),
    Key(("output_per_mtok",), "output_price_per_mtok", "float"),
    Key(("per_image",), "price_per_image", "float"),
    Key(("per_kchar",), "price_per_kchar", "float"),
    Key(("per_minute",), "price_per_minute", "float"),
    Key(("context_window",), "context_window", "int", nullable=True),
    Key(("capabilities",), "capabilities", "str_list"),
)

ROUTE_KEYS: tuple[Key, ...] = (
    Key(("capability",), "capability", "str"),
    Key(("strategy",), "strategy", "str"),
    Key(("max_attempts",), "max_attempts", "int"),
    Key(("deadline_s",), "deadline_s", "float", nullable=True),
    Key(("hedge",), "hedge", "bool"),
    Key(("hedge_delay_s",), "hedge_delay_s", "float", nullable=True),
    Key(("enabled",), "enabled", "bool"),
    Key(("description",), "description", "str"),
)
ROUTE_SPECIAL = ("name", "targets")
TARGET_KEYS = ("provider", "model", "weight")

# This app's sections; later apps add theirs (sections.py: health's alert_channels).
BUILT_IN = ("providers", "routes")


def field_paths(keys: tuple[Key, ...]) -> dict[str, str]:
    """model field -> dotted config path, to report a model's validation error at its key."""
    return {key.field: key.dotted for key in keys}


def allowed_paths(keys: tuple[Key, ...], special: tuple[str, ...]) -> dict[str, set[str] | None]:
    """First-level key -> allowed second-level keys (None for a leaf)."""
    allowed: dict[str, set[str] | None] = {name: None for name in special}
    for key in keys:
        if len(key.path) == 1:
            allowed[key.path[0]] = None
        else:
            group = allowed.setdefault(key.path[0], set())
            assert group is not None
            group.add(key.path[1])
    return allowed


def coerce(value: Any, type_: str, nullable: bool) -> tuple[Any, str | None]:
    """Check a value's type; returns (value, error message or None)."""
    if value is None:
        return (None, None) if nullable else (None, "must not be empty")
    if type_ == "str":
        return (value, None) if isinstance(value, str) else (None, "must be a string")
    if type_ == "bool":
        return (value, None) if isinstance(value, bool) else (None, "must be true or false")
    if type_ == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value), None
            return None, "must be a whole number"
        return value, None
    if type_ == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, "must be a number"
        return float(value), None
    if type_ == "dict":
        return (value, None) if isinstance(value, dict) else (None, "must be a mapping")
    if type_ == "str_list":
        if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
            return value, None
        return None, "must be a list of names"
    if type_ == "list":
        return (value, None) if isinstance(value, list) else (None, "must be a list")
    raise ValueError(type_)

"""The configuration document's entries, as pydantic models, and the model field each key is
stored in.

One definition serves three purposes. The importer validates an entry with its model (strict
JSON types: no "2" for 2, no `true` for 1; an int is a number, and an integral 2.0 is the whole
number 2). The OpenAPI document describes `PUT /api/config`'s body with them (`ConfigDocument`,
providers/schemas.py). And a key declared with `stored(Model, "field")` maps to that field: the
importer assigns through the map, the exporter writes through it, and the model's own
validation errors (choices, ranges: `full_clean`) are reported at the key's config path
(`columns`). The field also gives the key its default, its description (the help text) and its
choices, so what an omitted key becomes is said once, on the model.

A later app's section keeps its entry model with its own code (health/channel_config.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

from django.db import models
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from providers.models import Provider, ProviderModel, Route, RouteTarget


@dataclass(frozen=True)
class Column:
    """Marks an entry field as stored in the model field `name` (see `stored`)."""

    name: str


@dataclass(frozen=True)
class Key:
    """One key of an entry (a path through its groups) and the model field it is stored in."""

    path: tuple[str, ...]  # e.g. ("breaker", "failure_rate")
    field: str  # model field

    @property
    def dotted(self) -> str:
        return ".".join(self.path)

    def read(self, entry: BaseModel) -> Any:
        value: Any = entry
        for part in self.path:
            value = getattr(value, part)
        return value


def _integral(value: Any) -> Any:
    # a writer may put 2 as 2.0 (JSON has one number type): an integral float is that number
    return int(value) if isinstance(value, float) and value.is_integer() else value


WholeNumber = Annotated[int, BeforeValidator(_integral)]
Number = Annotated[float, Field(allow_inf_nan=False)]
Name = Annotated[str, Field(min_length=1)]


def stored(model: type[models.Model], name: str, **kwargs: Any) -> Any:
    """A key stored in `model.name`: its default, description and choices are the field's.

    Required when the field has no default and may be neither empty nor null (a provider's
    `kind`)."""
    field = model._meta.get_field(name)
    assert isinstance(field, models.Field)
    if field.has_default():
        if callable(field.default):
            kwargs.setdefault("default_factory", field.default)
        else:
            default = field.default
            kwargs.setdefault("default", float(default) if isinstance(default, Decimal) else default)
    elif field.null or field.blank:
        kwargs.setdefault("default", field.get_default())
    if field.help_text:
        kwargs.setdefault("description", str(field.help_text))
    if field.choices:  # checked by the field (full_clean), named here for the OpenAPI document
        kwargs.setdefault("json_schema_extra", {"enum": [value for value, _ in field.flatchoices]})
    info = Field(**kwargs)
    info.metadata.append(Column(name))
    return info


class ConfigEntry(BaseModel):
    """An entry of the document, or a group of keys in one: unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", strict=True)


def columns(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> tuple[Key, ...]:
    """The keys of `model` stored in a model field, its groups' included, in declared order."""
    keys: list[Key] = []
    for name, info in model.model_fields.items():
        column = next((m for m in info.metadata if isinstance(m, Column)), None)
        if column is not None:
            keys.append(Key((*prefix, name), column.name))
        elif isinstance(info.annotation, type) and issubclass(info.annotation, ConfigEntry):
            keys += columns(info.annotation, (*prefix, name))
    return tuple(keys)


# -- providers ------------------------------------------------------------------------------


class RetryConfig(ConfigEntry):
    max_attempts: WholeNumber = stored(Provider, "retry_max_attempts")
    base_delay_s: Number = stored(Provider, "retry_base_delay_s")
    max_delay_s: Number = stored(Provider, "retry_max_delay_s")


class BreakerConfig(ConfigEntry):
    mode: str = stored(Provider, "breaker_mode")
    window_s: Number | None = stored(Provider, "breaker_window_s")
    min_calls: WholeNumber = stored(Provider, "breaker_min_calls")
    failure_rate: Number = stored(Provider, "breaker_failure_rate")
    consecutive_failures: WholeNumber = stored(Provider, "breaker_consecutive_failures")
    break_s: Number = stored(Provider, "breaker_break_s")
    max_break_s: Number = stored(Provider, "breaker_max_break_s")
    half_open_probes: WholeNumber = stored(Provider, "breaker_half_open_probes")


class HealthCheckConfig(ConfigEntry):
    interval_s: Number = stored(Provider, "health_interval_s")
    timeout_s: Number = stored(Provider, "health_timeout_s")
    probe: str = stored(Provider, "health_probe")
    flap_checks: WholeNumber | None = stored(Provider, "health_flap_checks")
    flap_seconds: Number | None = stored(Provider, "health_flap_seconds")


class ProviderCacheConfig(ConfigEntry):
    ttl_s: Number | None = stored(Provider, "cache_ttl_s")


class RouteCacheConfig(ConfigEntry):
    ttl_s: Number | None = stored(Route, "cache_ttl_s")


class LimitsConfig(ConfigEntry):
    requests_per_minute: WholeNumber | None = stored(Provider, "limit_requests_per_minute")
    tokens_per_minute: WholeNumber | None = stored(Provider, "limit_tokens_per_minute")


class PriceConfig(ConfigEntry):
    """One model's prices and facts (a row of the provider's model catalog). A price left
    out or null is unknown (the provider's published price, when it publishes one); 0 is free."""

    input_per_mtok: Number | None = stored(ProviderModel, "input_price_per_mtok")
    output_per_mtok: Number | None = stored(ProviderModel, "output_price_per_mtok")
    per_image: Number | None = stored(ProviderModel, "price_per_image")
    per_kchar: Number | None = stored(ProviderModel, "price_per_kchar")
    per_minute: Number | None = stored(ProviderModel, "price_per_minute")
    context_window: WholeNumber | None = stored(ProviderModel, "context_window")
    capabilities: list[str] = stored(ProviderModel, "capabilities")


SECRET = "a literal (stored encrypted, exported masked) or env:NAME"


class ProviderConfig(ConfigEntry):
    """One provider. What the entry leaves out takes its default, but for its keys: without
    `api_key`/`api_keys` the stored ones stay."""

    name: Name
    kind: str = stored(Provider, "kind")
    base_url: str = stored(Provider, "base_url")
    models: list[Name] = stored(Provider, "configured_models")
    capabilities: list[str] = stored(Provider, "capabilities")
    priority: WholeNumber = stored(Provider, "priority")
    weight: Number = stored(Provider, "weight")
    enabled: bool = stored(Provider, "enabled")
    timeout_s: Number | None = stored(Provider, "timeout_s")
    max_concurrent: WholeNumber = stored(Provider, "max_concurrent")
    options: dict[str, Any] = stored(Provider, "options")
    retry: RetryConfig = Field(default_factory=RetryConfig)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    health_check: HealthCheckConfig = Field(default_factory=HealthCheckConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    cache: ProviderCacheConfig = Field(default_factory=ProviderCacheConfig)
    api_key: str | None = Field(default=None, description=f"The key: {SECRET}; null: none.")
    api_keys: list[str] | None = Field(default=None, description=f"Several keys, tried in turn: each {SECRET}.")
    prices: dict[str, PriceConfig] = Field(default_factory=dict, description="By model name.")


# -- routes ---------------------------------------------------------------------------------


class TargetConfig(ConfigEntry):
    provider: Name
    model: str = stored(RouteTarget, "model")
    weight: Number | None = stored(RouteTarget, "weight")


def _shorthand(value: Any) -> Any:
    if isinstance(value, str):  # "provider/model", or "provider" for its first model
        provider, _, model = value.partition("/")
        return {"provider": provider, "model": model}
    if not isinstance(value, dict):
        raise PydanticCustomError("target_type", 'must be a mapping with provider and model, or "provider/model"')
    return value


Target = Annotated[TargetConfig, BeforeValidator(_shorthand, json_schema_input_type=TargetConfig | str)]


class RouteRetryConfig(ConfigEntry):
    """A route's own retries on each of its targets, over the providers' `retry`: a key left
    out is each provider's own."""

    max_attempts: WholeNumber | None = stored(Route, "retry_max_attempts")
    base_delay_s: Number | None = stored(Route, "retry_base_delay_s")
    max_delay_s: Number | None = stored(Route, "retry_max_delay_s")


class RouteConfig(ConfigEntry):
    name: Name
    capability: str = stored(Route, "capability")
    strategy: str = stored(Route, "strategy")
    max_attempts: WholeNumber = stored(Route, "max_attempts")
    deadline_s: Number | None = stored(Route, "deadline_s")
    hedge: bool = stored(Route, "hedge")
    hedge_delay_s: Number | None = stored(Route, "hedge_delay_s")
    enabled: bool = stored(Route, "enabled")
    description: str = stored(Route, "description")
    cache: RouteCacheConfig = Field(default_factory=RouteCacheConfig)
    retry: RouteRetryConfig = Field(default_factory=RouteRetryConfig)
    targets: list[Target] = Field(
        min_length=1, description='The chain, in order: {provider, model, weight} or "provider/model".'
    )


PROVIDER_KEYS = columns(ProviderConfig)
PRICE_KEYS = columns(PriceConfig)
# The prices proper, which an entry owns on any row of its catalog (the rest, a discovered
# model's facts, only on the rows it made or prices).
MONEY_KEYS = tuple(k for k in PRICE_KEYS if isinstance(ProviderModel._meta.get_field(k.field), models.DecimalField))
ROUTE_KEYS = columns(RouteConfig)
TARGET_KEYS = columns(TargetConfig)

# This app's sections; later apps add theirs (sections.py: health's alert_channels).
BUILT_IN = ("providers", "routes")


def field_paths(keys: tuple[Key, ...]) -> dict[str, str]:
    """model field -> dotted config path, to report a model's validation error at its key."""
    return {key.field: key.dotted for key in keys}

"""Models of the API's requests and answers, for the OpenAPI document (providers/openapi.py)
and, for the gateway's requests, for validating them at the edge.

The gateway's OpenAI-compatible bodies allow extra fields (they are passed through to
providers) but type and bound the common parameters; the operations API's answers are exact.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .bounds import MAX_NAME_LENGTH
from .config.schema import ProviderConfig, RouteConfig


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Attempt(BaseModel):
    provider: str
    model: str
    credential: str | None
    outcome: str | None = Field(
        description="success, failure, rate_limited, exhausted, caller_error, "
        "credential_rejected, target_misconfigured, cancelled, deadline, "
        "stream_aborted; null when skipped"
    )
    status: int | None
    duration_ms: float
    skipped: str | None = Field(
        description="why the target was skipped: disabled, maintenance, open, "
        "half_open_full, forced_open, cooldown, exhausted, rejected, "
        "model_missing, unsupported, invalid_request, bulkhead_full, "
        "throttled, budget, limit, deadline"
    )
    reason: str
    error: str
    hedge: bool


class ErrorDetail(Open):
    type: str
    message: str
    code: str | None = None
    param: str | None = Field(default=None, description="the request field the error is about")
    attempts: list[Attempt] | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


# -- gateway --------------------------------------------------------------------------------
# The request models below are what the gateway validates at the edge (providers/gateway/
# bodies.py), before any target is tried, and what the OpenAPI document shows: one definition.
# Strict JSON types (no "0.5" for 0.5, no 1 for true), bounds on the common OpenAI parameters,
# and unknown fields allowed: they are forwarded as they came (providers take extras of their own).

MAX_DIMENSIONS = 8192  # the largest embedding any provider we know of returns is 4096 wide
MAX_INPUTS = 2048  # OpenAI's own limit on one embeddings request
MAX_TOKENS = 2**31 - 1


class Edge(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


ModelName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        description="a route name, provider/model, or a model some provider lists; printable characters only",
    ),
]
Number = float  # a JSON number (an integer too), never a string or a boolean


class Message(Edge):
    role: str = Field(min_length=1, max_length=64)
    content: str | list[dict[str, Any]] | None = None


class ChatParams(Edge):
    messages: list[Message] = Field(min_length=1)
    stream: bool | None = None
    temperature: Number | None = Field(default=None, ge=0, le=2)
    top_p: Number | None = Field(default=None, ge=0, le=1)
    presence_penalty: Number | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: Number | None = Field(default=None, ge=-2, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    n: int | None = Field(default=None, ge=1, le=128)
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    stream_options: dict[str, Any] | None = None
    user: str | None = None


class ChatRequest(ChatParams):
    model: ModelName


class EmbeddingsParams(Edge):
    input: (
        str
        | Annotated[list[str], Field(max_length=MAX_INPUTS)]
        | list[int]
        | Annotated[list[list[int]], Field(max_length=MAX_INPUTS)]
    )
    dimensions: int | None = Field(default=None, ge=1, le=MAX_DIMENSIONS)
    encoding_format: Literal["float", "base64"] | None = None
    user: str | None = None


class EmbeddingsRequest(EmbeddingsParams):
    model: ModelName


class ImageParams(Edge):
    prompt: str = Field(min_length=1)
    n: int | None = Field(default=None, ge=1, le=10)
    size: str | None = Field(default=None, max_length=32)
    quality: str | None = Field(default=None, max_length=32)
    style: str | None = Field(default=None, max_length=32)
    response_format: str | None = Field(default=None, max_length=32)
    user: str | None = None


class ImageRequest(ImageParams):
    model: ModelName


class SpeechParams(Edge):
    input: str = Field(min_length=1)
    voice: str | dict[str, Any] | None = None
    speed: Number | None = Field(default=None, ge=0.25, le=4)
    response_format: str | None = Field(default=None, max_length=32)
    instructions: str | None = None


class SpeechRequest(SpeechParams):
    model: ModelName


class TranslationParams(Edge):
    text: str | list[str]
    target_lang: str = Field(min_length=1, max_length=35)  # the longest BCP 47 tags DeepL takes
    source_lang: str | None = Field(default=None, max_length=35)


class VideoParams(Edge):
    prompt: str = Field(min_length=1)
    duration_s: Number | None = Field(default=None, gt=0, le=600)


class TranscriptionRequest(BaseModel):
    model: ModelName
    file: bytes = Field(json_schema_extra={"format": "binary"})


class ChatChoice(Open):
    index: int
    message: Open | None = None
    finish_reason: str | None = None


class ChatCompletion(Open):
    id: str
    object: str
    model: str
    choices: list[ChatChoice]
    usage: Open | None = None


class Embeddings(Open):
    object: str
    data: list[Open]
    model: str | None = None


class Images(Open):
    created: int
    data: list[Open]


class Transcription(Open):
    text: str


class ModelEntry(Open):
    id: str
    object: Literal["model"]
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[ModelEntry]


class ExecuteOptions(Edge):
    deadline_s: Number | None = Field(default=None, gt=0, le=3600, description="a shorter deadline, seconds")
    prefer: str | None = Field(
        default=None, min_length=1, max_length=MAX_NAME_LENGTH, description="try this provider first"
    )


class ExecuteRequest(Edge):
    capability: Literal["chat", "embeddings", "image", "tts", "translation", "video"]
    route: ModelName | None = Field(default=None, description="a route name or provider/model (or give `model`)")
    model: ModelName | None = Field(default=None, description="the same as `route`")
    input: Any = Field(
        description="chat: text or messages; embeddings: text(s); image: prompt; "
        "tts: text; translation: text(s) or {text, target_lang}; "
        "video: prompt or {prompt, images, audio, duration_s}"
    )
    options: ExecuteOptions | None = Field(
        default=None,
        description="passed to the provider (temperature, voice, target_lang, "
        "...); `deadline_s` and `prefer` steer the gateway",
    )


# What execute's `input` and `options` become, per capability: the same checks as /v1.
EXECUTE_PARAMS: dict[str, type[Edge]] = {
    "chat": ChatParams,
    "embeddings": EmbeddingsParams,
    "image": ImageParams,
    "tts": SpeechParams,
    "translation": TranslationParams,
    "video": VideoParams,
}


class Usage(BaseModel):
    tokens_in: int
    tokens_out: int
    characters: int
    images: int


class ExecuteResult(BaseModel):
    id: str
    route: str
    capability: str
    provider: str
    model: str
    output: Any
    usage: Usage
    cost: float | None = Field(description="at the model's prices; null: a price it used is unknown")
    failovers: int
    retries: int
    latency_ms: float
    attempts: list[Attempt]


# -- operations -----------------------------------------------------------------------------


class Credential(BaseModel):
    id: str
    label: str
    hint: str = Field(description="masked: sk-…abcd or env:NAME")
    enabled: bool
    state: str = Field(description="active, rate_limited, exhausted or rejected")
    until: float | None = None


class ProviderSummary(BaseModel):
    name: str
    kind: str
    base_url: str = Field(description="As configured: a URL, env:NAME (never the value read from it) or empty")
    enabled: bool
    maintenance: bool
    capabilities: list[str]
    models: list[str]
    priority: int
    weight: float
    is_demo: bool
    status: str
    score: float | None
    breaker: str
    problem: str | None = Field(
        default=None, description="Why the provider cannot be called, e.g. base_url env:NAME is not set"
    )


class ProviderDetail(ProviderSummary):
    timeout_s: float | None
    retry: dict[str, Any]
    breaker_policy: dict[str, Any]
    health_check: dict[str, Any]
    options: dict[str, Any]
    credentials: list[Credential]


class ProviderList(BaseModel):
    providers: list[ProviderSummary]


class Cooldown(BaseModel):
    credential: str | None
    kind: str
    until: float | None


class Breaker(BaseModel):
    name: str
    state: Literal["closed", "open", "half_open", "forced_open", "disabled", "metrics_only"]
    generation: int
    open_until: float | None
    opened_count: int
    reason: str
    calls: int
    failures: int
    slow: int
    success_rate: float | None
    consecutive_failures: int
    cooldowns: list[Cooldown]


class BreakerList(BaseModel):
    breakers: list[Breaker]


class ForceOpen(BaseModel):
    minutes: float | None = Field(default=None, gt=0, le=7 * 24 * 60)


class CatalogModel(BaseModel):
    name: str
    capabilities: list[str]
    context_window: int | None
    input_price_per_mtok: float | None = Field(description="USD; null: unknown (0 is free)")
    output_price_per_mtok: float | None
    price_per_image: float | None
    price_per_kchar: float | None
    price_per_minute: float | None
    published: list[str] = Field(
        description="the prices above that are the provider's published ones (the operator set none)"
    )
    source: str
    price_known: bool = Field(description="some price of the model is known")
    free: bool = Field(description="some price is known and every known one is 0")


class CatalogList(BaseModel):
    provider: str
    models: list[CatalogModel]


class PullProgress(BaseModel):
    status: str
    digest: str | None = None
    total: int | None = None
    completed: int | None = None
    percent: float | None = None
    error: str | None = None


# The entries are the models the importer validates with (providers/config/schema.py). An
# alert channel's is the health app's (AlertChannelConfig, health/channel_config.py), which
# this app cannot import: here it is any mapping.
class ConfigDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")  # PUT /api/config refuses an unknown section

    providers: list[ProviderConfig] = Field(default_factory=list)
    routes: list[RouteConfig] = Field(default_factory=list)
    alert_channels: list[Open] = Field(default_factory=list)


class ConfigResult(BaseModel):
    created: list[str]
    updated: list[str]
    deleted: list[str]
    unchanged: int


class CacheCleared(BaseModel):
    forgotten_models: int


class Healthz(BaseModel):
    status: str
    database: str

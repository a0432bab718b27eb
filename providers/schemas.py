"""Models of the API's requests and answers, for the OpenAPI document (providers/openapi.py).

The gateway's OpenAI-compatible bodies are described loosely on purpose (extra fields are
allowed and passed through to providers); the operations API's answers are exact.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Attempt(BaseModel):
    provider: str
    model: str
    credential: str | None
    outcome: str | None = Field(description="success, failure, rate_limited, exhausted, caller_error, "
                                            "cancelled, deadline, stream_aborted; null when skipped")
    status: int | None
    duration_ms: float
    skipped: str | None = Field(description="why the target was skipped: disabled, maintenance, open, "
                                            "half_open_full, forced_open, cooldown, exhausted, "
                                            "bulkhead_full, throttled, budget, deadline")
    reason: str
    error: str
    hedge: bool


class ErrorDetail(Open):
    type: str
    message: str
    code: str | None = None
    attempts: list[Attempt] | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


# -- gateway --------------------------------------------------------------------------------

class Message(Open):
    role: str
    content: Any = None


class ChatRequest(Open):
    model: str = Field(description="a route name, provider/model, or a model some provider lists")
    messages: list[Message] = Field(min_length=1)
    stream: bool = False


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


class EmbeddingsRequest(Open):
    model: str
    input: str | list[str] | list[int] | list[list[int]]


class Embeddings(Open):
    object: str
    data: list[Open]
    model: str | None = None


class ImageRequest(Open):
    model: str
    prompt: str = Field(min_length=1)
    n: int | None = None
    size: str | None = None


class Images(Open):
    created: int
    data: list[Open]


class SpeechRequest(Open):
    model: str
    input: str = Field(min_length=1)
    voice: str | None = None


class TranscriptionRequest(BaseModel):
    model: str
    file: bytes = Field(json_schema_extra={"format": "binary"})


class Transcription(Open):
    text: str


class ModelEntry(Open):
    id: str
    object: Literal["model"]
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[ModelEntry]


class ExecuteRequest(BaseModel):
    capability: Literal["chat", "embeddings", "image", "tts", "translation", "video"]
    route: str = Field(description="a route name or provider/model")
    input: Any = Field(description="chat: text or messages; embeddings: text(s); image: prompt; "
                                   "tts: text; translation: text(s) or {text, target_lang}; "
                                   "video: prompt or {prompt, images, audio, duration_s}")
    options: dict[str, Any] = Field(default_factory=dict,
                                    description="passed to the provider (temperature, voice, target_lang, ...); "
                                                "`deadline_s` and `prefer` steer the gateway")


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
    cost: float
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
    state: str = Field(description="active, rate_limited, exhausted or invalid")
    until: float | None = None


class ProviderSummary(BaseModel):
    name: str
    kind: str
    base_url: str
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
    input_price_per_mtok: float
    output_price_per_mtok: float
    price_per_image: float
    price_per_kchar: float
    source: str
    free: bool


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


class ConfigDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")  # PUT /api/config refuses an unknown section

    providers: list[Open] = Field(default_factory=list)
    routes: list[Open] = Field(default_factory=list)
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

"""The configuration of the gateway: providers, their secrets and models, routes, API keys.

Every change to these rows bumps `ConfigState.version` (see signals.py); running workers and
the monitor compare that number every second or two and reload, so a change made anywhere
takes effect without a restart.
"""

from __future__ import annotations

import hashlib
import os
import secrets as pysecrets
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F
from django.utils import timezone

from . import crypto
from .adapters import validate_options
from .adapters.published_prices import PRICE_FIELDS, effective_prices
from .bounds import BoundsError, check_json, name_problem
from .engine import attempt_timeout_for, breaker_timeout_for
from .validation import RangeValidator, validate_name, validate_provider_url, validate_route_name

MAX_OPTIONS_DEPTH = 16  # a provider's kind-specific options: bounded like every stored JSON value
MAX_OPTIONS_VALUES = 10_000


class Kind(models.TextChoices):
    OPENAI = "openai", "OpenAI-compatible"
    ANTHROPIC = "anthropic", "Anthropic"
    OLLAMA = "ollama", "Ollama"
    SDWEBUI = "sdwebui", "Stable Diffusion WebUI"
    ELEVENLABS = "elevenlabs", "ElevenLabs"
    DEEPL = "deepl", "DeepL"
    SIMULATED = "simulated", "Simulated (no network)"
    REPLICATE = "replicate", "Replicate"
    POLLINATIONS = "pollinations", "Pollinations (images)"
    STOCK = "stock", "Stock photos (Pexels-style search)"
    PIPER = "piper", "Piper TTS"
    FAL = "fal", "fal.ai (queue API)"
    WHISPER = "whisper", "whisper-asr-webservice"
    FFMPEG = "ffmpeg", "ffmpeg composition service"


class Capability(models.TextChoices):
    CHAT = "chat"
    EMBEDDINGS = "embeddings"
    IMAGE = "image"
    TTS = "tts"
    STT = "stt"
    TRANSLATION = "translation"
    VIDEO = "video"


# What each wire format can do, used when a provider lists no capabilities of its own.
KIND_CAPABILITIES: dict[str, list[str]] = {
    Kind.OPENAI: ["chat", "embeddings", "image", "tts", "stt"],
    Kind.ANTHROPIC: ["chat"],
    Kind.OLLAMA: ["chat", "embeddings"],
    Kind.SDWEBUI: ["image"],
    Kind.ELEVENLABS: ["tts"],
    Kind.DEEPL: ["translation"],
    Kind.SIMULATED: ["chat", "embeddings", "image", "tts", "translation", "video"],
    Kind.REPLICATE: ["image", "video"],
    Kind.POLLINATIONS: ["image"],
    Kind.STOCK: ["image"],
    Kind.PIPER: ["tts"],
    Kind.FAL: ["image", "tts"],
    Kind.WHISPER: ["stt"],
    Kind.FFMPEG: ["video"],
}

# Attempt timeouts by modality (resilience.md §6), used when a provider sets none.


class Strategy(models.TextChoices):
    PRIORITY = "priority"
    ROUND_ROBIN = "round_robin"
    WEIGHTED = "weighted"
    LEAST_LATENCY = "least_latency"
    HEALTH_SCORE = "health_score"
    RANDOM = "random"
    COST = "cost"


class ProbeMode(models.TextChoices):
    CHEAP = "cheap", "Model list or version (free)"
    DEEP = "deep", "A tiny real call (billed)"


class BreakerMode(models.TextChoices):
    NORMAL = "normal"
    METRICS_ONLY = "metrics_only", "Metrics only (never trips)"
    DISABLED = "disabled", "Disabled (always closed, records nothing)"


def _validate_capabilities(value: object) -> None:
    if not isinstance(value, list) or any(v not in Capability.values for v in value):
        raise ValidationError(f"must be a list of: {', '.join(Capability.values)}", code="capabilities")


def _validate_str_list(value: object) -> None:
    if not isinstance(value, list) or any(not isinstance(v, str) or not v for v in value):
        raise ValidationError("must be a list of names", code="list")


def _validate_dict(value: object) -> None:
    if not isinstance(value, dict):
        raise ValidationError("must be a mapping", code="dict")


ENV_PREFIX = "env:"


def validate_base_url(value: str) -> None:
    """A provider's URL, or `env:NAME` to read it from the environment when it is used.

    The name follows the rule of `api_key: env:NAME` (never one of the server's own settings);
    a variable set now must hold a URL the guard takes, like a literal one. An unset one is
    allowed here (the server's environment may differ from the importer's): the provider is
    unusable, with that reason, until it is set (`Provider.resolved_base_url`)."""
    if not value.startswith(ENV_PREFIX):
        validate_provider_url(value)
        return
    name = value.removeprefix(ENV_PREFIX)
    if (why := crypto.env_reference_error(name)) is not None:
        raise ValidationError(why, code="env")
    resolved = os.environ.get(name, "").strip()
    if resolved:
        try:
            validate_provider_url(resolved)
        except ValidationError as exc:
            raise ValidationError(f"{value} holds a URL that {exc.messages[0]}", code="denied") from None


class Provider(models.Model):
    name = models.CharField(max_length=64, unique=True, validators=[validate_name])
    kind = models.CharField(max_length=20, choices=Kind.choices)
    base_url = models.CharField(
        max_length=500,
        blank=True,
        validators=[validate_base_url],
        help_text="Empty: the kind's public default. env:NAME: read from that environment variable.",
    )
    enabled = models.BooleanField(default=True)
    capabilities = models.JSONField(
        default=list, blank=True, validators=[_validate_capabilities], help_text="Empty: what the kind supports."
    )
    configured_models = models.JSONField(
        default=list,
        blank=True,
        validators=[_validate_str_list],
        verbose_name="models",
        help_text="Empty: discovered from the provider.",
    )
    priority = models.IntegerField(default=1, validators=[RangeValidator(0, 1000)], help_text="Lower goes first.")
    weight = models.FloatField(default=1.0, validators=[RangeValidator(0, 1000, low_inclusive=False)])
    timeout_s = models.FloatField(
        null=True,
        blank=True,
        validators=[RangeValidator(0, 600, low_inclusive=False)],
        help_text="Attempt timeout. Empty: 30 s text, 10 s speech, 120 s images.",
    )

    retry_max_attempts = models.PositiveSmallIntegerField(
        default=2, validators=[RangeValidator(1, 10)], help_text="Attempts per request, the first included."
    )
    retry_base_delay_s = models.FloatField(default=0.5, validators=[RangeValidator(0, 60)])
    retry_max_delay_s = models.FloatField(default=8.0, validators=[RangeValidator(0, 300, low_inclusive=False)])

    breaker_mode = models.CharField(max_length=20, choices=BreakerMode.choices, default=BreakerMode.NORMAL)
    breaker_window_s = models.FloatField(
        null=True, blank=True, validators=[RangeValidator(1, 86400)], help_text="Empty: max(60 s, 2 × timeout)."
    )
    breaker_min_calls = models.PositiveIntegerField(default=10, validators=[RangeValidator(1, 100000)])
    breaker_failure_rate = models.FloatField(default=0.5, validators=[RangeValidator(0, 1, low_inclusive=False)])
    breaker_consecutive_failures = models.PositiveIntegerField(
        default=5, validators=[RangeValidator(0, 10000)], help_text="0 turns the rule off."
    )
    breaker_break_s = models.FloatField(default=30.0, validators=[RangeValidator(0, 86400, low_inclusive=False)])
    breaker_max_break_s = models.FloatField(default=300.0, validators=[RangeValidator(0, 86400, low_inclusive=False)])
    breaker_half_open_probes = models.PositiveSmallIntegerField(default=3, validators=[RangeValidator(1, 100)])

    health_interval_s = models.FloatField(default=30.0, validators=[RangeValidator(1, 86400)])
    health_timeout_s = models.FloatField(default=10.0, validators=[RangeValidator(0, 600, low_inclusive=False)])
    health_probe = models.CharField(max_length=10, choices=ProbeMode.choices, default=ProbeMode.CHEAP)
    # Flap damping (health/scores.py `Damping`), this provider's own over the global settings.
    health_flap_checks = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[RangeValidator(1, 1000)],
        help_text="Consecutive evaluations a measured status change must be seen on before it is taken. "
        "Empty: the global HEALTH_FLAP_CHECKS.",
    )
    health_flap_seconds = models.FloatField(
        null=True,
        blank=True,
        validators=[RangeValidator(0, 86400)],
        help_text="How long (s) a measured status change must have lasted before it is taken, 0 for the "
        "checks alone. Empty: the global HEALTH_FLAP_SECONDS.",
    )

    max_concurrent = models.PositiveIntegerField(default=32, validators=[RangeValidator(1, 10000)])
    limit_requests_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[RangeValidator(1, 10_000_000)],
        help_text="Skip this provider (to the next target) rather than send past this. Empty: no limit.",
    )
    limit_tokens_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[RangeValidator(1, 10_000_000_000)],
        help_text="Tokens (in + out) per minute; empty: no limit.",
    )
    options = models.JSONField(
        default=dict, blank=True, validators=[_validate_dict], help_text="Settings particular to the kind."
    )
    cache_ttl_s = models.FloatField(
        null=True,
        blank=True,
        validators=[RangeValidator(0, 30 * 86400)],
        help_text="Response cache: identical requests within this many seconds are answered from the "
        "cache (for routes without a setting of their own whose first target is this provider). "
        "Empty or 0: no cache.",
    )
    is_demo = models.BooleanField(default=False, help_text="Loaded by the demo; removed with it.")
    discovered = models.BooleanField(default=False, help_text="Registered from local discovery.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["priority", "name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if (
            None not in (self.breaker_max_break_s, self.breaker_break_s)
            and self.breaker_max_break_s < self.breaker_break_s
        ):
            errors["breaker_max_break_s"] = "must be >= breaker break_s"
        if (
            None not in (self.retry_max_delay_s, self.retry_base_delay_s)
            and self.retry_max_delay_s < self.retry_base_delay_s
        ):
            errors["retry_max_delay_s"] = "must be >= retry base_delay_s"
        timeout = self.primary_timeout_s
        if self.breaker_window_s is not None and self.breaker_window_s < 2 * timeout:
            errors["breaker_window_s"] = f"must be >= 2 × the attempt timeout ({_fmt(2 * timeout)} s)"
        if isinstance(self.options, dict):  # else the field's own validator said so
            # The kind's options are checked here, like every other field, so the admin, the
            # API and import_config refuse what the adapter could not run with.
            try:
                check_json(self.options, max_depth=MAX_OPTIONS_DEPTH, max_nodes=MAX_OPTIONS_VALUES)
                validate_options(self.kind, self.options)
            except BoundsError as exc:
                errors["options"] = f"{exc.path} {exc}" if exc.path else str(exc)
            except ValueError as exc:
                errors["options"] = str(exc)
        if errors:
            raise ValidationError(errors)

    @property
    def effective_capabilities(self) -> list[str]:
        return list(self.capabilities) or list(KIND_CAPABILITIES.get(self.kind, []))

    @property
    def base_url_env(self) -> str | None:
        """The environment variable `base_url` names (`env:NAME`), or None for a literal."""
        return self.base_url.removeprefix(ENV_PREFIX) if self.base_url.startswith(ENV_PREFIX) else None

    def resolved_base_url(self) -> tuple[str, str]:
        """(the URL to call, "") or (a URL nothing is sent to, why the provider is unusable).

        A literal is returned as it is. `env:NAME` is read now and judged by the URL guard like
        a literal; unset, refused or naming a server setting, the provider cannot be called:
        never the kind's public default (the provider's key would go there)."""
        name = self.base_url_env
        if name is None:
            return self.base_url, ""
        if (why := crypto.env_reference_error(name)) is not None:
            return self.base_url, f"base_url {why}"
        resolved = os.environ.get(name, "").strip()
        if not resolved:
            return self.base_url, f"base_url env:{name} is not set"
        try:
            validate_provider_url(resolved)
        except ValidationError as exc:
            # The URL itself still goes to the adapter: the guard in the HTTP client refuses it
            # on every connection too, exactly as it would a literal.
            return resolved, f"base_url env:{name} holds a URL that {exc.messages[0]}"
        return resolved, ""

    def attempt_timeout_for(self, capability: str) -> float:
        """The engine's one capability table decides the default (providers/engine/policy.py)."""
        return attempt_timeout_for(capability, self.timeout_s)

    @property
    def primary_timeout_s(self) -> float:
        """The attempt timeout the provider's one breaker is sized for: the longest of its
        capabilities' (its window holds two attempts, its half-open reservation outlasts any
        attempt it admits; resilience.md §3)."""
        return breaker_timeout_for(self.effective_capabilities or ["chat"], self.timeout_s)

    @property
    def window_s(self) -> float:
        return self.breaker_window_s or max(60.0, 2 * self.primary_timeout_s)


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


class Secret(models.Model):
    """One credential of a provider: an encrypted literal or a reference to an environment
    variable. The clear value is never shown again after saving: only `hint` is."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="secrets")
    label = models.CharField(max_length=64, blank=True)
    position = models.PositiveSmallIntegerField(default=0, help_text="Credentials are tried in this order.")
    env_var = models.CharField(max_length=128, blank=True, help_text="Read from this environment variable.")
    ciphertext = models.TextField(blank=True, editable=False)
    hint = models.CharField(max_length=32, blank=True, editable=False)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["provider", "position", "id"]

    def __str__(self) -> str:
        return f"{self.provider.name}: {self.display}"

    sealed = crypto.SealedField("env_var", "ciphertext", "hint")

    def set_value(self, plaintext: str) -> None:
        self.sealed.seal(self, plaintext)

    def set_env(self, name: str) -> None:
        self.sealed.refer(self, name)

    def value(self) -> str | None:
        return self.sealed.reveal(self)

    @property
    def display(self) -> str:
        """The reference as config shows it: `env:NAME` or the masked value."""
        return self.sealed.display(self)

    def clean(self) -> None:
        if self.env_var and (why := crypto.env_reference_error(self.env_var)):
            raise ValidationError({"env_var": why})


PRICE_HELP = "Empty: unknown (the price the provider publishes, when it does); 0: free."


class ProviderModel(models.Model):
    """A model a provider serves: configured, discovered or added by hand, with its prices."""

    class Source(models.TextChoices):
        CONFIG = "config"
        DISCOVERED = "discovered"
        MANUAL = "manual"

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="catalog")
    name = models.CharField(max_length=200)
    capabilities = models.JSONField(default=list, blank=True, validators=[_validate_capabilities])
    context_window = models.PositiveIntegerField(null=True, blank=True)
    # The operator's prices (configuration, admin, API). Empty (NULL) is unknown, 0 is free;
    # an unknown one may still be filled by what the provider publishes (`prices()`).
    input_price_per_mtok = models.DecimalField(
        max_digits=12, decimal_places=6, null=True, blank=True, validators=[RangeValidator(0)], help_text=PRICE_HELP
    )
    output_price_per_mtok = models.DecimalField(
        max_digits=12, decimal_places=6, null=True, blank=True, validators=[RangeValidator(0)], help_text=PRICE_HELP
    )
    price_per_image = models.DecimalField(
        max_digits=12, decimal_places=6, null=True, blank=True, validators=[RangeValidator(0)], help_text=PRICE_HELP
    )
    price_per_kchar = models.DecimalField(
        max_digits=12, decimal_places=6, null=True, blank=True, validators=[RangeValidator(0)], help_text=PRICE_HELP
    )
    price_per_minute = models.DecimalField(
        max_digits=12, decimal_places=6, null=True, blank=True, validators=[RangeValidator(0)], help_text=PRICE_HELP
    )
    source = models.CharField(max_length=12, choices=Source.choices, default=Source.MANUAL)
    details = models.JSONField(default=dict, blank=True)
    discovered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["provider", "name"]
        constraints = [models.UniqueConstraint(fields=["provider", "name"], name="unique_provider_model")]

    def __str__(self) -> str:
        return f"{self.provider.name}/{self.name}"

    def configured_prices(self) -> dict[str, Decimal | None]:
        """The operator's prices by column name (None: unknown)."""
        return {name: getattr(self, name) for name in PRICE_FIELDS}

    def prices(self) -> dict[str, Decimal | None]:
        """Each price as it is charged: the operator's, else the one the provider published
        (`details["published_prices"]`, read at discovery), else None (unknown)."""
        return effective_prices(self.configured_prices(), self.details)

    @property
    def price_known(self) -> bool:
        """Whether any price of the model is known (configured or published)."""
        return any(p is not None for p in self.prices().values())

    @property
    def is_free(self) -> bool:
        """Known to cost nothing: some price known, and every known one 0. A model without a
        known price is not free: its price is unknown."""
        known = [p for p in self.prices().values() if p is not None]
        return bool(known) and not any(known)


class MaintenanceWindow(models.Model):
    """While a window is open, traffic routes around the provider and its alerts are silent."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="maintenance_windows")
    starts_at = models.DateTimeField(default=timezone.now)
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=200, blank=True)
    created_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-starts_at"]

    def __str__(self) -> str:
        return f"{self.provider.name} {self.starts_at:%Y-%m-%d %H:%M}–{self.ends_at:%H:%M}"

    def clean(self) -> None:
        if self.ends_at and self.starts_at and self.ends_at <= self.starts_at:
            raise ValidationError({"ends_at": "must be after starts_at"})

    @property
    def active(self) -> bool:
        return self.starts_at <= timezone.now() < self.ends_at


class RouteQuerySet(models.QuerySet["Route"]):
    def with_targets(self) -> RouteQuerySet:
        """Each route's targets prefetched with their providers joined in the same query. A
        second prefetch of the providers by id (`prefetch_related("targets__provider")`) is an
        expression SQLite refuses past ~1,000 providers ("Expression tree is too large")."""
        return self.prefetch_related(
            models.Prefetch("targets", queryset=RouteTarget.objects.select_related("provider"))
        )


class Route(models.Model):
    """What a client names in `model`: an ordered fallback chain for one capability."""

    name = models.CharField(max_length=100, unique=True, validators=[validate_route_name])
    capability = models.CharField(max_length=20, choices=Capability.choices, default=Capability.CHAT)
    strategy = models.CharField(max_length=20, choices=Strategy.choices, default=Strategy.PRIORITY)
    max_attempts = models.PositiveSmallIntegerField(
        default=3, validators=[RangeValidator(1, 20)], help_text="Attempts across the whole chain."
    )
    deadline_s = models.FloatField(
        null=True,
        blank=True,
        validators=[RangeValidator(0, 3600, low_inclusive=False)],
        help_text="Empty: 60 s text, 20 s speech, 180 s images.",
    )
    hedge = models.BooleanField(default=False, help_text="Send a second request if the first is slow (billed).")
    hedge_delay_s = models.FloatField(
        null=True,
        blank=True,
        validators=[RangeValidator(0.05, 60)],
        help_text="Empty: adaptive (p95 time to first token).",
    )
    cache_ttl_s = models.FloatField(
        null=True,
        blank=True,
        validators=[RangeValidator(0, 30 * 86400)],
        help_text="Response cache: identical requests within this many seconds are answered from the "
        "cache. Empty: the first target's provider's setting; 0: no cache.",
    )
    # The route's own retries on each target, over its providers' (`retry` in the config);
    # each one left empty is the provider's own.
    retry_max_attempts = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[RangeValidator(1, 10)],
        help_text="Attempts per target on this route, the first included. Empty: each provider's own.",
    )
    retry_base_delay_s = models.FloatField(
        null=True,
        blank=True,
        validators=[RangeValidator(0, 60)],
        help_text="First backoff bound between attempts on a target. Empty: each provider's own.",
    )
    retry_max_delay_s = models.FloatField(
        null=True,
        blank=True,
        validators=[RangeValidator(0, 300, low_inclusive=False)],
        help_text="Largest backoff between attempts on a target. Empty: each provider's own.",
    )
    enabled = models.BooleanField(default=True)
    description = models.CharField(max_length=200, blank=True)
    is_demo = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = RouteQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        base, cap = self.retry_base_delay_s, self.retry_max_delay_s
        if base is not None and cap is not None and cap < base:
            raise ValidationError({"retry_max_delay_s": "must be >= retry base_delay_s"})


class RouteTarget(models.Model):
    route = models.ForeignKey(Route, on_delete=models.CASCADE, related_name="targets")
    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="route_targets")
    model = models.CharField(max_length=200, blank=True, help_text="Empty: the provider's first model.")
    position = models.PositiveSmallIntegerField(default=0)
    weight = models.FloatField(
        null=True,
        blank=True,
        validators=[RangeValidator(0, 1000, low_inclusive=False)],
        help_text="Empty: the provider's weight.",
    )

    class Meta:
        ordering = ["route", "position", "id"]

    def __str__(self) -> str:
        return f"{self.provider.name}/{self.model}" if self.model else self.provider.name


class Scope(models.TextChoices):
    GATEWAY = "gateway"
    READ = "read"
    ADMIN = "admin"


KEY_PREFIX = "gw_"


def hash_key(key: str) -> str:
    # Keys carry 256 random bits, so a fast hash cannot be brute-forced; a slow KDF would
    # only add latency to every gateway call.
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def active(self) -> ApiKeyQuerySet:
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).exclude(expires_at__lte=now)


class BudgetPeriod(models.TextChoices):
    """A budget's period: a UTC calendar day, ISO week (from Monday) or month."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"


MAX_KEY_ROUTES = 100
MAX_BUDGET = 1_000_000_000  # in the price currency, per period


def validate_key_routes(value: object) -> None:
    """The routes a key may use: a list of distinct names (route names, or `provider/model`
    as a caller may name one); an empty list allows every route."""
    if not isinstance(value, list):
        raise ValidationError("must be a list of route names", code="routes")
    if len(value) > MAX_KEY_ROUTES:
        raise ValidationError(f"must name at most {MAX_KEY_ROUTES} routes", code="routes")
    for name in value:
        problem = name_problem(name, max_length=200)
        if problem is None and "," in name:
            problem = "must not contain ','"
        if problem:
            raise ValidationError(
                f"{name!r}: {problem}" if isinstance(name, str) else f"each name {problem}", code="routes"
            )
    if len(set(value)) != len(value):
        raise ValidationError("names a route twice", code="routes")


class ApiKey(models.Model):
    """An application's key. Only its SHA-256 and a visible prefix are stored.

    Its limits (all optional, enforced per request by providers/keys.py): the routes it may
    use, requests and tokens per minute, and a budget per calendar period (UTC) in the
    currency of the configured prices; what it spent is kept per day in `KeySpend`.
    """

    name = models.CharField(max_length=100, unique=True)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    scopes = models.JSONField(default=list)
    routes = models.JSONField(
        default=list,
        blank=True,
        validators=[validate_key_routes],
        help_text="Route names this key may use; empty: every route.",
    )
    rate_limit_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[RangeValidator(1, 10_000_000)],
        help_text="Requests per minute; empty: no limit.",
    )
    tokens_per_minute = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        validators=[RangeValidator(1, 10**12)],
        help_text="Tokens (in + out) per minute; empty: no limit.",
    )
    budget = models.DecimalField(
        max_digits=14,
        decimal_places=4,
        null=True,
        blank=True,
        validators=[RangeValidator(0, MAX_BUDGET)],
        help_text="Spend allowed per period, in the prices' currency; empty: no budget.",
    )
    budget_period = models.CharField(max_length=8, choices=BudgetPeriod.choices, default=BudgetPeriod.MONTH)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def clean(self) -> None:
        if not isinstance(self.scopes, list) or not self.scopes or any(s not in Scope.values for s in self.scopes):
            raise ValidationError({"scopes": f"must be a non-empty list of: {', '.join(Scope.values)}"})

    @classmethod
    def issue(cls, name: str, scopes: list[str], **fields: object) -> tuple[ApiKey, str]:
        """Create a key; returns the row and the clear key, which is never stored."""
        ident = pysecrets.token_hex(4)
        key = f"{KEY_PREFIX}{ident}_{pysecrets.token_urlsafe(32)}"
        row = cls(name=name, scopes=scopes, prefix=f"{KEY_PREFIX}{ident}", key_hash=hash_key(key), **fields)
        row.full_clean()
        row.save()
        return row, key

    def has_scope(self, scope: str) -> bool:
        # admin implies read: whoever may change the configuration may read it
        return scope in self.scopes or (scope == Scope.READ and Scope.ADMIN in self.scopes)


class KeySpend(models.Model):
    """What one API key used on one UTC day: the sum of its requests' cost (as the request log
    has it), their count and tokens. Written in batches by providers/keys.py; a period's spend
    is the sum of its days (and seeds the shared counter when Redis has none)."""

    key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="spend")
    day = models.DateField()
    spend = models.DecimalField(max_digits=20, decimal_places=8, default=Decimal(0))
    requests = models.PositiveBigIntegerField(default=0)
    tokens_in = models.PositiveBigIntegerField(default=0)
    tokens_out = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["key", "-day"]
        constraints = [models.UniqueConstraint(fields=["key", "day"], name="keyspend_key_day")]

    def __str__(self) -> str:
        return f"{self.key_id} {self.day}: {self.spend}"


class AuditLog(models.Model):
    """Who changed what and when. Secret values never appear: only their masked form."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.CharField(max_length=150)
    action = models.CharField(max_length=40)
    object_type = models.CharField(max_length=40)
    object_name = models.CharField(max_length=200)
    changes = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.object_type} {self.object_name}"


class ConfigState(models.Model):
    """One row: a number bumped by every configuration change, polled by running processes."""

    version = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"config version {self.version}"

    @classmethod
    def bump(cls) -> None:
        updated = cls.objects.filter(pk=1).update(version=F("version") + 1, updated_at=timezone.now())
        if not updated:
            cls.objects.get_or_create(pk=1, defaults={"version": 1})

    @classmethod
    def current(cls) -> int:
        row = cls.objects.filter(pk=1).values_list("version", flat=True).first()
        return row or 0

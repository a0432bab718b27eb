"""An immutable picture of the configuration, built from the database in one go.

The gateway's hot path reads only this: routes already turned into engine policies and
targets, providers with their decrypted credentials, API keys by hash. A running process
builds a new snapshot when `ConfigState.version` moves (or a maintenance window opens or
closes) and swaps it in with one assignment, so a request never sees half a change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.utils import timezone
from django.utils.crypto import salted_hmac

from .adapters import Price, ProviderConfig
from .engine import (
    BreakerPolicy,
    HedgePolicy,
    RetryPolicy,
    RoutePolicy,
    TargetSpec,
    attempt_timeout_for,
    breaker_timeout_for,
    first_byte_timeout_for,
    modality_for,
)
from .models import (
    ApiKey,
    ConfigState,
    MaintenanceWindow,
    Provider,
    ProviderModel,
    Route,
)

STREAM_IDLE_TIMEOUT_S = 30.0  # between two chunks of a stream (resilience.md §6)
CAPABILITY_MODELS_HINT = {
    "embeddings": ("embed",),
    "image": ("image", "dall", "diffusion", "flux", "sd"),
    "tts": ("tts", "speech", "eleven"),
    "stt": ("whisper", "transcri"),
}


class ResolveError(Exception):
    """`model` names nothing the gateway can route; `status` and `code` say how to answer."""

    def __init__(self, message: str, *, status: int = 404, code: str = "model_not_found") -> None:
        self.status = status
        self.code = code
        super().__init__(message)


@dataclass(frozen=True)
class ProviderEntry:
    name: str
    kind: str
    enabled: bool
    maintenance: bool
    capabilities: tuple[str, ...]
    models: tuple[str, ...]  # configured first, then discovered
    model_capabilities: Mapping[str, tuple[str, ...]]
    prices: Mapping[str, Price]
    config: ProviderConfig  # without a key; see `credentials`
    credentials: tuple[tuple[str, str | None], ...]  # (credential id, clear key)
    priority: int
    weight: float
    timeout_s: float | None
    retry: RetryPolicy
    breaker: BreakerPolicy  # resolved against the primary timeout: one policy per breaker
    breaker_mode: str
    max_concurrent: int
    is_demo: bool
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    cache_ttl_s: float | None = None  # response cache; None or 0: none
    # flap damping (health/scores.py `Damping`); None: the global HEALTH_FLAP_CHECKS / _SECONDS
    flap_checks: int | None = None
    flap_seconds: float | None = None
    base_url: str = ""  # as configured: a URL, env:NAME or empty (config.base_url is what is called)
    # Why the provider cannot be called (an env: base URL unset or refused); its targets are
    # skipped with this reason and its probes fail with it.
    problem: str = ""

    def default_model(self, capability: str) -> str:
        for name in self.models:
            if capability in self.model_capabilities.get(name, ()):
                return name
        hints = CAPABILITY_MODELS_HINT.get(capability)
        if hints:
            for name in self.models:
                if any(h in name.lower() for h in hints):
                    return name
        return self.models[0] if self.models else ""

    def price(self, model: str) -> Price | None:
        """The model's prices as charged; None when none is known."""
        return self.prices.get(model)

    def target(
        self, model: str, capability: str, *, priority: int, weight: float | None = None, caller_named: bool = False
    ) -> TargetSpec:
        return TargetSpec(
            provider=self.name,
            model=model,
            breaker_key=self.name,
            credentials=tuple(cid for cid, _ in self.credentials),
            credential_versions=tuple(_fingerprint(key) for _, key in self.credentials),
            priority=priority,
            weight=weight if weight is not None else self.weight,
            cost=price_rank(self.prices.get(model)),  # None: unknown, ranked last by the cost strategy
            enabled=self.enabled,
            maintenance=self.maintenance,
            # Both from the one capability table, or the provider's own timeout_s when set.
            attempt_timeout_s=attempt_timeout_for(capability, self.timeout_s),
            first_byte_timeout_s=first_byte_timeout_for(capability, self.timeout_s),
            retry=self.retry,
            breaker=self.breaker,
            max_concurrent=self.max_concurrent,
            rotate_credentials=len(self.credentials) > 1,
            capability=capability,
            requests_per_minute=self.requests_per_minute,
            tokens_per_minute=self.tokens_per_minute,
            caller_named=caller_named,
            problem=self.problem,
        )


def price_rank(price: Price | None) -> float | None:
    """What the cost strategy ranks a model by: its known prices summed, each unit weighted
    so that a thousand images, characters or minutes weigh as a million tokens; None when
    no price of the model is known (it sorts after every priced target, not as free)."""
    if price is None:
        return None
    weighted = (
        (price.input_per_mtok, 1),
        (price.output_per_mtok, 1),
        (price.per_image, 1000),
        (price.per_kchar, 1000),
        (price.per_minute, 1000),
    )
    known = [value * weight for value, weight in weighted if value is not None]
    return float(sum(known)) if known else None


def _fingerprint(key: str | None) -> str:
    """A short keyed digest of a credential's clear value: it changes when the configuration
    changes the key (so a `rejected` key is tried again) and reveals nothing of it."""
    return "" if key is None else salted_hmac("providers.credential-version", key).hexdigest()[:16]


@dataclass(frozen=True)
class RouteEntry:
    policy: RoutePolicy
    targets: tuple[TargetSpec, ...]
    enabled: bool
    cache_ttl_s: float | None = None  # the route's own; None: its first target's provider's


@dataclass(frozen=True)
class KeyEntry:
    """An API key as the gateway checks it on each request (providers/keys.py enforces the
    limits: `routes` empty allows every route; None: no limit)."""

    id: int
    name: str
    prefix: str
    scopes: frozenset[str]
    rate_limit_per_minute: int | None  # requests per minute
    expires_at: datetime | None
    routes: frozenset[str] = frozenset()
    tokens_per_minute: int | None = None
    budget: Decimal | None = None  # per `budget_period`, in the prices' currency
    budget_period: str = "month"  # day | week | month (UTC calendar periods)

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes or (scope == "read" and "admin" in self.scopes)

    @property
    def limited(self) -> bool:
        """Whether any limit applies (a key with none costs the hot path nothing)."""
        return (
            bool(self.routes)
            or self.rate_limit_per_minute is not None
            or self.tokens_per_minute is not None
            or self.budget is not None
        )


@dataclass(frozen=True)
class Snapshot:
    version: int
    providers: Mapping[str, ProviderEntry]
    routes: Mapping[str, RouteEntry]
    keys: Mapping[str, KeyEntry]  # by key hash
    next_change_at: datetime | None = None  # a maintenance window opens or closes
    errors: tuple[str, ...] = field(default=())

    def resolve(self, model: str, capability: str) -> tuple[RoutePolicy, tuple[TargetSpec, ...]]:
        """The route (or one provider's model) that `model` names, for `capability`."""
        if not model or not isinstance(model, str):
            raise ResolveError(
                "`model` is required: a route name or provider/model", status=400, code="invalid_request"
            )
        route = self.routes.get(model)
        if route is not None:
            if not route.enabled:
                raise ResolveError(f"route {model!r} is disabled", status=404)
            if route.policy.capability != capability:
                raise ResolveError(
                    f"route {model!r} serves {route.policy.capability}, not {capability}",
                    status=400,
                    code="wrong_capability",
                )
            return route.policy, route.targets
        provider_name, slash, upstream_model = model.partition("/")
        if slash:
            provider = self.providers.get(provider_name)
            if provider is None:
                raise ResolveError(f"no route or provider named {provider_name!r}")
            if capability not in provider.capabilities:
                raise ResolveError(
                    f"provider {provider_name!r} does not offer {capability}", status=400, code="wrong_capability"
                )
            # Named by the caller: a 404 for its model is the caller's answer, not a route to fix.
            target = provider.target(
                upstream_model or provider.default_model(capability), capability, priority=0, caller_named=True
            )
            return self._single_route(model, capability, provider, target), (target,)
        # A bare upstream model name: every provider that lists it, by priority.
        owners = sorted(
            (p for p in self.providers.values() if model in p.models and capability in p.capabilities),
            key=lambda p: (p.priority, p.name),
        )
        if owners:
            targets = tuple(p.target(model, capability, priority=i) for i, p in enumerate(owners))
            return RoutePolicy(
                name=model, capability=capability, max_attempts=3, deadline_s=default_deadline(capability, targets)
            ), targets
        raise ResolveError(f"no route, provider/model or known model named {model!r}")

    def cache_ttl(self, model: str, targets: tuple[TargetSpec, ...]) -> float | None:
        """How long answers to `model` (resolved to `targets`) are kept by the response cache:
        the route's own setting, else its first target's provider's; None: not cached."""
        route = self.routes.get(model)
        ttl = route.cache_ttl_s if route is not None else None
        if ttl is None and targets:
            provider = self.providers.get(targets[0].provider)
            ttl = provider.cache_ttl_s if provider is not None else None
        return ttl if ttl else None

    @staticmethod
    def _single_route(name: str, capability: str, provider: ProviderEntry, target: TargetSpec) -> RoutePolicy:
        return RoutePolicy(
            name=name,
            capability=capability,
            max_attempts=provider.retry.max_attempts,
            deadline_s=default_deadline(capability, (target,)),
        )


def default_deadline(capability: str, targets: tuple[TargetSpec, ...] | list[TargetSpec]) -> float:
    """A route's deadline when none is set: the capability's, stretched to one full attempt
    of its slowest target, so a provider given a long `timeout_s` (a slow local model) is
    not cut short by a default it never chose."""
    longest = max((t.attempt_timeout_s for t in targets), default=0.0)
    return max(modality_for(capability).deadline_s, longest + 1.0)


def _price(row: ProviderModel) -> Price | None:
    """The row's prices as charged (the operator's, else the published ones); None when
    none is known."""
    prices = row.prices()
    price = Price(
        input_per_mtok=prices["input_price_per_mtok"],
        output_per_mtok=prices["output_price_per_mtok"],
        per_image=prices["price_per_image"],
        per_kchar=prices["price_per_kchar"],
        per_minute=prices["price_per_minute"],
    )
    return price if price.known else None


def _provider_entry(
    provider: Provider, now: datetime, windows: list[MaintenanceWindow], route_attempts: int = 0
) -> ProviderEntry:
    """The provider as the hot path reads it. `route_attempts`: the most attempts per target
    a route calling it sets (its retry budget's floor leaves a request those retries)."""
    credentials: list[tuple[str, str | None]] = []
    for secret in provider.secrets.all():
        if secret.enabled:
            credentials.append((str(secret.pk), secret.value()))
    catalog = list(provider.catalog.all())
    names = list(dict.fromkeys([*provider.configured_models, *(m.name for m in catalog)]))
    capabilities = provider.effective_capabilities
    # One breaker serves every capability of the provider: it is sized for the longest
    # attempt among them, so its half-open reservation outlasts any call it admits.
    primary = breaker_timeout_for(capabilities or ["chat"], provider.timeout_s)
    breaker = BreakerPolicy.for_modality(
        modality_for(capabilities[0] if capabilities else "chat"),
        window_s=provider.breaker_window_s,  # None: max(60 s, 2 x the timeout above)
        min_calls=provider.breaker_min_calls,
        failure_rate=provider.breaker_failure_rate,
        consecutive_failures=provider.breaker_consecutive_failures,
        break_s=provider.breaker_break_s,
        max_break_s=provider.breaker_max_break_s,
        half_open_probes=provider.breaker_half_open_probes,
    ).resolve(primary)
    base_url, problem = provider.resolved_base_url()
    return ProviderEntry(
        name=provider.name,
        kind=provider.kind,
        enabled=provider.enabled,
        maintenance=any(w.starts_at <= now < w.ends_at for w in windows),
        capabilities=tuple(capabilities),
        models=tuple(names),
        model_capabilities={m.name: tuple(m.capabilities) for m in catalog if m.capabilities},
        prices={m.name: price for m in catalog if (price := _price(m)) is not None},
        config=ProviderConfig(
            name=provider.name,
            kind=provider.kind,
            base_url=base_url,
            api_key=None,
            timeout_s=attempt_timeout_for(capabilities[0] if capabilities else "chat", provider.timeout_s),
            # httpx's read timeout also bounds the wait for a stream's first chunk: it must not
            # cut a slow model before the first-byte timeout (timeout_s) does.
            stream_idle_timeout_s=max(STREAM_IDLE_TIMEOUT_S, provider.timeout_s or 0.0),
            options=dict(provider.options),
        ),
        credentials=tuple(credentials),
        priority=provider.priority,
        weight=provider.weight,
        timeout_s=provider.timeout_s,
        retry=RetryPolicy(
            max_attempts=provider.retry_max_attempts,
            base_delay_s=provider.retry_base_delay_s,
            max_delay_s=provider.retry_max_delay_s,
            # The budget's floor (resilience.md §4: max(3, 10 %)) must leave one request the
            # retries its provider is set to, or `retry.max_attempts` above 4 could never
            # happen; the 10 % rule still caps what many requests add.
            budget_min_retries=max(3, provider.retry_max_attempts - 1, route_attempts - 1),
        ),
        breaker=breaker,
        breaker_mode=provider.breaker_mode,
        max_concurrent=provider.max_concurrent,
        is_demo=provider.is_demo,
        requests_per_minute=provider.limit_requests_per_minute,
        tokens_per_minute=provider.limit_tokens_per_minute,
        cache_ttl_s=provider.cache_ttl_s,
        flap_checks=provider.health_flap_checks,
        flap_seconds=provider.health_flap_seconds,
        base_url=provider.base_url,
        problem=problem,
    )


def _route_entry(route: Route, providers: Mapping[str, ProviderEntry]) -> RouteEntry:
    targets = []
    for position, row in enumerate(route.targets.all()):
        entry = providers.get(row.provider.name)
        if entry is None:
            continue
        model = row.model or entry.default_model(route.capability)
        targets.append(entry.target(model, route.capability, priority=position, weight=row.weight))
    hedge = HedgePolicy(delay_s=route.hedge_delay_s or 1.0) if route.hedge else None
    if route.hedge and route.hedge_delay_s:
        hedge = HedgePolicy(delay_s=route.hedge_delay_s, min_samples=10**9)  # fixed delay
    policy = RoutePolicy(
        name=route.name,
        capability=route.capability,
        strategy=route.strategy,
        max_attempts=route.max_attempts,
        hedge=hedge,
        deadline_s=route.deadline_s or default_deadline(route.capability, targets),
        retry_max_attempts=route.retry_max_attempts,
        retry_base_delay_s=route.retry_base_delay_s,
        retry_max_delay_s=route.retry_max_delay_s,
    )
    # The route's retries are put on its targets once, here: the engine reads `target.retry`.
    return RouteEntry(
        policy=policy,
        targets=tuple(policy.target_for(t) for t in targets),
        enabled=route.enabled,
        cache_ttl_s=route.cache_ttl_s,
    )


def load_snapshot() -> Snapshot:
    """Read the whole configuration (a handful of queries) into a Snapshot. Sync: call it
    through `sync_to_async` from async code."""
    version = ConfigState.current()
    now = timezone.now()
    windows: dict[int, list[MaintenanceWindow]] = {}
    boundaries: list[datetime] = []
    for window in MaintenanceWindow.objects.filter(ends_at__gt=now):
        windows.setdefault(window.provider_id, []).append(window)
        boundaries.extend(t for t in (window.starts_at, window.ends_at) if t > now)
    route_rows = list(Route.objects.with_targets())
    route_attempts: dict[int, int] = {}  # by provider id: the most attempts a route gives it
    for route in route_rows:
        attempts = route.retry_max_attempts or 0
        for row in route.targets.all() if attempts else ():
            route_attempts[row.provider_id] = max(route_attempts.get(row.provider_id, 0), attempts)
    providers: dict[str, ProviderEntry] = {}
    errors: list[str] = []
    for provider in Provider.objects.prefetch_related("secrets", "catalog"):
        try:
            providers[provider.name] = _provider_entry(
                provider, now, windows.get(provider.pk, []), route_attempts.get(provider.pk, 0)
            )
        except Exception as exc:  # one unreadable provider (a lost key) must not stop the rest
            errors.append(f"provider {provider.name}: {exc}")
    routes = {route.name: _route_entry(route, providers) for route in route_rows}
    keys = {
        k.key_hash: KeyEntry(
            id=k.pk,
            name=k.name,
            prefix=k.prefix,
            scopes=frozenset(k.scopes),
            rate_limit_per_minute=k.rate_limit_per_minute,
            expires_at=k.expires_at,
            routes=frozenset(k.routes or ()),
            tokens_per_minute=k.tokens_per_minute,
            budget=k.budget,
            budget_period=k.budget_period,
        )
        for k in ApiKey.objects.active()
    }
    return Snapshot(
        version=version,
        providers=providers,
        routes=routes,
        keys=keys,
        next_change_at=min(boundaries, default=None),
        errors=tuple(errors),
    )

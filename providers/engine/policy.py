"""Policies: frozen settings for one target and one route, with resilience.md §10's defaults.

Nothing here keeps state. `validate()` applies §6's start-up checks (attempt timeout ≤ total
timeout, breaker window ≥ 2 x attempt timeout, probe TTL > attempt timeout) and plain range
checks, raising `ValueError` that names the offending field, so a bad setting is refused when it
is saved rather than discovered during an incident.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

STRATEGIES = ("priority", "round_robin", "weighted", "least_latency", "health_score", "random", "cost")


PROBE_TTL_MARGIN_S = 5.0  # probe_ttl = attempt timeout + this (resilience.md §3)


@dataclass(frozen=True, slots=True)
class Modality:
    """One capability's defaults: timeouts and thresholds (resilience.md §3, §6, §10).

    `probe_ttl_s` (a half-open reservation) is derived, attempt timeout + 5 s, so the
    reservation always outlasts the attempt it admits. `CAPABILITY_DEFAULTS` below is the
    only table of these numbers: the snapshot, the models and the monitor read it.
    """

    name: str
    attempt_timeout_s: float
    first_byte_timeout_s: float | None  # streaming time to first byte; None: attempt timeout
    slow_call_s: float
    deadline_s: float

    @property
    def probe_ttl_s(self) -> float:
        return self.attempt_timeout_s + PROBE_TTL_MARGIN_S

    def validate(self) -> None:
        owner = f"capability {self.name}"
        _require(self.attempt_timeout_s > 0, owner, "attempt_timeout_s", "must be positive")
        if self.first_byte_timeout_s is not None:
            _require(
                0 < self.first_byte_timeout_s <= self.attempt_timeout_s,
                owner,
                "first_byte_timeout_s",
                "must be within (0, attempt_timeout_s]",
            )
        _require(
            0 < self.slow_call_s < self.attempt_timeout_s,
            owner,
            "slow_call_s",
            "must be below the attempt timeout (a slow call can still succeed)",
        )
        _require(self.deadline_s >= self.attempt_timeout_s, owner, "deadline_s", "must be ≥ attempt_timeout_s")
        _require(self.probe_ttl_s > self.attempt_timeout_s, owner, "probe_ttl_s", "must be > attempt_timeout_s")


LLM = Modality("chat", attempt_timeout_s=30.0, first_byte_timeout_s=20.0, slow_call_s=10.0, deadline_s=60.0)
TTS = Modality("tts", attempt_timeout_s=10.0, first_byte_timeout_s=None, slow_call_s=5.0, deadline_s=20.0)
IMAGE = Modality("image", attempt_timeout_s=120.0, first_byte_timeout_s=None, slow_call_s=60.0, deadline_s=180.0)

# The one table of per-capability defaults. Each deadline allows one full attempt and a
# fallback (§6). Speech to text reads a whole recording (60 s); a translation is one short
# request (10 s); a video is composed like an image.
CAPABILITY_DEFAULTS: dict[str, Modality] = {
    "chat": LLM,
    "embeddings": Modality(
        "embeddings", attempt_timeout_s=30.0, first_byte_timeout_s=None, slow_call_s=10.0, deadline_s=60.0
    ),
    "tts": TTS,
    "stt": Modality("stt", attempt_timeout_s=60.0, first_byte_timeout_s=None, slow_call_s=30.0, deadline_s=120.0),
    "image": IMAGE,
    "translation": Modality(
        "translation", attempt_timeout_s=10.0, first_byte_timeout_s=None, slow_call_s=5.0, deadline_s=20.0
    ),
    "video": Modality("video", attempt_timeout_s=120.0, first_byte_timeout_s=None, slow_call_s=60.0, deadline_s=180.0),
}


def modality_for(capability: str) -> Modality:
    """The defaults of `capability` (an unknown one gets chat's)."""
    return CAPABILITY_DEFAULTS.get(capability, LLM)


def attempt_timeout_for(capability: str, timeout_s: float | None = None) -> float:
    """A provider's attempt timeout for `capability`: its own `timeout_s` when set."""
    return timeout_s or modality_for(capability).attempt_timeout_s


def first_byte_timeout_for(capability: str, timeout_s: float | None = None) -> float | None:
    """Time to a stream's first byte: the provider's `timeout_s` when set (an operator who
    gives a slow local model 120 s means it for streams too), else the capability's default."""
    if timeout_s:
        return timeout_s
    return modality_for(capability).first_byte_timeout_s


def breaker_timeout_for(capabilities: tuple[str, ...] | list[str], timeout_s: float | None = None) -> float:
    """The attempt timeout one provider's breaker is sized for: the longest of its
    capabilities', since its half-open reservation must outlast any attempt it admits."""
    return max(
        (attempt_timeout_for(c, timeout_s) for c in capabilities), default=attempt_timeout_for("chat", timeout_s)
    )


def _require(ok: bool, owner: str, name: str, why: str) -> None:
    if not ok:
        raise ValueError(f"{owner}.{name}: {why}")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries on one target, Retry-After handling, cooldowns, retry budget and throttling."""

    max_attempts: int = 2  # on this target per request, the first included (1 = no retry)
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    max_retry_after_s: float = 20.0  # wait longer than this? cool down and fall back instead
    discard_retry_after_s: float = 300.0  # a header above this is implausible and ignored
    retry_after_jitter: float = 0.2  # wait d x U(1, 1 + jitter)
    default_cooldown_s: float = 60.0  # a 429 with no usable header
    exhausted_cooldown_s: float | None = None  # None: until the provider's reset or an operator
    model_missing_ttl_s: float = 300.0  # a route's model the provider does not have (404)
    budget_ratio: float = 0.1  # retries ≤ max(budget_min_retries, ratio x first attempts)
    budget_min_retries: int = 3
    budget_window_s: float = 10.0
    throttle: bool = True  # adaptive throttling (SRE eq. 21-1) on 429/529
    throttle_k: float = 2.0
    throttle_window_s: float = 120.0

    def validate(self) -> None:
        owner = "retry"
        _require(self.max_attempts >= 1, owner, "max_attempts", "must be at least 1")
        _require(self.base_delay_s >= 0, owner, "base_delay_s", "must not be negative")
        _require(self.max_delay_s >= self.base_delay_s, owner, "max_delay_s", "must be ≥ base_delay_s")
        _require(self.max_retry_after_s >= 0, owner, "max_retry_after_s", "must not be negative")
        _require(
            self.discard_retry_after_s >= self.max_retry_after_s,
            owner,
            "discard_retry_after_s",
            "must be ≥ max_retry_after_s",
        )
        _require(self.retry_after_jitter >= 0, owner, "retry_after_jitter", "must not be negative")
        _require(self.default_cooldown_s > 0, owner, "default_cooldown_s", "must be positive")
        _require(self.model_missing_ttl_s > 0, owner, "model_missing_ttl_s", "must be positive")
        _require(0 <= self.budget_ratio <= 1, owner, "budget_ratio", "must be within [0, 1]")
        _require(self.budget_min_retries >= 0, owner, "budget_min_retries", "must not be negative")
        _require(self.budget_window_s > 0, owner, "budget_window_s", "must be positive")
        _require(self.throttle_k >= 1, owner, "throttle_k", "must be ≥ 1")
        _require(self.throttle_window_s > 0, owner, "throttle_window_s", "must be positive")


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """One circuit breaker's thresholds (§3). `None` fields are derived from the attempt timeout
    by `resolve()`: window max(60 s, 2 x timeout), probe TTL timeout + 5 s, max half-open 2 x TTL."""

    window_s: float | None = None
    buckets: int = 12
    min_calls: int = 10
    failure_rate: float = 0.5  # trips at ≥
    slow_call_rate: float = 0.8  # trips at ≥
    slow_call_s: float = LLM.slow_call_s  # slow means strictly greater
    consecutive_failures: int = 5  # 0 turns the rule off
    break_s: float = 30.0
    max_break_s: float = 300.0
    half_open_probes: int = 3
    probe_ttl_s: float | None = None
    max_half_open_s: float | None = None
    jitter: float = 0.2  # break x U(1, 1 + jitter)

    @classmethod
    def for_modality(cls, modality: Modality, **overrides: Any) -> BreakerPolicy:
        return cls(slow_call_s=modality.slow_call_s, **overrides)

    def resolve(self, attempt_timeout_s: float) -> BreakerPolicy:
        """This policy with every derived field filled in for `attempt_timeout_s`."""
        probe_ttl = self.probe_ttl_s if self.probe_ttl_s is not None else attempt_timeout_s + PROBE_TTL_MARGIN_S
        return replace(
            self,
            window_s=self.window_s if self.window_s is not None else max(60.0, 2 * attempt_timeout_s),
            probe_ttl_s=probe_ttl,
            max_half_open_s=self.max_half_open_s if self.max_half_open_s is not None else 2 * probe_ttl,
        )

    @property
    def resolved(self) -> bool:
        return None not in (self.window_s, self.probe_ttl_s, self.max_half_open_s)

    def validate(self, attempt_timeout_s: float | None = None) -> None:
        owner = "breaker"
        _require(self.buckets >= 1, owner, "buckets", "must be at least 1")
        _require(self.min_calls >= 1, owner, "min_calls", "must be at least 1")
        _require(0 < self.failure_rate <= 1, owner, "failure_rate", "must be within (0, 1]")
        _require(0 < self.slow_call_rate <= 1, owner, "slow_call_rate", "must be within (0, 1]")
        _require(self.slow_call_s > 0, owner, "slow_call_s", "must be positive")
        _require(self.consecutive_failures >= 0, owner, "consecutive_failures", "must not be negative")
        _require(self.break_s > 0, owner, "break_s", "must be positive")
        _require(self.max_break_s >= self.break_s, owner, "max_break_s", "must be ≥ break_s")
        _require(self.half_open_probes >= 1, owner, "half_open_probes", "must be at least 1")
        _require(self.jitter >= 0, owner, "jitter", "must not be negative")
        if self.window_s is not None:
            _require(self.window_s > 0, owner, "window_s", "must be positive")
        if attempt_timeout_s is None:
            return
        p = self.resolve(attempt_timeout_s)
        assert p.window_s is not None and p.probe_ttl_s is not None and p.max_half_open_s is not None
        _require(
            p.window_s >= 2 * attempt_timeout_s,
            owner,
            "window_s",
            f"{p.window_s:g}s must be ≥ 2 x attempt timeout ({2 * attempt_timeout_s:g}s)",
        )
        _require(
            p.probe_ttl_s > attempt_timeout_s,
            owner,
            "probe_ttl_s",
            f"{p.probe_ttl_s:g}s must be > attempt timeout ({attempt_timeout_s:g}s)",
        )
        _require(p.max_half_open_s >= p.probe_ttl_s, owner, "max_half_open_s", "must be ≥ probe_ttl_s")


@dataclass(frozen=True, slots=True)
class HedgePolicy:
    """Opt-in hedging (§5): one extra call to a different target after an adaptive delay."""

    delay_s: float = 1.0  # used until `min_samples` latencies exist for the primary
    min_delay_s: float = 0.25
    max_delay_s: float = 5.0
    min_samples: int = 20
    percentile: float = 0.95
    max_hedges: int = 1
    cancel_grace_s: float = 0.1  # how long to wait for a cancelled loser

    def validate(self) -> None:
        owner = "hedge"
        _require(self.delay_s >= 0, owner, "delay_s", "must not be negative")
        _require(0 <= self.min_delay_s <= self.max_delay_s, owner, "min_delay_s", "must be ≤ max_delay_s")
        _require(self.min_samples >= 1, owner, "min_samples", "must be at least 1")
        _require(0 < self.percentile <= 1, owner, "percentile", "must be within (0, 1]")
        _require(self.max_hedges == 1, owner, "max_hedges", "only 1 hedge is supported")
        _require(self.cancel_grace_s >= 0, owner, "cancel_grace_s", "must not be negative")


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """One (provider, model) a route may call, with its resilience settings.

    `breaker_key` names the breaker, cooldowns, bulkhead and budget this target shares with
    others (default: the provider). The breaker policy is resolved against the attempt timeout
    on construction, so `target.breaker.window_s` is always a number.
    """

    provider: str
    model: str
    breaker_key: str = ""
    credentials: tuple[str, ...] = ()
    priority: int = 0
    weight: float = 1.0
    # What the cost strategy ranks by (a price of 0 is free); None: the price is unknown, and
    # the target sorts after every priced one (strategies.cost_rank).
    cost: float | None = 0.0
    enabled: bool = True
    maintenance: bool = False
    attempt_timeout_s: float = LLM.attempt_timeout_s
    first_byte_timeout_s: float | None = LLM.first_byte_timeout_s
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    max_concurrent: int = 32
    rotate_credentials: bool = False
    capability: str = "chat"
    min_useful_s: float | None = None  # None: this target's p50 latency, or 1 s without data
    requests_per_minute: int | None = None  # skipped ("limit") rather than sent past these
    tokens_per_minute: int | None = None
    # The caller named this target itself (`provider/model`): a 404 is then the caller's
    # answer; for a target the route chose, it means the route is misconfigured (§2).
    caller_named: bool = False
    # Rate limits and a missing model hold for one model family, not the whole provider
    # (resilience.md §1); default: the model's name.
    model_family: str = ""
    # A fingerprint per credential (aligned with `credentials`): a credential rejected with
    # 401/403 stays set aside only while its fingerprint is the same, so editing the key in
    # the configuration brings it back at once.
    credential_versions: tuple[str, ...] = ()
    # Why the target cannot be called at all, when it cannot (its provider's configuration is
    # unusable: an `env:` base URL that is unset or refused); skipped as "misconfigured".
    problem: str = ""

    def __post_init__(self) -> None:
        if not self.breaker_key:
            object.__setattr__(self, "breaker_key", self.provider)
        if not self.model_family:
            object.__setattr__(self, "model_family", self.model)
        if not isinstance(self.credential_versions, tuple):
            object.__setattr__(self, "credential_versions", tuple(self.credential_versions))
        if not isinstance(self.credentials, tuple):
            object.__setattr__(self, "credentials", tuple(self.credentials))
        object.__setattr__(self, "breaker", self.breaker.resolve(self.attempt_timeout_s))

    @classmethod
    def for_modality(cls, modality: Modality, provider: str, model: str, **kw: Any) -> TargetSpec:
        breaker = kw.pop("breaker", None) or BreakerPolicy.for_modality(modality)
        kw.setdefault("capability", modality.name)
        return cls(
            provider,
            model,
            attempt_timeout_s=kw.pop("attempt_timeout_s", modality.attempt_timeout_s),
            first_byte_timeout_s=kw.pop("first_byte_timeout_s", modality.first_byte_timeout_s),
            breaker=breaker,
            **kw,
        )

    @classmethod
    def llm(cls, provider: str, model: str, **kw: Any) -> TargetSpec:
        """LLM defaults: attempt 30 s, streaming first byte 20 s, slow > 10 s."""
        return cls.for_modality(LLM, provider, model, **kw)

    @classmethod
    def tts(cls, provider: str, model: str, **kw: Any) -> TargetSpec:
        """Text-to-speech defaults: attempt 10 s, slow > 5 s."""
        return cls.for_modality(TTS, provider, model, **kw)

    @classmethod
    def image(cls, provider: str, model: str, **kw: Any) -> TargetSpec:
        """Image defaults: attempt 120 s, slow > 60 s (total)."""
        return cls.for_modality(IMAGE, provider, model, **kw)

    def credential_version(self, credential: str | None) -> str:
        """The fingerprint of `credential` ("" when unknown)."""
        if credential is None or not self.credential_versions:
            return ""
        try:
            return self.credential_versions[self.credentials.index(credential)]
        except (ValueError, IndexError):
            return ""

    def timeout_for(self, streaming: bool) -> float:
        if streaming and self.first_byte_timeout_s is not None:
            return self.first_byte_timeout_s
        return self.attempt_timeout_s

    def validate(self) -> None:
        owner = "target"
        _require(bool(self.provider), owner, "provider", "must not be empty")
        _require(self.attempt_timeout_s > 0, owner, "attempt_timeout_s", "must be positive")
        if self.first_byte_timeout_s is not None:
            _require(
                0 < self.first_byte_timeout_s <= self.attempt_timeout_s,
                owner,
                "first_byte_timeout_s",
                "must be within (0, attempt_timeout_s]",
            )
        _require(self.weight >= 0 and math.isfinite(self.weight), owner, "weight", "must be ≥ 0")
        _require(self.max_concurrent >= 1, owner, "max_concurrent", "must be at least 1")
        if self.min_useful_s is not None:
            _require(self.min_useful_s >= 0, owner, "min_useful_s", "must not be negative")
        _require(len(set(self.credentials)) == len(self.credentials), owner, "credentials", "has duplicates")
        _require(
            not self.credential_versions or len(self.credential_versions) == len(self.credentials),
            owner,
            "credential_versions",
            "must have one entry per credential",
        )
        self.retry.validate()
        self.breaker.validate(self.attempt_timeout_s)


def validate_capability_defaults() -> None:
    """The §6 start-up checks on every row of `CAPABILITY_DEFAULTS`, the derived breaker
    included (window ≥ 2 x attempt timeout, probe TTL > attempt timeout)."""
    for capability, modality in CAPABILITY_DEFAULTS.items():
        modality.validate()
        BreakerPolicy.for_modality(modality).validate(modality.attempt_timeout_s)
        _require(modality.name == capability, f"capability {capability}", "name", "must match its key")


validate_capability_defaults()  # a wrong table fails at import, not during an incident


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    """A named route: how to order its targets and how much one request may spend."""

    name: str
    capability: str = "chat"
    strategy: str = "priority"
    max_attempts: int = 3  # across the whole chain; skipped targets do not count
    deadline_s: float | None = None  # None: the capability's default (LLM 60, TTS 20, image 180)
    hedge: HedgePolicy | None = None
    # The route's own retries on each target, over each provider's `RetryPolicy` (None: the
    # provider's): attempts per target, the first included, and the backoff's bounds.
    retry_max_attempts: int | None = None
    retry_base_delay_s: float | None = None
    retry_max_delay_s: float | None = None

    def __post_init__(self) -> None:
        if self.deadline_s is None:
            object.__setattr__(self, "deadline_s", modality_for(self.capability).deadline_s)

    @property
    def overrides_retry(self) -> bool:
        return (self.retry_max_attempts, self.retry_base_delay_s, self.retry_max_delay_s) != (None, None, None)

    def retry_for(self, retry: RetryPolicy) -> RetryPolicy:
        """A provider's `retry` as this route uses it: the route's fields over it, the same
        object when nothing changes. A route's base delay above a provider's max delay (the
        route set only one of the two) raises that max to it. The retry budget's floor grows
        with the attempts, as for a provider's own: one request may always use the retries
        its route is set to."""
        attempts = retry.max_attempts if self.retry_max_attempts is None else self.retry_max_attempts
        base = retry.base_delay_s if self.retry_base_delay_s is None else self.retry_base_delay_s
        cap = max(retry.max_delay_s if self.retry_max_delay_s is None else self.retry_max_delay_s, base)
        floor = max(retry.budget_min_retries, attempts - 1)
        if (attempts, base, cap, floor) == (
            retry.max_attempts,
            retry.base_delay_s,
            retry.max_delay_s,
            retry.budget_min_retries,
        ):
            return retry
        return replace(retry, max_attempts=attempts, base_delay_s=base, max_delay_s=cap, budget_min_retries=floor)

    def target_for(self, target: TargetSpec) -> TargetSpec:
        """`target` as this route calls it: with the route's retries over its provider's. The
        same object when the route sets none or they are in place already, so a target built
        once (the gateway's configuration snapshot) keeps its identity from call to call."""
        if not self.overrides_retry:
            return target
        retry = self.retry_for(target.retry)
        return target if retry is target.retry else replace(target, retry=retry)

    @property
    def deadline(self) -> float:
        assert self.deadline_s is not None
        return self.deadline_s

    def validate(self, targets: tuple[TargetSpec, ...] | list[TargetSpec] = ()) -> None:
        """Check this route and, with `targets`, that each attempt fits in the deadline."""
        owner = "route"
        _require(bool(self.name), owner, "name", "must not be empty")
        _require(self.strategy in STRATEGIES, owner, "strategy", f"must be one of {', '.join(STRATEGIES)}")
        _require(self.max_attempts >= 1, owner, "max_attempts", "must be at least 1")
        _require(self.deadline > 0, owner, "deadline_s", "must be positive")
        if self.hedge is not None:
            self.hedge.validate()
        if self.retry_max_attempts is not None:
            _require(self.retry_max_attempts >= 1, owner, "retry_max_attempts", "must be at least 1")
        if self.retry_base_delay_s is not None:
            _require(self.retry_base_delay_s >= 0, owner, "retry_base_delay_s", "must not be negative")
        if self.retry_max_delay_s is not None:
            _require(self.retry_max_delay_s > 0, owner, "retry_max_delay_s", "must be positive")
            _require(
                self.retry_max_delay_s >= (self.retry_base_delay_s or 0.0),
                owner,
                "retry_max_delay_s",
                "must be ≥ retry_base_delay_s",
            )
        for target in targets:
            target.validate()
            _require(
                target.attempt_timeout_s <= self.deadline,
                owner,
                "deadline_s",
                f"{self.deadline:g}s is shorter than {target.provider}'s attempt timeout "
                f"({target.attempt_timeout_s:g}s)",
            )

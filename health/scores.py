"""Health score and status (resilience.md §9): pure functions, no I/O.

The score (0-100) is made of named parts so an operator can see why a provider sits at 62:
probe (last scheduled probe ok / slow / failed), latency (target p95 over observed p95) and
reliability (success rate of live calls and probes in the breaker's window), multiplied by
a state factor (closed 1, half-open 0.3, open / forced open / every credential set aside:
cooling down, exhausted or rejected, 0).

The status comes from the success rate over the same window: healthy above 90 %, degraded
from 70 % to 90 %, unhealthy below 70 %, unknown before any data; disabled and maintenance
are an operator's. Some facts decide it whatever the rate says (`fact`): a breaker forced
open, or every credential set aside, leaves the provider unavailable (unhealthy); an open
breaker makes it unhealthy too, and a credential the provider rejects while others still
serve makes a healthy provider degraded. A measured change needs the new status on
consecutive evaluations (`Damping`: HEALTH_FLAP_CHECKS of them, default `DEBOUNCE`, spanning
HEALTH_FLAP_SECONDS, default 0; a provider's `health_check.flap_checks` / `flap_seconds` over
them), so a provider whose rate hovers at a threshold does not flip at every evaluation; a fact
takes effect at once.
"""

from __future__ import annotations

from dataclasses import dataclass

DEBOUNCE = 2
STATE_FACTOR = {"closed": 1.0, "metrics_only": 1.0, "disabled": 1.0, "half_open": 0.3, "open": 0.0, "forced_open": 0.0}


@dataclass(frozen=True)
class Weights:
    probe: float = 40.0
    latency: float = 30.0
    reliability: float = 30.0


@dataclass(frozen=True)
class Inputs:
    """What one evaluation knows about a provider."""

    enabled: bool
    maintenance: bool
    breaker: str  # the breaker's state
    cooling: str | None  # "rate_limited" / "exhausted" / "rejected" when every credential is set aside
    probe: str | None  # "ok" | "slow" | "failed" | None (never probed)
    success_rate: float | None  # over the window, live calls and probes; None without calls
    calls: int
    p95_ms: float | None
    target_p95_ms: float
    cooling_reason: str = ""  # why every credential is set aside, for people
    rejected: str = ""  # credentials the provider refuses while others still serve, for people


@dataclass(frozen=True)
class Score:
    total: float | None
    parts: dict[str, float]


def score(inputs: Inputs, weights: Weights = Weights()) -> Score:
    if inputs.probe is None and inputs.success_rate is None:
        return Score(None, {})
    probe = {"ok": weights.probe, "slow": weights.probe / 2}.get(inputs.probe or "", 0.0)
    if inputs.p95_ms is None or inputs.p95_ms <= 0:
        latency = weights.latency if inputs.success_rate is not None or inputs.probe == "ok" else 0.0
    else:
        latency = weights.latency * min(1.0, inputs.target_p95_ms / inputs.p95_ms)
    rate = inputs.success_rate if inputs.success_rate is not None else (1.0 if inputs.probe == "ok" else 0.0)
    reliability = weights.reliability * rate
    factor = 0.0 if inputs.cooling else STATE_FACTOR.get(inputs.breaker, 1.0)
    total = (probe + latency + reliability) * factor
    return Score(
        round(total, 1),
        {
            "probe": round(probe, 1),
            "latency": round(latency, 1),
            "reliability": round(reliability, 1),
            "state_factor": factor,
        },
    )


def fact(inputs: Inputs) -> tuple[str, str] | None:
    """The status that facts decide whatever the measurements say, and why; None when the
    measurements decide. Facts are decisions (an operator's, or the provider refusing our
    credentials), so they take effect at once (see `debounce`)."""
    if not inputs.enabled:
        return "disabled", "disabled by an operator"
    if inputs.maintenance:
        return "maintenance", "in a maintenance window"
    if inputs.breaker == "forced_open":
        return "unhealthy", "breaker forced open by an operator: unavailable"
    if inputs.cooling:
        why = inputs.cooling_reason or f"every credential set aside ({inputs.cooling.replace('_', ' ')})"
        return "unhealthy", f"{why}: unavailable"
    return None


def status_of(inputs: Inputs) -> tuple[str, str]:
    """The status these inputs call for, and why (shown in the event history and on the card)."""
    decided = fact(inputs)
    if decided is not None:
        return decided
    status, why = _measured(inputs)
    if inputs.breaker == "open":
        # Nothing is sent to an open breaker: whatever the window's rate, it is unavailable.
        return "unhealthy", f"breaker open: unavailable; {why}"
    if inputs.rejected:
        return ("degraded" if status == "healthy" else status), f"{inputs.rejected}; {why}"
    return status, why


def _measured(inputs: Inputs) -> tuple[str, str]:
    if inputs.success_rate is None:
        if inputs.probe is None:
            return "unknown", "no data yet"
        return (
            ("healthy", "last probe succeeded")
            if inputs.probe in ("ok", "slow")
            else ("unhealthy", "last probe failed")
        )
    rate = inputs.success_rate * 100
    where = f"success rate {rate:.0f}% over {inputs.calls} call{'s' if inputs.calls != 1 else ''}"
    if rate > 90:
        return "healthy", where
    if rate >= 70:
        return "degraded", f"{where} (70-90%)"
    return "unhealthy", f"{where} (< 70%)"


@dataclass(frozen=True)
class Damping:
    """Flap damping: a measured status change is taken once it has been seen on `checks`
    consecutive evaluations spanning at least `seconds` (settings HEALTH_FLAP_CHECKS and
    HEALTH_FLAP_SECONDS, or a provider's own: `over`). Both must hold: evaluations come faster than the schedule when a
    breaker change wakes the monitor, so a count alone can be met within a second."""

    checks: int = DEBOUNCE
    seconds: float = 0.0

    @classmethod
    def of(cls, checks: object, seconds: object) -> Damping:
        n = checks if isinstance(checks, int) and not isinstance(checks, bool) else DEBOUNCE
        s = seconds if isinstance(seconds, int | float) and not isinstance(seconds, bool) else 0.0
        return cls(max(1, n), max(0.0, float(s)))

    def over(self, checks: int | None, seconds: float | None) -> Damping:
        """This damping with a provider's own values where it sets them (None: this one's);
        itself when it sets none, so the common case builds nothing."""
        if checks is None and seconds is None:
            return self
        return Damping.of(self.checks if checks is None else checks, self.seconds if seconds is None else seconds)


@dataclass(frozen=True)
class Debounced:
    status: str  # what is shown now
    pending: str  # a different status seen, not yet taken ("" when none)
    count: int  # consecutive evaluations that saw `pending`
    changed: bool
    since: float | None = None  # when `pending` was first seen (epoch seconds; None without one)


def debounce(
    current: str,
    pending: str,
    count: int,
    seen: str,
    needed: int = DEBOUNCE,
    *,
    immediate: bool = False,
    since: float | None = None,
    now: float | None = None,
    hold_s: float = 0.0,
) -> Debounced:
    """Take `seen` as the status only after `needed` consecutive evaluations saw it, the first
    of them at least `hold_s` seconds before `now` (`since`: when the pending status was first
    seen, as returned last time).

    An operator's statuses (disabled, maintenance) and leaving them take effect at once:
    they are decisions, not measurements; so does any status with `immediate` (a fact that
    holds now or held at the previous evaluation, see `fact`).
    """
    if seen == current:
        return Debounced(current, "", 0, False)
    immediate = immediate or seen in ("disabled", "maintenance") or current in ("disabled", "maintenance", "unknown")
    if seen == pending:
        count += 1
        since = now if since is None else since  # a row saved before damping kept no time
    else:
        count, since = 1, now
    # to the millisecond: `since` is kept as a datetime (microseconds) between evaluations
    held = hold_s <= 0 or (since is not None and now is not None and now - since >= hold_s - 1e-3)
    if immediate or (count >= needed and held):
        return Debounced(seen, "", 0, True)
    return Debounced(current, seen, min(count, 32767), False, since)

"""What the engine's cooldowns mean to an operator.

The engine sets a credential or a model aside (`CooldownStarted`): rate limited (429), out of
quota, rejected (the provider refused our credential: 401/403, until an operator resets it
or the configuration changes the key), or a model the route chose that the provider does not
have (`model_missing`, 404). The event history keeps each one with a reason written here
(`describe`); the monitor, the API and the cards show the active ones with that reason
(`reasons`), so "credential key-a rejected (HTTP 401)" is what the console says, not
"rejected".

Kinds are plain strings so this module does not depend on the engine's constants: the old
name of `rejected`, "invalid", is read as `rejected`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .models import HealthEvent

RATE_LIMITED, EXHAUSTED, REJECTED, MODEL_MISSING = "rate_limited", "exhausted", "rejected", "model_missing"
# Kinds that set a whole credential aside (a missing model concerns one model only).
CREDENTIAL_KINDS = frozenset({RATE_LIMITED, EXHAUSTED, REJECTED})
SHOWN_KINDS = (REJECTED, MODEL_MISSING, EXHAUSTED, RATE_LIMITED)

_HTTP = re.compile(r"(?:\bhttp_|\bHTTP )(\d{3})\b")
_BARE_STATUS = re.compile(r"http_\d{3}")


def kind_of(kind: str) -> str:
    return REJECTED if kind == "invalid" else kind


def http_status(reason: str) -> int | None:
    """The HTTP status a cooldown's reason names ("http_401", "HTTP 404"), if any."""
    found = _HTTP.search(reason or "")
    return int(found.group(1)) if found else None


def describe(kind: str, credential: str | None, reason: str = "", model: str | None = None) -> str:
    """One line for people: "credential key-a rejected (HTTP 401)", "model llama3.2 missing (HTTP 404)"."""
    kind = kind_of(kind)
    status = http_status(reason)
    code = f" (HTTP {status})" if status else ""
    who = f"credential {credential}" if credential else "the credential"
    if kind == REJECTED:
        return f"{who} rejected by the provider{code}"
    if kind == MODEL_MISSING:
        return f"model {model} missing on the provider{code}" if model else f"a model missing on the provider{code}"
    if kind == EXHAUSTED:
        return f"{who} out of quota{code}"
    if kind == RATE_LIMITED:
        return f"{who} rate limited{code}" + (f" for model {model}" if model else "")
    return f"{who} set aside ({kind}){code}"


def event_reason(kind: str, credential: str | None, reason: str, until: str, model: str | None = None) -> str:
    """The reason stored with a cooldown's event: the description, how long, and the engine's
    own words when they add anything to the description."""
    extra = "" if not reason or _BARE_STATUS.fullmatch(reason) else f": {reason}"
    return f"{describe(kind, credential, reason, model)}, {until}{extra}"


@dataclass(frozen=True)
class Active:
    """One cooldown in force, as the engine lists it."""

    credential: str | None
    kind: str
    until: float | None
    scope: str = ""


def active(listing: Iterable[Any]) -> list[Active]:
    """The engine's listing of a key's cooldowns, whatever its shape: tuples (credential,
    kind, until[, scope]) or mappings with those names."""
    out = []
    for entry in listing:
        if isinstance(entry, dict):
            out.append(
                Active(
                    entry.get("credential"),
                    kind_of(str(entry.get("kind", ""))),
                    entry.get("until"),
                    str(entry.get("scope") or ""),
                )
            )
        else:
            items = tuple(entry)
            out.append(
                Active(
                    items[0],
                    kind_of(str(items[1])),
                    items[2] if len(items) > 2 else None,
                    str(items[3] or "") if len(items) > 3 else "",
                )
            )
    return out


def of_snapshot(snap: Any) -> list[Active]:
    """A breaker snapshot's active cooldowns, with their scope when the engine gives it."""
    return active(getattr(snap, "scoped_cooldowns", None) or snap.cooldowns)


def reasons(wanted: dict[str, list[Active]]) -> dict[tuple[str, str | None, str, str], str]:
    """For the active cooldowns of each provider, the reason their event recorded, keyed by
    (provider, credential, kind, scope); one query, and none when nothing is set aside."""
    wanted = {name: cds for name, cds in wanted.items() if cds}
    if not wanted:
        return {}
    kinds = {c.kind for cds in wanted.values() for c in cds} | (
        {"invalid"} if any(c.kind == REJECTED for cds in wanted.values() for c in cds) else set()
    )
    rows = (
        HealthEvent.objects.filter(
            kind=HealthEvent.Kind.COOLDOWN, provider_name__in=list(wanted), new__in=sorted(kinds)
        )
        .order_by("-at", "-id")
        .values_list("provider_name", "new", "reason")[:500]
    )
    latest: dict[str, list[tuple[str, str]]] = {}
    for name, kind, reason in rows:
        latest.setdefault(name, []).append((kind_of(kind), reason))
    out: dict[tuple[str, str | None, str, str], str] = {}
    for name, cds in wanted.items():
        for cd in cds:
            label = f"credential {cd.credential} " if cd.credential else ""
            found = next(
                (
                    r
                    for k, r in latest.get(name, [])
                    if k == cd.kind
                    and (
                        (label and r.startswith(label))
                        or (cd.scope and f" {cd.scope}" in r)
                        or (not label and not cd.scope)
                    )
                ),
                None,
            )
            out[(name, cd.credential, cd.kind, cd.scope)] = found or describe(
                cd.kind, cd.credential, "", cd.scope or None
            )
    return out


def set_aside(
    name: str, active: list[Active], credentials: list[str], reasons: dict[tuple[str, str | None, str, str], str]
) -> tuple[str | None, str, str]:
    """(kind, why) when every credential of the provider is set aside, so it gets no traffic
    ((None, "") otherwise), and why any credential is rejected while others still serve."""

    def why(cd: Active) -> str:
        return reasons.get((name, cd.credential, cd.kind, cd.scope)) or describe(cd.kind, cd.credential)

    whole = {cd.credential: cd for cd in active if cd.kind in CREDENTIAL_KINDS and not cd.scope}
    wanted: list[str | None] = list(credentials) or [None]
    if whole and all(c in whole for c in wanted):
        kinds = {whole[c].kind for c in wanted}
        # A rate limit ends by itself: the provider comes back without anyone's help.
        kind = RATE_LIMITED if RATE_LIMITED in kinds else REJECTED if REJECTED in kinds else EXHAUSTED
        return kind, "; ".join(why(whole[c]) for c in wanted), ""
    return None, "", "; ".join(why(cd) for cd in active if cd.kind == REJECTED)

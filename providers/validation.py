"""Validators for configuration values, shared by the models, `import_config` and the API.

Messages are short and say what is allowed ("must be > 0 and <= 1"), because they are shown
after a config path (`providers[1].breaker.failure_rate: must be > 0 and <= 1`).
"""

from __future__ import annotations

import re

import httpx
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible

from providers.adapters import urlguard

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
ROUTE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")


@deconstructible
class RangeValidator:
    """`low < value` (or `<=` when `low_inclusive`) and `value <= high` (or `<`)."""

    def __init__(
        self,
        low: float | None = None,
        high: float | None = None,
        *,
        low_inclusive: bool = True,
        high_inclusive: bool = True,
    ) -> None:
        self.low = low
        self.high = high
        self.low_inclusive = low_inclusive
        self.high_inclusive = high_inclusive

    def message(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>=' if self.low_inclusive else '>'} {_num(self.low)}")
        if self.high is not None:
            parts.append(f"{'<=' if self.high_inclusive else '<'} {_num(self.high)}")
        return "must be " + " and ".join(parts)

    def __call__(self, value: float | None) -> None:
        if value is None:
            return
        low_ok = self.low is None or (value >= self.low if self.low_inclusive else value > self.low)
        high_ok = self.high is None or (value <= self.high if self.high_inclusive else value < self.high)
        if not (low_ok and high_ok):
            raise ValidationError(self.message(), code="range")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RangeValidator) and vars(self) == vars(other)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def validate_name(value: str) -> None:
    if not NAME_RE.match(value or ""):
        raise ValidationError(
            "must be 1-64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit",
            code="name",
        )


def validate_route_name(value: str) -> None:
    if not ROUTE_NAME_RE.match(value or ""):
        raise ValidationError(
            "must be 1-100 letters, digits, '.', '_', ':' or '-' (no '/': that names a provider/model)",
            code="route_name",
        )


# Kept for code that imported it; the guard's own lists are in providers.adapters.urlguard.
METADATA_HOSTS = frozenset(urlguard.METADATA_NAMES | {str(a) for a in urlguard.METADATA_ADDRESSES})


def validate_provider_url(value: str) -> None:
    """http/https only; link-local, cloud metadata, multicast, unspecified and reserved
    addresses are refused unless allowed, in every spelling a client or resolver accepts.

    Loopback and private networks stay allowed: local providers (Ollama, llama.cpp, SD WebUI)
    live there. `PROVIDER_URL_DENY` adds hosts or networks to refuse, `PROVIDER_URL_ALLOW`
    lets specific ones through. The host is judged as the HTTP client will read it
    (providers.adapters.urlguard): 2852039166, 0xa9fea9fe, 169.254.43518, 169。254。169。254
    and ::ffff:169.254.169.254 are all 169.254.169.254. What a name resolves to is checked
    again at every connection.
    """
    if not value:
        return
    policy = urlguard.Policy.provider(
        getattr(settings, "PROVIDER_URL_ALLOW", []), getattr(settings, "PROVIDER_URL_DENY", [])
    )
    try:
        policy.check_url(value)
        # The client parses the URL itself: a host it reads differently is judged too.
        host = httpx.URL(value).raw_host.decode("ascii", "replace")
        if not host:
            raise urlguard.URLRefused("must name a host")
        policy.check_host(host)
    except urlguard.URLRefused as exc:
        raise ValidationError(exc.message, code="denied") from None
    except (httpx.InvalidURL, ValueError):
        raise ValidationError("is not a URL the HTTP client can use", code="invalid") from None

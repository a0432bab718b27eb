"""Validators for configuration values, shared by the models, `import_config` and the API.

Messages are short and say what is allowed ("must be > 0 and <= 1"), because they are shown
after a config path (`providers[1].breaker.failure_rate: must be > 0 and <= 1`).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.deconstruct import deconstructible

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


# Cloud metadata endpoints: a provider URL pointing there would leak the host's credentials.
METADATA_HOSTS = frozenset(
    {"metadata.google.internal", "metadata", "169.254.169.254", "fd00:ec2::254", "100.100.100.200"}
)


def validate_provider_url(value: str) -> None:
    """http/https only; link-local and cloud metadata addresses are refused unless allowed.

    Loopback stays allowed: local providers (Ollama, llama.cpp, SD WebUI) live there.
    `PROVIDER_URL_DENY` adds hosts or networks to refuse, `PROVIDER_URL_ALLOW` lets
    specific ones through. An address is judged as a resolver would read it: 2852039166,
    0xa9fea9fe and 169.254.43518 are all 169.254.169.254, and so is ::ffff:169.254.169.254.
    """
    if not value:
        return
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise ValidationError("must be an http:// or https:// URL", code="scheme")
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise ValidationError("must name a host", code="host")
    address = _address(host)
    if address is not None:
        host = str(address)
    if _matches(host, getattr(settings, "PROVIDER_URL_ALLOW", [])):
        return
    if host in METADATA_HOSTS or _matches(host, getattr(settings, "PROVIDER_URL_DENY", [])):
        raise ValidationError(f"host {host} is not allowed (metadata or denied address)", code="denied")
    if address is not None and (address.is_link_local or address.is_multicast or address.is_unspecified):
        raise ValidationError(f"host {host} is a link-local, multicast or unspecified address", code="denied")


# What glibc's inet_aton (and so getaddrinfo) reads as an IPv4 address: 1 to 4 parts, each
# decimal, octal (leading 0) or hex (0x).
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}$")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address `host` names, as a resolver reads it, or None for a name."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if not _NUMERIC_HOST.match(host):
            return None
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def _matches(host: str, patterns: list[str]) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for pattern in patterns:
        pattern = pattern.strip().lower()
        if not pattern:
            continue
        if "/" in pattern and address is not None:
            try:
                if address in ipaddress.ip_network(pattern, strict=False):
                    return True
            except ValueError:
                continue
        elif host == pattern or host.endswith("." + pattern.lstrip(".")):
            return True
    return False

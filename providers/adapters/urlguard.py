"""The one guard on every URL the gateway connects to: provider base URLs, alert webhooks,
discovery probes, and the URLs a caller or an upstream hands us to download.

A host is judged the way the HTTP client and the resolver will read it, never as typed:
percent-decoded, mapped by IDNA/UTS-46 (so `169。254。169。254`, fullwidth digits, other dot
forms, zero-width characters and upper case all become `169.254.169.254`), the root's trailing
dot dropped, numeric IPv4 read as glibc's `inet_aton` reads it (2852039166, 0xa9fea9fe,
0251.0376.0251.0376, 169.254.43518), and IPv6 without brackets or zone id, with the IPv4
address inside an IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible or NAT64 (`64:ff9b::/96`)
address judged as that IPv4 address. A host that cannot be normalised is refused.

Checking the URL is only half of it: a DNS name can resolve to anything, and again later. So
the shared HTTP client (`providers.adapters.client`) checks the ADDRESSES a name resolves to,
at connect time, and connects only to addresses it checked (`Policy.check_resolved`).

Two policies:

- `Policy.provider(...)` for what an operator configured (provider base URLs, alert webhooks,
  discovery): loopback and private networks are allowed, since local providers live there;
  cloud metadata, link-local, multicast, unspecified and reserved addresses are refused.
  `deny` (PROVIDER_URL_DENY) adds hosts, domains and networks; `allow` (PROVIDER_URL_ALLOW)
  lets chosen ones through and wins over everything.
- `Policy.fetch(...)` for URLs a CALLER supplies (an image_url) or an UPSTREAM returns (a
  prediction's output): only globally routable addresses; loopback, private (RFC 1918, ULA),
  CGNAT, link-local, metadata, multicast, unspecified and reserved are refused unless `allow`
  (FETCH_URL_ALLOW) names the host, its domain or its network.

The errors are one class, `URLRefused`, an `UpstreamError` (a FAILURE with reason
`url_refused`: a provider whose own URL is refused cannot be used). Where a refused URL is the
caller's fault, the adapter turns it into a 400 with `caller_error`. `configure()` sets the
policies the running process uses (the providers app calls it from Django's settings);
this module imports no Django.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

import idna

from providers.engine import Classification, Outcome, UpstreamError

__all__ = [
    "FETCH",
    "PROVIDER",
    "Address",
    "Policy",
    "URLRefused",
    "caller_error",
    "configure",
    "current",
    "normalise_host",
    "path_segment",
    "path_text",
]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

PROVIDER = "provider"
FETCH = "fetch"

# Cloud metadata services: a request there can hand out the host's credentials. Names are
# matched exactly (metadata.example.com is somebody's public host).
METADATA_NAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",  # GCP
        "instance-data",
        "instance-data.ec2.internal",  # AWS's old names
    }
)
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, Azure, GCP, OpenStack, Oracle, DigitalOcean
        "169.254.170.2",  # AWS ECS task credentials
        "fd00:ec2::254",  # AWS over IPv6 (a ULA: private networks do not cover it for providers)
        "100.100.100.200",  # Alibaba (CGNAT space)
        "192.0.0.192",  # Oracle's older metadata address
        "168.63.129.16",  # Azure WireServer (a public address, host-internal in fact)
    )
)
# Addresses a connection should never go to, whoever configured them: "this network"
# (0.0.0.0 connects to the local host on Linux), link-local, multicast, reserved (240/4 and
# the broadcast address).
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")

# What glibc's inet_aton (and so getaddrinfo) reads as an IPv4 address: 1 to 4 parts, each
# decimal, octal (leading 0) or hex (0x).
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}$")
# A DNS label once mapped and encoded: letters, digits, '-' and '_' (service names in Docker
# and Kubernetes use '_', which IDNA's stricter rules would refuse).
_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")

# An identifier that goes into a URL path: no '/', '?', '#', '%', '\' or dot segment can
# change which path it names.
_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._~-]{0,199}$")


class URLRefused(UpstreamError):
    """A URL or a resolved address the guard refuses. `message` says why, fit to show an
    operator; `static` is false when the refusal came from what a name resolved to."""

    def __init__(self, message: str, *, static: bool = True) -> None:
        super().__init__(Classification(Outcome.FAILURE, "url_refused"), status=None, message=message)
        self.static = static


def caller_error(
    message: str, *, code: str = "url_refused", reason: str = "url_refused", param: str | None = None
) -> UpstreamError:
    """A 400 for a URL or an identifier the caller supplied: no retry, no fallback and no
    breaker effect (a CALLER_ERROR), with an OpenAI-shaped error body."""
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}
    return UpstreamError(
        Classification(Outcome.CALLER_ERROR, reason), status=400, message=message, body=json.dumps(body).encode()
    )


def path_segment(value: object, what: str) -> str:
    """`value` as one URL path segment, or a caller error: a strict identifier pattern, so no
    `/`, `..`, `?`, `#` or percent sign can make the request name another path."""
    if not isinstance(value, str) or not _SEGMENT.match(value):
        shown = value[:60] if isinstance(value, str) else type(value).__name__
        raise caller_error(
            f"{what} {shown!r} is not a valid identifier (letters, digits, '.', '_', '~' "
            f"and '-', at most 200, starting with a letter, digit or '_')",
            code="invalid_identifier",
            reason="invalid_identifier",
        )
    return value


def path_text(value: str, what: str) -> str:
    """Free text (a prompt) as one URL path segment: every reserved character percent-encoded
    ('/' too), and a text that would be a dot segment, which clients collapse even encoded
    (`..` and `%2E%2E` both climb a level), refused as a caller error."""
    encoded = quote(value, safe="")
    if value.strip() in (".", ".."):
        raise caller_error(
            f"{what} cannot be {value.strip()!r}", code="invalid_identifier", reason="invalid_identifier"
        )
    return encoded


# -- normalising --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)  # every request passes here; hosts repeat
def normalise_host(host: str) -> str:
    """`host` as the resolver will read it: an IP address in its canonical form, or a lower
    case ASCII name without the root's trailing dot. Raises `URLRefused` for a host that
    cannot be read as either."""
    raw = host.strip()
    if raw.startswith("[") and raw.endswith("]"):
        raw = raw[1:-1]
    if ":" in raw:  # only an IPv6 literal has a colon in the host
        address = _ipv6(raw)
        if address is None:
            raise URLRefused(f"host {host[:80]!r} is not a valid IPv6 address")
        return str(address)
    try:
        decoded = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise URLRefused(f"host {host[:80]!r} is not valid percent-encoded UTF-8") from None
    if "%" in decoded:  # encoded twice: nothing a resolver would read
        raise URLRefused(f"host {host[:80]!r} cannot be normalised")
    try:
        mapped = idna.uts46_remap(decoded, std3_rules=False, transitional=False)
    except (idna.IDNAError, UnicodeError, ValueError):
        raise URLRefused(f"host {host[:80]!r} is not a valid host name") from None
    mapped = mapped.rstrip(".")
    if not mapped:
        raise URLRefused("the URL names no host")
    if _NUMERIC_HOST.match(mapped):
        try:
            return str(ipaddress.IPv4Address(socket.inet_aton(mapped)))
        except OSError:
            raise URLRefused(f"host {host[:80]!r} is not a valid IPv4 address") from None
    labels = []
    for label in mapped.split("."):
        if not label.isascii():
            try:
                label = idna.encode(label).decode()
            except (idna.IDNAError, UnicodeError, ValueError):
                raise URLRefused(f"host {host[:80]!r} is not a valid host name") from None
        if not _LABEL.match(label):
            raise URLRefused(f"host {host[:80]!r} is not a valid host name")
        labels.append(label)
    return ".".join(labels)


def _ipv6(text: str) -> ipaddress.IPv6Address | None:
    text = unquote(text)  # a zone id arrives as %25eth0
    text = text.split("%", 1)[0]  # the zone id picks an interface, not an address
    try:
        return ipaddress.IPv6Address(text)
    except ValueError:
        return None


def effective_address(address: Address) -> Address:
    """The address a connection really reaches: the IPv4 address inside an IPv4-mapped,
    IPv4-compatible or NAT64 IPv6 address, the address itself otherwise."""
    if isinstance(address, ipaddress.IPv6Address):
        address = ipaddress.IPv6Address(address.packed)  # without a zone id
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if any(address in net for net in _NAT64) or (address in _IPV4_COMPATIBLE and int(address) > 1):
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def as_address(host: str) -> Address | None:
    """The address a normalised host names, or None for a name."""
    try:
        return effective_address(ipaddress.ip_address(host))
    except ValueError:
        return None


_INTERNAL = "a loopback, private or internal address"
_PASSED_KEPT = 4096  # hosts a policy remembers passing; past that, judged each time


# -- policies -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Policy:
    """What may be connected to. `private_ok`: loopback and private networks are fine (an
    operator's own hosts); otherwise only globally routable addresses. `allow` and `deny`
    hold host names (a name also covers its subdomains), addresses and networks (CIDR)."""

    name: str
    private_ok: bool
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    setting: str = ""  # the setting that opens a refused address, named in messages
    # Hosts `check_host` passed, as given: a verdict depends only on the host and the fields
    # above, which never change, and every request's URL is judged (a refusal is judged anew).
    _passed: dict[tuple[str, bool], str] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @classmethod
    def provider(cls, allow: Iterable[str] = (), deny: Iterable[str] = ()) -> Policy:
        return cls(PROVIDER, True, _patterns(allow), _patterns(deny), "PROVIDER_URL_ALLOW")

    @classmethod
    def fetch(cls, allow: Iterable[str] = ()) -> Policy:
        return cls(FETCH, False, _patterns(allow), (), "FETCH_URL_ALLOW")

    # The checks. Each raises URLRefused or returns what it checked.

    def check_url(self, url: str, *, schemes: tuple[str, ...] = ("http", "https")) -> str:
        """The URL's normalised host, if its scheme and host pass; the host judged by name
        only (what it resolves to is checked at connect time)."""
        try:
            parts = urlsplit(url)
            port = parts.port  # reading it validates it
        except ValueError:
            raise URLRefused("not a valid URL") from None
        del port
        if parts.scheme.lower() not in schemes:
            raise URLRefused(f"must be an {' or '.join(s + '://' for s in schemes)} URL")
        netloc = parts.netloc.rpartition("@")[2]
        if netloc.startswith("["):
            host = netloc[: netloc.find("]") + 1]
        else:
            host = netloc.rpartition(":")[0] if netloc.count(":") == 1 else netloc
        if not host:
            raise URLRefused("must name a host")
        normal = normalise_host(host)
        self.check_host(normal, normalised=True)
        return normal

    def check_host(self, host: str, *, normalised: bool = False) -> str:
        """A host as a URL names it: an address judged at once, a name by the lists."""
        passed = self._passed.get((host, normalised))
        if passed is not None:
            return passed
        normal = self._check_host(host, normalised)
        if len(self._passed) < _PASSED_KEPT:
            self._passed[(host, normalised)] = normal
        return normal

    def _check_host(self, host: str, normalised: bool) -> str:
        normal = host if normalised else normalise_host(host)
        address = as_address(normal)
        if address is not None:
            self.check_address(address, host=normal)
            return normal
        if self._listed(normal, None, self.allow):
            return normal
        if normal in METADATA_NAMES:
            raise URLRefused(f"host {normal} is not allowed (a cloud metadata service)")
        if self._listed(normal, None, self.deny):
            raise URLRefused(f"host {normal} is not allowed (denied by PROVIDER_URL_DENY)")
        if not self.private_ok and (normal == "localhost" or normal.endswith(".localhost")):
            raise URLRefused(f"host {normal} is not allowed (the gateway's own machine{self._opened_by()})")
        return normal

    def check_address(self, address: Address, *, host: str = "", static: bool = True) -> None:
        """One address a connection would go to (`host`: the name it was resolved from)."""
        real = effective_address(address)
        if self._listed(host, real, self.allow):
            return
        why = self._refusal(real)
        if why is None and self._listed("", real, self.deny):
            why = "an address denied by PROVIDER_URL_DENY"
        if why is not None:
            shown = host or str(real)
            if host and host != str(real):
                shown += f" ({real})"
            why += self._opened_by() if why == _INTERNAL else ""
            if static:
                raise URLRefused(f"host {shown} is not allowed ({why})")
            raise URLRefused(f"host {host} is not allowed: it resolves to {why}", static=False)

    def check_resolved(self, host: str, addresses: Iterable[str]) -> None:
        """What `host` resolved to, before any connection: one refused address refuses the
        name (a name that answers both a public and a private address is not trusted)."""
        for text in addresses:
            try:
                address = ipaddress.ip_address(text.split("%", 1)[0])
            except ValueError:
                raise URLRefused(f"host {host} resolved to {text!r}, which is not an address", static=False) from None
            self.check_address(address, host=host, static=False)

    # -- judging ------------------------------------------------------------------------------

    def _refusal(self, address: Address) -> str | None:
        if address in METADATA_ADDRESSES:
            return "a cloud metadata address"
        if address.is_link_local:
            return "a link-local address"
        if address.is_multicast:
            return "a multicast address"
        if address.is_unspecified or (isinstance(address, ipaddress.IPv4Address) and address in _THIS_NETWORK):
            return "an unspecified address"
        if address.is_reserved and not address.is_loopback:
            return "a reserved address"
        if not self.private_ok and not address.is_global:
            return _INTERNAL
        return None

    def _opened_by(self) -> str:
        return f"; {self.setting} opens it" if self.setting else ""

    @staticmethod
    def _listed(host: str, address: Address | None, patterns: tuple[str, ...]) -> bool:
        for pattern in patterns:
            if "/" in pattern:
                if address is None:
                    continue
                try:
                    network = ipaddress.ip_network(pattern, strict=False)
                except ValueError:
                    continue
                if address.version == network.version and address in network:
                    return True
                continue
            listed = as_address(pattern)
            if listed is not None:
                if address is not None and listed == address:
                    return True
                continue
            if host and (host == pattern or host.endswith("." + pattern)):
                return True
        return False


def _patterns(values: Iterable[str]) -> tuple[str, ...]:
    """Allow/deny entries normalised like hosts, so `LOCALHOST.` or `169。254。169。254` in a
    setting means what it says; an entry that cannot be read is dropped."""
    out = []
    for value in values or ():
        text = str(value).strip().lower()
        if not text:
            continue
        if "/" in text:
            out.append(text)
            continue
        try:
            out.append(normalise_host(text.lstrip(".")))
        except URLRefused:
            continue
    return tuple(out)


# -- the process's policies ---------------------------------------------------------------------

_current: dict[str, Policy] = {PROVIDER: Policy.provider(), FETCH: Policy.fetch()}


def configure(
    *, provider_allow: Iterable[str] = (), provider_deny: Iterable[str] = (), fetch_allow: Iterable[str] = ()
) -> None:
    """Set the policies this process connects by (called at start and on a settings change)."""
    _current[PROVIDER] = Policy.provider(provider_allow, provider_deny)
    _current[FETCH] = Policy.fetch(fetch_allow)


def current(name: str) -> Policy:
    """The policy named `name` ("provider" or "fetch") as last configured."""
    return _current[name]

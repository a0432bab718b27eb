"""POST a JSON body to a webhook and say whether an error is permanent.

A webhook is an operator's own destination, so it is judged by the URL guard's "provider"
policy (providers/adapters/urlguard.py): loopback and private receivers are fine, cloud
metadata, link-local, multicast and reserved addresses are not, in any spelling, and
PROVIDER_URL_ALLOW / PROVIDER_URL_DENY apply. The URL is judged again at send time (a target
read from an environment variable was never checked on save), and so is every address its
name resolves to: the request then goes to the address that was judged (the name kept for
the Host header and TLS), so DNS cannot answer one thing to the check and another to the
connection. Redirects are not followed (a webhook that moved must be edited, and following
one could lead past the URL rules).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

import httpx

from providers.adapters import urlguard
from providers.adapters.client import GuardedClient

from . import DeliveryError

USER_AGENT = "ai-gateway-alerts/1"
TRANSIENT_4XX = (408, 429)


def check_url(url: str) -> str:
    """The URL's normalised host, or a permanent DeliveryError."""
    if not url:
        raise DeliveryError("no target URL", permanent=True)
    try:
        return urlguard.current(urlguard.PROVIDER).check_url(url)
    except urlguard.URLRefused as exc:
        raise DeliveryError(f"invalid address: {exc.message}", permanent=True) from None


async def post_json(client: httpx.AsyncClient, url: str, payload: dict[str, Any]) -> httpx.Response:
    check_url(url)
    try:
        if isinstance(client, GuardedClient):  # it judges every connection itself
            response = await client.post(url, json=payload, follow_redirects=False, headers={"User-Agent": USER_AGENT})
        else:
            response = await _post_pinned(client, url, payload)
    except urlguard.URLRefused as exc:
        raise DeliveryError(f"invalid address: {exc.message}", permanent=True) from None
    except httpx.TimeoutException:
        raise DeliveryError("no answer in time", permanent=False) from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol):
        raise DeliveryError("invalid address: not a usable URL", permanent=True) from None
    except httpx.TransportError as exc:
        raise DeliveryError(f"could not connect: {type(exc).__name__}", permanent=False) from None
    if response.is_success:
        return response
    snippet = " ".join(response.text.split())[:200]
    what = f"HTTP {response.status_code}" + (f": {snippet}" if snippet else "")
    if response.is_redirect:
        raise DeliveryError(f"{what} (redirects are not followed: give the final URL)", permanent=True)
    if 400 <= response.status_code < 500 and response.status_code not in TRANSIENT_4XX:
        raise DeliveryError(what, permanent=True)
    raise DeliveryError(what, permanent=False, retry_after=_retry_after(response))


async def _post_pinned(client: httpx.AsyncClient, url: str, payload: dict[str, Any]) -> httpx.Response:
    """POST to the addresses `url`'s host resolves to, each judged first, in turn."""
    target = httpx.URL(url)
    host = target.raw_host.decode("ascii")
    port = target.port or (443 if target.scheme == "https" else 80)
    addresses = await _resolve(host, port)
    urlguard.current(urlguard.PROVIDER).check_resolved(host.rstrip("."), addresses)
    headers = {"User-Agent": USER_AGENT, "Host": target.netloc.decode("ascii")}
    extensions = {"sni_hostname": host.rstrip(".")} if target.scheme == "https" else {}
    error: Exception = httpx.ConnectError(f"{host} resolved to no address")
    for address in addresses:
        try:
            return await client.post(
                target.copy_with(host=address),
                json=payload,
                follow_redirects=False,
                headers=headers,
                extensions=extensions,
            )
        except httpx.ConnectError as exc:
            error = exc
    raise error


async def _resolve(host: str, port: int) -> list[str]:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return [host]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise httpx.ConnectError(f"could not resolve {host}: {exc}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None

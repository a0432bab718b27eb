"""POST a JSON body to a webhook and say whether an error is permanent.

Redirects are not followed (a webhook that moved must be edited, and following one could
lead past the URL rules); the URL is checked against those rules again at send time, since
a target read from an environment variable was never checked on save.
"""

from __future__ import annotations

from typing import Any

import httpx
from django.core.exceptions import ValidationError

from providers.validation import validate_provider_url

from . import DeliveryError

USER_AGENT = "ai-gateway-alerts/1"
TRANSIENT_4XX = (408, 429)


def check_url(url: str) -> None:
    if not url:
        raise DeliveryError("no target URL", permanent=True)
    try:
        validate_provider_url(url)
    except ValidationError as exc:
        raise DeliveryError(f"invalid address: {'; '.join(exc.messages)}", permanent=True) from None


async def post_json(client: httpx.AsyncClient, url: str, payload: dict[str, Any]) -> httpx.Response:
    check_url(url)
    try:
        response = await client.post(url, json=payload, follow_redirects=False,
                                     headers={"User-Agent": USER_AGENT})
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


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None

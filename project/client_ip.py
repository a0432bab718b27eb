"""The client's address, for login throttling (django-axes' AXES_CLIENT_IP_CALLABLE).

Behind the reverse proxy (BEHIND_HTTPS_PROXY) every connection comes from the proxy, so the
address is the right-most X-Forwarded-For entry: the one the proxy itself appended
(`$proxy_add_x_forwarded_for`). Entries to its left come from the client and can be forged,
so they are never used. Without the proxy setting the header is ignored altogether.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    if settings.BEHIND_HTTPS_PROXY:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last
    return request.META.get("REMOTE_ADDR")

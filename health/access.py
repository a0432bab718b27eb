"""Who may do what in the console.

Three levels, each including the one before:

- **view**: active staff users see every page and the live updates;
- **act**: superusers and members of the `operators` group run operational actions
  (check now, reset a breaker, force it open, pull a model, switch the SD WebUI model);
- **configure**: superusers change the configuration (enable or disable a provider,
  maintenance windows, register discovered providers, remove the demo).

Anonymous visitors are sent to the login page (an htmx request is told to go there with
`HX-Redirect`); a signed-in user below the level needed gets 403.

The console's websocket is same-origin only (`same_origin`): the Origin's scheme, host and
port must be the request's own (or one in CSRF_TRUSTED_ORIGINS), as Django's CSRF check
wants for a form post. A host name alone is not enough: another port on the same host is
another origin, and any program listening there could otherwise read the live console.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from inspect import iscoroutinefunction
from typing import Any, Literal
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.http.request import split_domain_port, validate_host
from django_htmx.http import HttpResponseClientRedirect

OPERATORS = "operators"

Level = Literal["view", "act", "configure"]


@dataclass(frozen=True)
class Role:
    can_view: bool = False
    can_act: bool = False
    can_configure: bool = False

    def allows(self, level: Level) -> bool:
        return {"view": self.can_view, "act": self.can_act, "configure": self.can_configure}[level]

    @classmethod
    def of(cls, user: Any) -> Role:
        if not (user.is_authenticated and user.is_active and user.is_staff):
            return cls()
        if user.is_superuser:
            return cls(True, True, True)
        return cls(True, user.groups.filter(name=OPERATORS).exists(), False)

    @classmethod
    async def aof(cls, user: Any) -> Role:
        if not (user.is_authenticated and user.is_active and user.is_staff):
            return cls()
        if user.is_superuser:
            return cls(True, True, True)
        return cls(True, await user.groups.filter(name=OPERATORS).aexists(), False)


def _refuse(request: HttpRequest, user: Any, role: Role, level: Level) -> HttpResponse | None:
    if not user.is_authenticated:
        if getattr(request, "htmx", False):
            return HttpResponseClientRedirect(redirect_to_login(request.get_full_path())["Location"])
        return redirect_to_login(request.get_full_path())
    if not role.allows(level):
        raise PermissionDenied(f"this needs the {level} level")
    return None


View = Callable[..., Any]


def console_view(level: Level = "view") -> Callable[[View], View]:
    """Guard a console view (sync or async); the view finds the user's `request.role`."""

    def decorate(view: View) -> View:
        if iscoroutinefunction(view):

            @functools.wraps(view)
            async def guarded_async(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
                user = await request.auser()
                request.user = user  # templates read request.user: no lazy query in async code
                role = await Role.aof(user)
                refused = _refuse(request, user, role, level)
                if refused is not None:
                    return refused
                request.role = role  # type: ignore[attr-defined]
                result: Awaitable[HttpResponse] = view(request, *args, **kwargs)
                return await result

            return guarded_async

        @functools.wraps(view)
        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            role = Role.of(request.user)
            refused = _refuse(request, request.user, role, level)
            if refused is not None:
                return refused
            request.role = role  # type: ignore[attr-defined]
            response: HttpResponse = view(request, *args, **kwargs)
            return response

        return guarded

    return decorate


DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_of(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin or URL, with the scheme's default port filled in."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower().rstrip("."), port or DEFAULT_PORTS[scheme]


def same_origin(scope: Mapping[str, Any]) -> bool:
    """Whether a websocket handshake comes from a page of this site: its Origin has the
    scheme, host and port of the request's Host (the scheme is https when the socket is
    wss, or when BEHIND_HTTPS_PROXY and the proxy says so), or is a trusted origin. No
    Origin, or a Host that ALLOWED_HOSTS refuses: refused."""
    headers = {name.decode("latin1").lower(): value.decode("latin1") for name, value in scope.get("headers", [])}
    origin = _origin_of(headers.get("origin", ""))
    host = headers.get("host", "")
    if origin is None:
        return False
    if not host:
        # Browsers, the ones an Origin check protects against, always send Host; a client
        # without one (HTTP/1.0, a test harness) can write any Origin it likes anyway. It
        # gets the host-name check alone, as channels' AllowedHostsOriginValidator does.
        return validate_host(origin[1], settings.ALLOWED_HOSTS)
    domain, _ = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return False
    secure = scope.get("scheme") == "wss" or (
        bool(getattr(settings, "SECURE_PROXY_SSL_HEADER", None))
        and headers.get("x-forwarded-proto", "").split(",")[0].strip().lower() == "https"
    )
    if origin == _origin_of(f"{'https' if secure else 'http'}://{host}"):
        return True
    return any(
        origin == _origin_of(trusted) for trusted in getattr(settings, "CSRF_TRUSTED_ORIGINS", []) if "*" not in trusted
    )

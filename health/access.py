"""Who may do what in the console.

Three levels, each including the one before:

- **view**: active staff users see every page and the live updates;
- **act**: superusers and members of the `operators` group run operational actions
  (check now, reset a breaker, force it open, pull a model, switch the SD WebUI model);
- **configure**: superusers change the configuration (enable or disable a provider,
  maintenance windows, register discovered providers, remove the demo).

Anonymous visitors are sent to the login page (an htmx request is told to go there with
`HX-Redirect`); a signed-in user below the level needed gets 403.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from inspect import iscoroutinefunction
from typing import Any, Literal

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
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

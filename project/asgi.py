"""ASGI entry point: HTTP through Django, websockets through Channels, lifespan for shutdown."""

import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django_asgi_app = get_asgi_application()

from asgiref.sync import sync_to_async  # noqa: E402
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.core.exceptions import SuspiciousOperation  # noqa: E402
from django.core.handlers.exception import response_for_exception  # noqa: E402
from django.http import Http404, HttpRequest  # noqa: E402
from django.http.response import HttpResponseBase  # noqa: E402

from health.routing import websocket_urlpatterns  # noqa: E402
from project.lifecycle import lifespan  # noqa: E402
from providers.gateway.handler import GatewayHandler  # noqa: E402

GATEWAY_PATHS = ("/v1/", "/api/execute")

# An HTTP application as Django's ASGI handlers are typed.
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[Mapping[str, Any]], Awaitable[None]]
HTTPApp = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]


class StaticFiles(ASGIStaticFilesHandler):
    """Our static files. A path that climbs out of the static folders (`/static/..%2f..%2fx`)
    is a file we do not have: a 404, not the exception (a 500) Django's handler lets through."""

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        try:
            return await super().get_response_async(request)
        except SuspiciousOperation:
            return await sync_to_async(response_for_exception, thread_sensitive=False)(
                request, Http404("No such static file.")
            )


def http_router(gateway: HTTPApp, django: HTTPApp) -> HTTPApp:
    """The gateway's hot paths skip Django's middleware and thread hops (see handler.py)."""

    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["path"].startswith(GATEWAY_PATHS):
            return await gateway(scope, receive, send)
        return await django(scope, receive, send)

    return app


application = ProtocolTypeRouter(
    {
        "http": http_router(GatewayHandler(), StaticFiles(django_asgi_app)),
        # The console's live updates: a browser on another origin, or without a staff
        # session, is refused (health/consumers.py checks the user).
        # django-stubs' path() knows views only, not the ASGI consumers Channels routes
        # (typeddjango/django-stubs#3354), so the patterns are typed as plain URLPatterns.
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),  # type: ignore[arg-type]
        "lifespan": lifespan,
    }
)

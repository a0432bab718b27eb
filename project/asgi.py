"""ASGI entry point: HTTP through Django, websockets through Channels, lifespan for shutdown."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from health.routing import websocket_urlpatterns  # noqa: E402
from project.lifecycle import lifespan  # noqa: E402
from providers.gateway.handler import GatewayHandler  # noqa: E402

GATEWAY_PATHS = ("/v1/", "/api/execute")


def http_router(gateway, django):  # type: ignore[no-untyped-def]
    """The gateway's hot paths skip Django's middleware and thread hops (see handler.py)."""

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["path"].startswith(GATEWAY_PATHS):
            return await gateway(scope, receive, send)
        return await django(scope, receive, send)

    return app


application = ProtocolTypeRouter(
    {
        "http": http_router(GatewayHandler(), ASGIStaticFilesHandler(django_asgi_app)),
        # The console's live updates: a browser on another origin, or without a staff
        # session, is refused (health/consumers.py checks the user).
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
        "lifespan": lifespan,
    }
)

"""Websocket routes (mounted in project/asgi.py behind the Origin check and the session)."""

from django.urls import path

from .consumers import HealthConsumer

websocket_urlpatterns = [
    # django-stubs' path() knows views only, not ASGI consumers (typeddjango/django-stubs#3354)
    path("ws/health/", HealthConsumer.as_asgi()),  # type: ignore[arg-type]
]

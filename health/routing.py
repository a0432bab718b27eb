"""Websocket routes (mounted in project/asgi.py behind the Origin check and the session)."""

from django.urls import path

from .consumers import HealthConsumer

websocket_urlpatterns = [
    path("ws/health/", HealthConsumer.as_asgi()),
]

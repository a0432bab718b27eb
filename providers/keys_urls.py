"""The URLs of API keys in the operations API (providers/keys_api.py); included by project/urls.py."""

from django.urls import path

from . import keys_api

urlpatterns = [
    path("api/keys", keys_api.keys_list, name="keys-list"),
    path("api/keys/<str:prefix>", keys_api.key, name="keys-detail"),
    path("api/keys/<str:prefix>/revoke", keys_api.key_revoke, name="keys-revoke"),
]

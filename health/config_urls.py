"""The configuration pages' URL patterns (included by health/urls.py)."""

from django.urls import path

from . import config_pages

urlpatterns = [
    path("config/providers", config_pages.providers_page, name="health-config-providers"),
    path("config/providers/new", config_pages.provider_new, name="health-config-provider-new"),
    path("config/providers/<str:name>", config_pages.provider_edit, name="health-config-provider"),
    path("config/providers/<str:name>/test", config_pages.provider_test, name="health-config-provider-test"),
    path("config/providers/<str:name>/delete", config_pages.provider_delete, name="health-config-provider-delete"),
    path("config/routes", config_pages.routes_page, name="health-config-routes"),
    path("config/routes/new", config_pages.route_new, name="health-config-route-new"),
    path("config/routes/<str:name>", config_pages.route_edit, name="health-config-route"),
    path("config/routes/<str:name>/delete", config_pages.route_delete, name="health-config-route-delete"),
]

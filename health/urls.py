from django.urls import include, path

from providers import api as providers_api

from . import actions, analytics_page, api, keys_page, requests_page
from . import views as health_views

urlpatterns = [
    path("healthz", health_views.healthz, name="health-healthz"),
    path("api/health", api.health_list, name="health-list"),
    path("api/health/check", api.health_check_all, name="health-check-all"),
    path("api/health/<str:name>", api.health_detail, name="health-detail"),
    path("api/health/<str:name>/check", api.health_check_one, name="health-check-one"),
    path("api/health/<str:name>/reset", api.health_reset, name="health-reset"),
    path("api/events", api.events_list, name="health-events-list"),
    path("api/events/stream", api.events_stream, name="health-events-stream"),
    # Providers' own views, routed here until providers/urls.py lists them: no pattern there
    # matches these paths (<str:name> stops at a slash; project/urls.py includes it first).
    path("api/providers/<str:name>/enable", providers_api.provider_enable, name="providers-enable"),
    path("api/providers/<str:name>/disable", providers_api.provider_disable, name="providers-disable"),
    # Incidents: the API (read; changes need admin) and the console page.
    path("", include("health.incidents_urls")),
    path("", include("health.test_urls")),
    path("", include("health.config_urls")),
    # The console (staff only).
    path("", health_views.dashboard, name="health-dashboard"),
    path("events", health_views.events_page, name="health-events"),
    path("analytics", analytics_page.analytics_page, name="analytics-page"),
    path("requests", requests_page.requests_page, name="health-requests"),
    path("requests/<str:request_id>", requests_page.request_page, name="health-request"),
    path("keys", keys_page.keys_page, name="health-keys"),
    path("discover", actions.discover_page, name="health-discover"),
    path("discover/register", actions.register_discovered, name="health-register-discovered"),
    path("demo/remove", actions.remove_demo_providers, name="health-remove-demo"),
    path("providers/<str:name>", health_views.provider_page, name="health-provider"),
    path("providers/<str:name>/check", actions.check_provider, name="health-check-provider"),
    path("providers/<str:name>/reset", actions.reset_breaker, name="health-reset-breaker"),
    path("providers/<str:name>/force-open", actions.force_open, name="health-force-open"),
    path("providers/<str:name>/enable", actions.enable_provider, name="health-enable-provider"),
    path("providers/<str:name>/disable", actions.disable_provider, name="health-disable-provider"),
    path("providers/<str:name>/maintenance/start", actions.start_maintenance, name="health-start-maintenance"),
    path("providers/<str:name>/maintenance/end", actions.end_maintenance, name="health-end-maintenance"),
    path("providers/<str:name>/pull", actions.pull_model, name="health-pull-model"),
    path("providers/<str:name>/sd-model", actions.switch_sd_model, name="health-switch-sd-model"),
]

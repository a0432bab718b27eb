from django.urls import path

from . import api, metrics

urlpatterns = [
    path("api/analytics", api.analytics, name="analytics-summary"),
    path("api/analytics/export.csv", api.export, name="analytics-export"),
    path("api/analytics/<str:name>", api.provider_analytics, name="analytics-provider"),
    path("api/requests", api.request_list, name="requests-list"),
    path("api/requests/<str:request_id>", api.request_detail, name="requests-detail"),
    path("metrics", metrics.metrics, name="analytics-metrics"),
]

"""The test pages' URL patterns (included by health/urls.py): a sample request sent to one
provider or one route through the gateway, and the speech it brought back."""

from django.urls import path

from . import test_pages

urlpatterns = [
    path("providers/<str:name>/test", test_pages.provider_test, name="health-provider-test"),
    path("routes/<str:name>/test", test_pages.route_test, name="health-route-test"),
    path("test-audio/<str:token>", test_pages.test_audio, name="health-test-audio"),
]

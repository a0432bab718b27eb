"""Project-wide error pages: the API paths answer their errors in JSON, the console in HTML."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.defaults import page_not_found

from providers.gateway.errors import no_endpoint

API_PREFIXES = ("/api/", "/v1/")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler404: a JSON error for an API URL that matches no pattern, Django's page otherwise."""
    if request.path_info.startswith(API_PREFIXES):
        return no_endpoint(request.path_info)
    return page_not_found(request, exception)

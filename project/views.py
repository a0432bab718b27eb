"""Project-wide error pages and API answers: the API paths answer their errors in JSON, with
the API's security headers; the console answers in HTML."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import sync_and_async_middleware
from django.views.defaults import page_not_found

from providers.gateway.errors import API_PREFIXES, finish_api_response, no_endpoint


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler404: a JSON error for an API URL that matches no pattern, Django's page otherwise."""
    if request.path_info.startswith(API_PREFIXES):
        return no_endpoint(request.path_info)
    return page_not_found(request, exception)


@sync_and_async_middleware
def api_answers(get_response: Callable[[HttpRequest], Any]) -> Callable[[HttpRequest], Any]:
    """Middleware: every answer under /api/ and /v1/ that goes through Django's handler (the
    lean gateway handler does the same itself) is finished by `finish_api_response`: errors
    made as pages (405, 400, 403, 500) become JSON, and the API's security headers are set.
    It sits inside django-csp's middleware, so the API's stricter policy is the one sent."""

    def finish(request: HttpRequest, response: Any) -> Any:
        if request.path_info.startswith(API_PREFIXES):
            return finish_api_response(request.path_info, request.method or "", response)
        return response

    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest) -> Any:
            return finish(request, await get_response(request))

        return middleware

    def sync_middleware(request: HttpRequest) -> Any:
        return finish(request, get_response(request))

    return sync_middleware

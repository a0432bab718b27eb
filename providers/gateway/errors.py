"""JSON error answers, in the shape of the API the caller used: OpenAI's
{"error": {"type", "message", "code", "param", ...}} unless a dialect (dialects/) says
otherwise (`shape`, an `error_body` function; `error_for_path` picks it by the URL), and
what every answer under /v1 and /api carries (`finish_api_response`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.http import HttpResponse
from django.http.response import HttpResponseBase

API_PREFIXES = ("/api/", "/v1/")
# An API answer is data, never a page: no sniffing it into HTML, no framing, nothing loaded
# from it. The console's pages keep their own policy (django-csp, project/settings.py).
API_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}
# What an error status means, for an answer Django (or a decorator) made as a page.
STATUS_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
}


ErrorShape = Callable[..., dict[str, Any]]  # error_body(status, type_, message, **extra)


def openai_error_body(
    status: int, type_: str, message: str, *, code: str | None = None, **extra: Any
) -> dict[str, Any]:
    """OpenAI's error shape (`status` goes with the answer, not in the body)."""
    return {"error": {"type": type_, "message": message, "code": code or type_, **extra}}


def error_response(
    status: int,
    type_: str,
    message: str,
    *,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    shape: ErrorShape | None = None,
    **extra: Any,
) -> HttpResponse:
    body = (shape or openai_error_body)(status, type_, message, code=code, **extra)
    response = HttpResponse(json.dumps(body, separators=(",", ":")), status=status, content_type="application/json")
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def shape_for_path(path: str) -> ErrorShape:
    """The error shape of the API at `path` (for answers made outside a view)."""
    from .dialects.dialect import for_path  # the dialects import RequestError from here

    return for_path(path).error_body


def error_for_path(path: str, status: int, type_: str, message: str, **kwargs: Any) -> HttpResponse:
    """`error_response` in the shape of the API at `path`."""
    return error_response(status, type_, message, shape=shape_for_path(path), **kwargs)


def no_endpoint(path: str) -> HttpResponse:
    """The 404 of an API URL that matches no endpoint."""
    return error_for_path(path, 404, "not_found", f"No API endpoint at {_shown(path)}.")


def _shown(path: str) -> str:
    return path if len(path) <= 200 else path[:200] + "…"


def is_json(content_type: str | None) -> bool:
    """Whether a Content-Type names JSON (application/json, application/problem+json, ...)."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


def finish_api_response(path: str, method: str, response: HttpResponseBase) -> HttpResponseBase:
    """Every answer under /v1 and /api: an error made as a page (a 405 from
    `require_http_methods`, Django's 400/403/500 pages) becomes a JSON error, and the
    API's security headers are set."""
    if response.status_code >= 400 and not is_json(response.get("Content-Type")) and not response.streaming:
        status = response.status_code
        if status == 405:
            allowed = response.get("Allow", "")
            message = f"{method} is not allowed here" + (f"; use {allowed}." if allowed else ".")
        elif status >= 500:
            message = "The server failed to handle this request."
        else:
            message = f"{response.reason_phrase} ({status})."
        type_ = STATUS_TYPES.get(status, "internal_error" if status >= 500 else "invalid_request_error")
        replacement = error_for_path(path, status, type_, message)
        for name in ("Allow", "Retry-After"):
            if name in response:
                replacement[name] = response[name]
        response = replacement
    for name, value in API_SECURITY_HEADERS.items():
        response[name] = value
    return response


class RequestError(Exception):
    """A request the gateway refuses before routing it (bad JSON, unknown model, ...);
    `param` names the offending field, as OpenAI's errors do."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        headers: dict[str, str] | None = None,
        param: str | None = None,
    ) -> None:
        self.status = status
        self.type = type_
        self.code = code
        self.headers = headers
        self.param = param
        super().__init__(message)

    def response(self, shape: ErrorShape | None = None) -> HttpResponse:
        extra = {"param": self.param} if self.param is not None else {}
        return error_response(
            self.status, self.type, str(self), code=self.code, headers=self.headers, shape=shape, **extra
        )

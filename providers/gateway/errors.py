"""JSON error answers in OpenAI's shape: {"error": {"type", "message", "code", ...}}."""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpResponse


def error_response(status: int, type_: str, message: str, *, code: str | None = None,
                   headers: dict[str, str] | None = None, **extra: Any) -> HttpResponse:
    body = {"error": {"type": type_, "message": message, "code": code or type_, **extra}}
    response = HttpResponse(json.dumps(body, separators=(",", ":")), status=status,
                            content_type="application/json")
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def no_endpoint(path: str) -> HttpResponse:
    """The 404 of an API URL that matches no endpoint."""
    return error_response(404, "not_found", f"No API endpoint at {path}.")


class RequestError(Exception):
    """A request the gateway refuses before routing it (bad JSON, unknown model, ...)."""

    def __init__(self, status: int, message: str, *, type_: str = "invalid_request_error",
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.type = type_
        self.code = code
        self.headers = headers
        super().__init__(message)

    def response(self) -> HttpResponse:
        return error_response(self.status, self.type, str(self), code=self.code, headers=self.headers)

"""A lean ASGI handler for the gateway's hot path.

Django's `ASGIHandler` spends two thread hops per request (the `request_started` signal and
`response.close()` run through `sync_to_async` inside a fresh `ThreadSensitiveContext`, which
starts a new executor thread per request) and runs the whole middleware stack; measured in
docs/performance.md, that is most of the gateway's added latency. The gateway's views are
async, use no session, cookie, CSRF or database on the request path, so this handler
serves them with Django's own request and response classes and URL resolver but without
middleware or thread hops. Everything else (console, admin, operations API) keeps Django's
full handler.

It still listens for the client's disconnect while the view runs, and cancels the view
when it comes, so an abandoned request stops its upstream call.
"""

from __future__ import annotations

import asyncio
import io
import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.core.handlers.asgi import ASGIHandler, ASGIRequest
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.urls import ResolverMatch, get_resolver, set_urlconf
from django.utils.log import log_response

from .errors import API_SECURITY_HEADERS, error_for_path, finish_api_response, no_endpoint

log = logging.getLogger(__name__)


class GatewayHandler(ASGIHandler):
    def __init__(self) -> None:
        super(ASGIHandler, self).__init__()
        # No middleware: resolve the path (cached) and call the async view.
        self._resolved: dict[str, ResolverMatch] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        limit = settings.GATEWAY_MAX_BODY_BYTES
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await self.send_response(_too_large(limit, scope.get("path", "")), send)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > limit:
                await self.send_response(_too_large(limit, scope.get("path", "")), send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        request = ASGIRequest(scope, io.BytesIO(b"".join(chunks)))
        # The view runs in this task; a second one waits for the client to go away and, if
        # it does, cancels this one, which stops the upstream call.
        serving = asyncio.current_task()
        assert serving is not None
        state = {"finished": False, "disconnected": False}

        async def listen() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            if not state["finished"]:
                state["disconnected"] = True
                serving.cancel()

        listener = asyncio.ensure_future(listen())
        try:
            await self._serve(request, send)
        except asyncio.CancelledError:
            if not state["disconnected"]:
                raise
            serving.uncancel()  # the client left: nothing more to do, not an error
        finally:
            state["finished"] = True
            listener.cancel()

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        # Django's version logs every 4xx through a thread hop; a refused API call is an
        # answer, not an incident. Server errors are still logged.
        set_urlconf(settings.ROOT_URLCONF)
        try:
            match = self._resolved.get(request.path_info)
            if match is None:
                match = get_resolver().resolve(request.path_info)
                if len(self._resolved) < 64:  # a handful of fixed paths; never grow without bound
                    self._resolved[request.path_info] = match
            request.resolver_match = match
            response: HttpResponseBase = await match.func(request, *match.args, **match.kwargs)
        except Http404:
            response = no_endpoint(request.path_info)
        except SuspiciousOperation as exc:  # as Django's handler: the caller's request, a 400
            response = error_for_path(
                request.path_info,
                400,
                "invalid_request_error",
                f"The request is refused: {exc}",
                code="invalid_request",
            )
        except Exception:
            log.exception("gateway view failed: %s", request.path_info)
            response = error_for_path(
                request.path_info, 500, "internal_error", "The gateway failed to handle this request."
            )
        response = finish_api_response(request.path_info, request.method or "", response)  # a 405 page -> JSON
        # As Django's own handler does; the stubs leave out this private list.
        response._resource_closers.append(request.close)  # type: ignore[attr-defined]
        if response.status_code == 500:  # 502/503 are answers about providers, logged as events
            # log_response reads any response's status; its stub asks for an HttpResponse.
            log_response("%s: %s", response.reason_phrase, request.path, response=response, request=request)  # type: ignore[arg-type]
        return response

    async def send_response(self, response: Any, send: Any) -> None:
        # What the API's answers carry whoever made them (the 413 above included): a client
        # must not sniff an answer into HTML, nor load or frame anything from it.
        for name, value in API_SECURITY_HEADERS.items():
            response[name] = value
        await super().send_response(response, send)

    async def _serve(self, request: ASGIRequest, send: Any) -> None:
        response = await self.get_response_async(request)
        response._handler_class = self.__class__  # type: ignore[attr-defined]
        await self.send_response(response, send)


def _too_large(limit: int, path: str) -> HttpResponse:
    return error_for_path(
        path, 413, "request_too_large", f"The request body is larger than {limit} bytes.", code="request_too_large"
    )

"""API keys on every call (`Authorization: Bearer <key>`, or `x-api-key: <key>` as the
anthropic SDK sends it, on every API): a SHA-256 lookup in the snapshot (no query), scopes, optional
per-key request limits, and `last_used_at` written in the background, once a minute at most."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from project.database import db_call
from providers.runtime import Runtime, runtime
from providers.snapshot import KeyEntry

from .dialects.dialect import Dialect
from .errors import RequestError
from .exchange import request_id_of

log = logging.getLogger(__name__)

View = Callable[..., Awaitable[HttpResponseBase]]  # a streamed answer too


def bearer_token(request: HttpRequest) -> str | None:
    meta = request.META
    header = meta.get("HTTP_AUTHORIZATION", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return meta.get("HTTP_X_API_KEY") or None  # the anthropic SDK's header


class KeyUsage:
    """Per-process last-use times of API keys, written in batches."""

    def __init__(self) -> None:
        self.last_used: dict[int, float] = {}
        self._flusher: asyncio.Task[None] | None = None

    def touch(self, key: KeyEntry, now: float) -> None:
        self.last_used[key.id] = now
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(60)
        await self.flush()

    async def flush(self) -> None:
        pending, self.last_used = self.last_used, {}
        if pending:
            try:
                await db_call(_write_last_used, pending)
            except Exception:
                log.exception("could not record API key use")


def _write_last_used(pending: dict[int, float]) -> None:
    from datetime import UTC, datetime

    from providers.models import ApiKey

    for key_id, at in pending.items():
        ApiKey.objects.filter(pk=key_id).update(last_used_at=datetime.fromtimestamp(at, tz=UTC))


def key_usage(rt: Runtime) -> KeyUsage:
    usage = getattr(rt, "key_usage", None)
    if usage is None:
        usage = rt.key_usage = KeyUsage()
    return usage


async def authenticate(request: HttpRequest, scope: str) -> KeyEntry:
    token = bearer_token(request)
    if token is None:
        raise RequestError(
            401,
            "Missing API key: send Authorization: Bearer <key> (or x-api-key: <key>).",
            type_="authentication_error",
            code="missing_api_key",
        )
    rt = runtime()
    snapshot = await rt.current()
    digest = hashlib.sha256(token.encode()).hexdigest()
    key = snapshot.keys.get(digest)
    if key is None and await rt.refresh_soon():  # a key created a moment ago works at once
        key = (await rt.current()).keys.get(digest)
    if key is None or (key.expires_at is not None and key.expires_at <= timezone.now()):
        raise RequestError(401, "Invalid API key.", type_="authentication_error", code="invalid_api_key")
    if not key.has_scope(scope):
        raise RequestError(
            403, f"This API key lacks the {scope!r} scope.", type_="permission_error", code="insufficient_scope"
        )
    # The key's own limits (routes, budget, rpm, tpm) are checked once the route is known,
    # before any provider is called (providers/keys.py, from the gateway's Exchange.run).
    key_usage(rt).touch(key, time.time())
    return key


def api_view(scope: str, *, dialect: Dialect | None = None) -> Callable[[View], View]:
    """An async view for API clients: a key (Bearer or x-api-key) with `scope`, no CSRF (no
    cookies used). Its refusals are in the shape of `dialect`'s API (OpenAI's by default).
    Every answer of a gateway API (`scope` "gateway"), refusals included, carries the
    request's `X-Request-Id` (the caller's own when usable: exchange.py)."""
    shape = dialect.error_body if dialect is not None else None

    def decorate(view: View) -> View:
        @functools.wraps(view)
        async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            response = await answer(request, *args, **kwargs)
            if scope == "gateway" and "X-Request-Id" not in response:
                response["X-Request-Id"] = request_id_of(request)
            return response

        async def answer(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            try:
                request.api_key = await authenticate(request, scope)  # type: ignore[attr-defined]
                return await view(request, *args, **kwargs)
            except RequestError as exc:
                return exc.response(shape)
            except RequestDataTooBig:  # Django's own answer would be an HTML 400
                return RequestError(
                    413,
                    f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.",
                    type_="request_too_large",
                    code="request_too_large",
                ).response(shape)
            except SuspiciousOperation as exc:  # too many form fields or files, a bad multipart name...
                return RequestError(400, f"The request is refused: {exc}", code="invalid_request").response(shape)

        return csrf_exempt(wrapper)

    return decorate

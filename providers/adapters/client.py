"""The shared HTTP client every adapter uses: one pooled `httpx.AsyncClient` per event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from providers.engine.errors import UpstreamError
from providers.engine.outcome import Classification, Outcome

DEFAULT_LIMITS = httpx.Limits(max_connections=512, max_keepalive_connections=128, keepalive_expiry=30)


def _too_large(size: int, limit: int) -> UpstreamError:
    return UpstreamError(Classification(Outcome.FAILURE, "response_too_large"), status=200,
                         message=f"the answer has over {limit} bytes ({size} seen); the gateway reads at most "
                                 f"{limit} (GATEWAY_MAX_RESPONSE_BYTES)")


class _CountedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, limit: int) -> None:
        self.inner = inner
        self.limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self.inner:
            seen += len(chunk)
            if seen > self.limit:
                raise _too_large(seen, self.limit)
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


class LimitedTransport(httpx.AsyncBaseTransport):
    """Stops reading an answer past `limit` bytes: a Content-Length above it is refused before
    any body is read, and a body that grows past it is cut there (the connection closed), so
    no upstream can make the gateway hold more than `limit` of one answer in memory. Either way
    the attempt fails with `response_too_large`, and the engine retries or falls back."""

    def __init__(self, inner: httpx.AsyncBaseTransport, limit: int) -> None:
        self.inner = inner
        self.limit = limit

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.limit:
            await response.aclose()
            raise _too_large(int(length), self.limit)
        response.stream = _CountedStream(response.stream, self.limit)  # type: ignore[arg-type]
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def build_client(transport: str = "aiohttp", *, max_response_bytes: int | None = None) -> httpx.AsyncClient:
    """A keep-alive client. `transport="aiohttp"` runs httpx's API over aiohttp's pool, which
    measured 3-7x the throughput of httpx's own pool at concurrency 32 (shared/measurements.md);
    `"httpx"` uses httpx's own transport. With `max_response_bytes`, no answer is read past it."""
    if transport == "aiohttp":
        import httpx_aiohttp

        # The transport owns the pool, so the limits go to it, not to the client.
        inner: httpx.AsyncBaseTransport = httpx_aiohttp.AiohttpTransport(limits=DEFAULT_LIMITS)
    else:
        inner = httpx.AsyncHTTPTransport(limits=DEFAULT_LIMITS)
    if max_response_bytes is not None:
        inner = LimitedTransport(inner, max_response_bytes)
    return httpx.AsyncClient(transport=inner, timeout=30)

"""The shared HTTP client every adapter uses: one pooled `httpx.AsyncClient` per event loop,
every connection of which passes the URL guard (`urlguard`).

The guard runs twice per request. Before anything is sent, the URL's host is judged as the
resolver will read it (`GuardedTransport`); then, at connect time, the addresses a name
resolved to are judged before a socket is opened, and only those are connected to (on
aiohttp a resolver given to the `TCPConnector`, on httpx's own transport a network backend
that resolves, checks and connects to the checked address). A DNS name that resolves to a
refused address is refused, however the name was spelt and whenever it changes.

`build_client()` makes the provider client (policy "provider": loopback allowed). Its
`fetcher()` is the sibling for URLs a caller or an upstream supplied (policy "fetch"), with
its own pool and DNS cache, no proxy from the environment (a proxy would resolve names where
the guard cannot see them) and no cookies. `fetch()` downloads such a URL for an adapter and
says whose fault a failure is.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal, cast

import httpcore
import httpx

from providers.engine import Classification, Outcome, UpstreamError, mark_request_sent

from . import urlguard
from .answer import FRAMING, Bounded, DirectPath, refuse_declared_size
from .scrub import ScrubbingTransport
from .urlguard import URLRefused

DEFAULT_LIMITS = httpx.Limits(max_connections=512, max_keepalive_connections=128, keepalive_expiry=30)

# name, port -> the addresses it resolves to (a test's stand-in for DNS)
Resolve = Callable[[str, int], Awaitable[list[str]]]
PolicyRef = str | urlguard.Policy


class _BoundedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, bounded: Bounded) -> None:
        self.inner = inner
        self.bounded = bounded

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner:
            out = self.bounded.feed(chunk)
            if out:
                yield out
        tail = self.bounded.flush()
        if tail:
            yield tail

    async def aclose(self) -> None:
        await self.inner.aclose()


class LimitedTransport(httpx.AsyncBaseTransport):
    """Stops reading an answer past `limit` bytes, on the wire or decoded: a Content-Length
    above it is refused before any body is read, and a body that grows past it, or that
    inflates past it, is cut there (the connection closed), so no upstream can make the
    gateway hold more than `limit` of one answer in memory. Either way the attempt fails
    with `response_too_large`, and the engine retries or falls back. A compressed body is
    handed on decoded (`answer.Bounded`)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, limit: int) -> None:
        self.inner = inner
        self.limit = limit

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        try:
            refuse_declared_size(response, self.limit)
        except UpstreamError:
            await response.aclose()
            raise
        bounded = Bounded(response.headers, self.limit)
        # An async transport's answer streams asynchronously (httpx types it as either kind).
        stream = _BoundedStream(cast(httpx.AsyncByteStream, response.stream), bounded)
        if not bounded.decodes:
            response.stream = stream
            return response
        headers = [(k, v) for k, v in response.headers.raw if k.lower() not in FRAMING]
        return httpx.Response(
            response.status_code, headers=headers, stream=stream, request=request, extensions=response.extensions
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


# -- the guard in the transport -------------------------------------------------------------------


def _policy(ref: PolicyRef) -> urlguard.Policy:
    # Looked up per request, so a reconfigured allow-list applies to clients already built.
    return urlguard.current(ref) if isinstance(ref, str) else ref


class GuardedTransport(httpx.AsyncBaseTransport):
    """Judges every request's scheme and host (each redirect hop too, as each is a request)
    before the inner transport sees it."""

    def __init__(self, inner: httpx.AsyncBaseTransport, policy: PolicyRef) -> None:
        self.inner = inner
        self.policy = policy

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme not in ("http", "https"):
            raise URLRefused(f"the scheme {request.url.scheme!r} is not fetched (http and https only)")
        # raw_host is what the client connects to: IDNA-encoded, as httpx parsed it.
        _policy(self.policy).check_host(request.url.raw_host.decode("ascii", "replace"))
        if not _is_fetch(self.policy):
            mark_request_sent()  # the provider now has the request: later errors are its answer's
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _system_resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedResolver:
    """An aiohttp resolver: the system's (or `resolve`'s) answer, judged by the policy before
    aiohttp connects to any of it. aiohttp skips the resolver for an address literal; the
    `GuardedTransport` in front has judged that literal already."""

    def __init__(self, policy: PolicyRef, resolve: Resolve | None = None) -> None:
        self.policy = policy
        self._resolve = resolve
        self._inner: Any = None

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[dict[str, Any]]:
        if self._resolve is None:
            if self._inner is None:
                from aiohttp.resolver import DefaultResolver

                self._inner = DefaultResolver()
            found: list[dict[str, Any]] = await self._inner.resolve(host, port, family=family)
        else:
            found = [_resolve_result(host, address, port) for address in await self._resolve(host, port)]
        _policy(self.policy).check_resolved(host.rstrip("."), [str(r["host"]) for r in found])
        return found

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()


def _resolve_result(host: str, address: str, port: int) -> dict[str, Any]:
    version = ipaddress.ip_address(address).version
    return {
        "hostname": host,
        "host": address,
        "port": port,
        "family": socket.AF_INET6 if version == 6 else socket.AF_INET,
        "proto": 0,
        "flags": socket.AI_NUMERICHOST,
    }


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that resolves a name itself, judges every address, then
    connects to the judged addresses in turn (TLS still verifies the name: httpcore passes
    the URL's host as the server name when it starts TLS)."""

    def __init__(self, inner: Any, policy: PolicyRef, resolve: Resolve | None = None) -> None:
        self.inner = inner
        self.policy = policy
        self._resolve = resolve or _system_resolve

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> Any:
        try:
            async with asyncio.timeout(timeout):
                addresses = [host] if _is_address(host) else await self._resolve(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} took too long") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        _policy(self.policy).check_resolved(host.rstrip("."), addresses)
        error: Exception = httpcore.ConnectError(f"{host} resolved to no address")
        for address in addresses:
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> Any:
        return await self.inner.connect_unix_socket(*args, **kwargs)

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


# -- clients --------------------------------------------------------------------------------------


class _NoCookies(httpx.Cookies):
    """A jar that keeps nothing and reads nothing: `extract_cookies` is a no-op, so a response
    costs no cookie parsing (httpx builds a urllib request per response for it)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set_cookie_header(self, request: httpx.Request) -> None:
        return None


_NO_COOKIES = _NoCookies()


class GuardedClient(httpx.AsyncClient):
    """The gateway's HTTP client: every connection judged by `policy`. `fetcher()` is its
    sibling for caller- and upstream-supplied URLs, built on first use and closed with it.

    It keeps no cookies: one pooled client serves every caller and every provider, so a cookie
    one upstream answer set would ride along on other callers' requests; every call stands on
    its credentials alone (and the jar's parsing was a few per cent of a request's CPU)."""

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        return None

    def __init__(
        self,
        *,
        transport_kind: str,
        policy: PolicyRef,
        max_response_bytes: int | None,
        resolve: Resolve | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.transport_kind = transport_kind
        self.url_policy = policy
        self.max_response_bytes = max_response_bytes
        self.resolve = resolve
        self._fetcher: GuardedClient | None = None
        self._direct: DirectPath | None = None

    def _direct_for(
        self,
        url: Any,
        content: Any,
        headers: Any,
        follow_redirects: Any = httpx.USE_CLIENT_DEFAULT,
        auth: Any = httpx.USE_CLIENT_DEFAULT,
        others: tuple[Any, ...] = (),
    ) -> DirectPath | None:
        """The direct path, if it can take this request: an absolute URL, a JSON or bytes body,
        headers as a mapping, no params, form, files, auth, cookies, redirects, extensions
        (`others`, all None) or request hooks."""
        direct = self._direct
        if (
            direct is not None
            and isinstance(url, str | httpx.URL)
            and not self._event_hooks["request"]
            and all(other is None for other in others)
            and auth is httpx.USE_CLIENT_DEFAULT
            and self._auth is None
            and (
                follow_redirects is False
                or (follow_redirects is httpx.USE_CLIENT_DEFAULT and not self.follow_redirects)
            )
            and (content is None or isinstance(content, bytes | str))
            and (headers is None or isinstance(headers, dict | httpx.Headers))
        ):
            return direct
        return None

    def _given(self, content: Any, json: Any, headers: Any, timeout: Any) -> dict[str, Any]:
        """A request's body, headers and timeout as the direct path takes them."""
        wait = self.timeout if timeout is httpx.USE_CLIENT_DEFAULT else timeout
        return {"content": content, "json": json, "headers": headers, "timeout": wait}

    async def _heard(self, response: httpx.Response) -> httpx.Response:
        for hook in self._event_hooks["response"]:
            await hook(response)
        return response

    async def request(
        self,
        method: str,
        url: httpx.URL | str,
        *,
        content: Any = None,
        data: Any = None,
        files: Any = None,
        json: Any = None,
        params: Any = None,
        headers: Any = None,
        cookies: Any = None,
        auth: Any = httpx.USE_CLIENT_DEFAULT,
        follow_redirects: Any = httpx.USE_CLIENT_DEFAULT,
        timeout: Any = httpx.USE_CLIENT_DEFAULT,
        extensions: Any = None,
    ) -> httpx.Response:
        """httpx's `request` (`get` and `post` come here too), through the direct path when it
        can take the request (`_direct_for`). The client's response hooks see its answer, as on
        httpx's way."""
        direct = self._direct_for(
            url, content, headers, follow_redirects, auth, (data, files, params, cookies, extensions)
        )
        if direct is not None:
            return await self._heard(
                await direct.send(method, str(url), **self._given(content, json, headers, timeout))
            )
        return await super().request(
            method,
            url,
            content=content,
            data=data,
            files=files,
            json=json,
            params=params,
            headers=headers,
            cookies=cookies,
            auth=auth,
            follow_redirects=follow_redirects,
            timeout=timeout,
            extensions=extensions,
        )

    async def open(
        self,
        method: str,
        url: httpx.URL | str,
        *,
        content: Any = None,
        json: Any = None,
        headers: Any = None,
        timeout: Any = httpx.USE_CLIENT_DEFAULT,
    ) -> httpx.Response:
        """`send(build_request(...), stream=True)`: the answer with its body still to read; the
        caller closes it. Through the direct path when it can take the request."""
        direct = self._direct_for(url, content, headers)
        if direct is not None:
            response = await direct.open(method, str(url), **self._given(content, json, headers, timeout))
            try:
                return await self._heard(response)
            except BaseException:
                await response.aclose()
                raise
        request = self.build_request(method, url, content=content, json=json, headers=headers, timeout=timeout)
        return await self.send(request, stream=True)

    def fetcher(self) -> GuardedClient:
        if self._fetcher is None:
            self._fetcher = build_client(
                self.transport_kind,
                max_response_bytes=self.max_response_bytes,
                policy=urlguard.FETCH,
                resolve=self.resolve,
            )
        return self._fetcher

    async def aclose(self) -> None:
        try:
            if self._fetcher is not None:
                await self._fetcher.aclose()
        finally:
            await super().aclose()

    async def __aexit__(self, *exc: Any) -> None:
        try:
            if self._fetcher is not None:
                await self._fetcher.aclose()
        finally:
            await super().__aexit__(*exc)


def build_client(
    transport: str = "aiohttp",
    *,
    max_response_bytes: int | None = None,
    policy: PolicyRef = urlguard.PROVIDER,
    resolve: Resolve | None = None,
    timeout: float | httpx.Timeout = 30,
    trust_env: bool | None = None,
) -> GuardedClient:
    """A keep-alive client whose connections pass the URL guard's `policy` ("provider" for
    operator-configured URLs, "fetch" for caller- and upstream-supplied ones). `transport=
    "aiohttp"` runs httpx's API over aiohttp's pool, which measured 3-7x the throughput of
    httpx's own pool at concurrency 32 (shared/measurements.md); `"httpx"` uses httpx's own
    transport. With `max_response_bytes`, no answer is read past it. `resolve` replaces DNS
    (tests). `trust_env` (proxies from the environment) defaults to true for the provider
    policy and is always false for the fetch policy."""
    if transport == "aiohttp":
        import httpx_aiohttp

        # The transport owns the pool, so the limits go to it, not to the client.
        aio = httpx_aiohttp.AiohttpTransport(limits=DEFAULT_LIMITS)
        aio.client = _session_factory(aio, policy, resolve)
        inner: httpx.AsyncBaseTransport = aio
    else:
        own = httpx.AsyncHTTPTransport(limits=DEFAULT_LIMITS)
        # httpx has no public hook for name resolution; its pool's network backend is it.
        own._pool._network_backend = GuardedBackend(own._pool._network_backend, policy, resolve)
        inner = own
    if max_response_bytes is not None:
        inner = LimitedTransport(inner, max_response_bytes)
    # Every byte an upstream sends back passes the scrubber before anything else sees it.
    inner = ScrubbingTransport(inner)
    extra: dict[str, Any] = {"trust_env": trust_env is not False}
    if _is_fetch(policy):
        extra = {"trust_env": False}
    client = GuardedClient(
        transport_kind=transport,
        policy=policy,
        max_response_bytes=max_response_bytes,
        resolve=resolve,
        transport=GuardedTransport(inner, policy),
        timeout=timeout,
        **extra,
    )
    # A proxy from the environment gets a transport of its own, which resolves nothing here:
    # its requests are still judged by URL.
    proxied = False
    for pattern, mounted in list(client._mounts.items()):
        if mounted is not None:
            client._mounts[pattern] = GuardedTransport(ScrubbingTransport(mounted), policy)
            proxied = True
    if transport == "aiohttp" and not proxied:
        client._direct = DirectPath(
            _session_of(aio),
            policy=policy,
            limit=max_response_bytes,
            default_headers=client.headers,
            fetching=_is_fetch(policy),
        )
    return client


def _session_of(aio: Any) -> Callable[[], Any]:
    """The aiohttp session of `aio`, made on first use: one pool for both paths."""

    def session() -> Any:
        from aiohttp import ClientSession

        if not isinstance(aio.client, ClientSession):
            aio.client = aio.get_client()
        return aio.client

    return session


def _session_factory(aio: Any, policy: PolicyRef, resolve: Resolve | None) -> Callable[[], Any]:
    def session() -> Any:
        import aiohttp

        # What httpx_aiohttp would build, with the guarded resolver; cookies stay httpx's
        # business (aiohttp's own jar would add a second, invisible one).
        connector = aiohttp.TCPConnector(
            keepalive_timeout=DEFAULT_LIMITS.keepalive_expiry,
            limit=DEFAULT_LIMITS.max_connections or 0,
            ssl=aio.ssl_context,
            resolver=GuardedResolver(policy, resolve),  # type: ignore[arg-type]
        )
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

    return session


# -- fetching URLs that came from a caller or an upstream -----------------------------------------

SuppliedBy = Literal["caller", "upstream"]

UNREACHABLE = (
    "could not fetch {what}: the host did not answer in time or refused, or it is an address "
    "the gateway does not fetch (loopback, private, link-local or metadata). Give a public "
    "http(s) URL or a data: URL."
)


async def fetch(
    client: httpx.AsyncClient,
    url: str,
    *,
    timeout: float,
    supplied_by: SuppliedBy,
    what: str = "the URL",
    same_origin_as: str | None = None,
    connect_timeout: float | None = None,
) -> httpx.Response:
    """GET `url`, which a caller or an upstream supplied, through the "fetch" policy.

    For a caller's URL every failure is the caller's (a 400, CALLER_ERROR: no breaker effect):
    a URL refused by what it says gets the reason; a refusal by what its name resolves to, a
    connection refused or timed out, all get one message, so the answer is no port or DNS
    oracle. Fetching takes at most half of `timeout`, so the attempt's own deadline (a
    provider failure) never fires on a caller's slow URL.

    For an upstream's URL (a prediction's output), a refused URL is that provider's FAILURE
    (`unsafe_output_url`); other errors propagate for the engine to classify as before.
    `same_origin_as`: a provider base URL; an upstream URL on that same origin is fetched with
    the provider's own client (the operator chose that host already).
    """
    if supplied_by == "caller":
        timeout = max(0.001, timeout / 2)
    wait = httpx.Timeout(timeout, connect=min(connect_timeout or timeout, timeout))
    if supplied_by == "upstream" and same_origin_as and _same_origin(url, same_origin_as):
        return await client.get(url, timeout=wait)
    policy = client.url_policy if isinstance(client, GuardedClient) and _is_fetch(client.url_policy) else urlguard.FETCH
    try:
        _policy(policy).check_url(url)
    except URLRefused as exc:
        raise _refused(exc, supplied_by, what) from None
    if supplied_by == "upstream":
        async with _fetching(client) as http:
            try:
                return await http.get(url, timeout=wait)
            except URLRefused as exc:
                raise _refused(exc, supplied_by, what) from None
    try:
        async with _fetching(client) as http, asyncio.timeout(timeout):
            response = await http.get(url, timeout=wait)
    except URLRefused as exc:
        raise _refused(exc, supplied_by, what) from None
    except (httpx.HTTPError, OSError, TimeoutError):
        raise urlguard.caller_error(
            UNREACHABLE.format(what=what), code="url_not_fetched", reason="url_unreachable"
        ) from None
    except UpstreamError as exc:
        if exc.classification.reason == "response_too_large":
            raise urlguard.caller_error(
                f"{what} is too large: {exc.message}", code="url_too_large", reason="url_too_large"
            ) from None
        raise
    if not response.is_success:
        raise urlguard.caller_error(
            f"could not fetch {what}: it answered HTTP {response.status_code}",
            code="url_not_fetched",
            reason="url_unreachable",
        )
    return response


def _is_fetch(policy: PolicyRef) -> bool:
    return (policy if isinstance(policy, str) else policy.name) == urlguard.FETCH


class _fetching:
    """The client to fetch with: a guarded client's fetcher (or itself, if it is one), or for
    any other client (a test's plain one) a short-lived guarded client of httpx's transport."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.own: GuardedClient | None = None

    async def __aenter__(self) -> httpx.AsyncClient:
        if isinstance(self.client, GuardedClient):
            return self.client if _is_fetch(self.client.url_policy) else self.client.fetcher()
        self.own = build_client("httpx", policy=urlguard.FETCH)
        return self.own

    async def __aexit__(self, *exc: object) -> None:
        if self.own is not None:
            await self.own.aclose()


def _refused(exc: URLRefused, supplied_by: SuppliedBy, what: str) -> UpstreamError:
    if supplied_by == "upstream":
        return UpstreamError(
            Classification(Outcome.FAILURE, "unsafe_output_url"),
            status=200,
            message=f"the provider answered a URL the gateway does not fetch: {exc.message}",
        )
    if not exc.static:  # what a name resolves to is told no more than a closed port
        return urlguard.caller_error(UNREACHABLE.format(what=what), code="url_not_fetched", reason="url_refused")
    return urlguard.caller_error(f"{what} is refused: {exc.message}", code="url_refused")


def _same_origin(url: str, base_url: str) -> bool:
    try:
        a, b = httpx.URL(url), httpx.URL(base_url)
    except (httpx.InvalidURL, TypeError):
        return False
    return (a.scheme, a.raw_host, a.port or _PORTS.get(a.scheme)) == (
        b.scheme,
        b.raw_host,
        b.port or _PORTS.get(b.scheme),
    )


_PORTS = {"http": 80, "https": 443}

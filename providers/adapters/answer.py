"""An upstream's answer as the gateway reads it: bounded, decoded and scrubbed, on both paths
of the shared client.

- `Bounded` decodes a body in the content coding it came in (gzip, deflate, br, zstd: what
  httpx can decode) and counts both the bytes on the wire and the bytes they decode to
  against one limit. A compressed body is fed to its decoder in small slices, so a body that
  inflates a thousandfold (a "zip bomb") is cut at the limit, not after it filled memory.
- `DirectPath` sends a plain request (a JSON or bytes body, headers, a timeout) straight to
  the aiohttp session of the client's transport, without httpx's request and transport
  machinery, which was a sixth of a chat request's CPU (docs/performance.md). It keeps every
  guard the transport chain applies: the scheme and host judged by the URL policy before
  anything is sent (on the very URL object aiohttp connects to; the session's resolver judges
  each resolved address, as on the other path), the size limit, the scrubber on headers,
  reason and body, and transport errors mapped to httpx's exceptions and scrubbed. Requests it
  does not take (streamed answers, forms, files, query params, proxies) go the httpx way.
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import httpx
import yarl
from httpx_aiohttp.transport import map_aiohttp_exceptions

from providers.engine import Classification, Outcome, UpstreamError, mark_request_sent

from . import scrub, urlguard
from .urlguard import URLRefused

if TYPE_CHECKING:
    import aiohttp

    from .client import PolicyRef

__all__ = ["FRAMING", "Bounded", "DirectPath", "DirectResponse", "refuse_declared_size", "too_large"]

# A compressed body goes to its decoder a slice at a time, so that one slice can never make
# more than about a megabyte however the body was built: deflate inflates at most about
# 1,000-fold, zstd's run-length blocks (3 bytes for 128 KiB) about 40,000-fold.
SLICES = {"zstd": 24}
SLICE = 1024


def too_large(size: int, limit: int) -> UpstreamError:
    return UpstreamError(
        Classification(Outcome.FAILURE, "response_too_large"),
        status=200,
        message=f"the answer has over {limit} bytes ({size} seen); the gateway reads at most "
        f"{limit} (GATEWAY_MAX_RESPONSE_BYTES)",
    )


def codings(headers: Any) -> list[str]:
    """The content codings of an answer, outermost last (`headers`: httpx's or aiohttp's)."""
    values = (
        headers.getall("content-encoding", []) if hasattr(headers, "getall") else headers.get_list("content-encoding")
    )
    return [c.strip().lower() for value in values for c in value.split(",") if c.strip() not in ("", "identity")]


class Bounded:
    """Decodes a body's content coding and keeps it within `limit` bytes, wire and decoded.

    A body in a coding httpx cannot decode either is not `readable`: it is passed on as it is
    (nobody down the line can read it, nor scrub it) and its wire bytes are what is counted.
    `decodes` tells whether what `feed` returns is no longer what the answer's
    Content-Encoding and Content-Length describe."""

    def __init__(self, headers: Any, limit: int | None) -> None:
        coding = codings(headers)
        self.slice = min((SLICES.get(c, SLICE) for c in coding), default=SLICE)
        try:
            self.decoder = scrub.decoder_for(coding)
            self.readable = True
        except KeyError:
            self.decoder, self.readable = None, False
        self.decodes = self.decoder is not None
        self.limit = limit
        self.wire = 0
        self.out = 0

    def _count(self, data: bytes) -> bytes:
        self.out += len(data)
        if self.limit is not None and self.out > self.limit:
            raise too_large(self.out, self.limit)
        return data

    def feed(self, chunk: bytes) -> bytes:
        self.wire += len(chunk)
        if self.limit is not None and self.wire > self.limit:
            raise too_large(self.wire, self.limit)
        if self.decoder is None:
            return self._count(chunk)
        step = self.slice
        if len(chunk) <= step:
            return self._count(self.decoder.decode(chunk))
        return b"".join(self._count(self.decoder.decode(chunk[at : at + step])) for at in range(0, len(chunk), step))

    def flush(self) -> bytes:
        return self._count(self.decoder.flush()) if self.decoder is not None else b""


class DirectResponse(httpx.Response):
    """An answer the direct path read whole. Its `request` (and so `url`) is built on first use:
    nothing on the hot path reads it."""

    _method = "GET"
    _target = ""

    @property
    def request(self) -> httpx.Request:
        if self._request is None:
            self._request = httpx.Request(self._method, self._target)
        return self._request

    @request.setter
    def request(self, value: httpx.Request) -> None:
        self._request = value

    @classmethod
    def read_whole(
        cls, status: int, headers: list[tuple[bytes, bytes]], body: bytes, reason: bytes, method: str, url: str
    ) -> DirectResponse:
        """What `httpx.Response(content=body)` makes, without running the body through httpx's
        decoders again (it arrives decoded): read, closed, framed by `headers` as given."""
        response = cls(
            status,
            headers=headers,
            stream=httpx.ByteStream(body),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason},
        )
        response._content = body
        response.is_stream_consumed = response.is_closed = True
        response._method, response._target = method, url
        return response


@lru_cache(maxsize=512)
def _client_timeout(connect: float | None, read: float | None, pool: float | None) -> aiohttp.ClientTimeout:
    import aiohttp

    # As httpx_aiohttp maps an httpx.Timeout: connect per socket, read per read, pool for the
    # whole wait for a connection.
    return aiohttp.ClientTimeout(sock_connect=connect, sock_read=read, connect=pool)


class DirectPath:
    """Sends plain requests through `session()` (the aiohttp transport's session), judged by
    `policy`, answers read whole within `limit` bytes."""

    def __init__(
        self,
        session: Any,
        *,
        policy: PolicyRef,
        limit: int | None,
        default_headers: httpx.Headers,
        fetching: bool,
    ) -> None:
        self.session = session
        self.policy = policy
        self.limit = limit
        self.defaults = default_headers  # the client's: read at each request, as httpx does
        self.fetching = fetching

    def _headers(self, given: Mapping[str, str] | None, json_body: bool) -> dict[str, str]:
        headers = dict(self.defaults.items())
        if json_body:
            headers["content-type"] = "application/json"
        if given:
            for name, value in given.items():
                headers[name.lower()] = value
        return headers

    def _request(
        self,
        method: str,
        url: str,
        content: bytes | str | None,
        json: Any,
        headers: Mapping[str, str] | None,
        timeout: Any,
    ) -> Any:
        """The aiohttp request (not yet awaited) for a request the guard lets through."""
        try:
            target = yarl.URL(url)
        except (ValueError, TypeError) as exc:
            raise httpx.InvalidURL(str(exc)) from None
        if target.scheme not in ("http", "https"):
            raise URLRefused(f"the scheme {target.scheme!r} is not fetched (http and https only)")
        # raw_host is what aiohttp connects to (IDNA-encoded): the URL object judged is the one sent.
        policy = urlguard.current(self.policy) if isinstance(self.policy, str) else self.policy
        policy.check_host(target.raw_host or "")
        if json is not None:
            body: bytes | None = jsonlib.dumps(
                json, ensure_ascii=False, separators=(",", ":"), allow_nan=False
            ).encode()
        else:
            body = content.encode() if isinstance(content, str) else (content or None)
        wait = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        if not self.fetching:
            mark_request_sent()  # the provider now has the request: later errors are its answer's
        return self.session().request(
            method,
            target,
            data=body,
            headers=self._headers(headers, json is not None),
            allow_redirects=False,
            auto_decompress=False,
            compress=False,
            timeout=_client_timeout(wait.connect, wait.read, wait.pool),
        )

    async def send(
        self,
        method: str,
        url: str,
        *,
        content: bytes | str | None,
        json: Any,
        headers: Mapping[str, str] | None,
        timeout: Any,
    ) -> httpx.Response:
        """The answer, read whole."""
        redactor = scrub.current()
        with _transport_errors(redactor):
            async with self._request(method, url, content, json, headers, timeout) as answer:
                data, bounded = await self._read(answer)
                status, reason, raw = answer.status, (answer.reason or "").encode(), answer.raw_headers
        out, reason = _head(raw, reason, bounded, redactor)
        if redactor is not None and bounded.readable:
            data = redactor.sub(data)
        if _reframed(bounded, redactor) and all(name.lower() != b"transfer-encoding" for name, _ in out):
            out.append((b"content-length", str(len(data)).encode()))  # as httpx frames a body it holds
        return DirectResponse.read_whole(status, out, data, reason, method, url)

    async def open(
        self,
        method: str,
        url: str,
        *,
        content: bytes | str | None,
        json: Any,
        headers: Mapping[str, str] | None,
        timeout: Any,
    ) -> httpx.Response:
        """The answer with its body still to read (`aiter_*`), as `send(stream=True)` gives it;
        the caller closes it."""
        redactor = scrub.current()
        with _transport_errors(redactor):
            answer = await self._request(method, url, content, json, headers, timeout)
        bounded = self._bounded(answer)
        out, reason = _head(answer.raw_headers, (answer.reason or "").encode(), bounded, redactor)
        response = DirectResponse(
            answer.status,
            headers=out,
            stream=_Streamed(answer, bounded, redactor if bounded.readable else None),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason},
        )
        response._method, response._target = method, url
        return response

    def _bounded(self, answer: Any) -> Bounded:
        """The answer's body bound, once its Content-Length is within the limit (else the
        connection is closed: its body is not read)."""
        try:
            refuse_declared_size(answer, self.limit)
        except UpstreamError:
            answer.close()
            raise
        return Bounded(answer.headers, self.limit)

    async def _read(self, answer: Any) -> tuple[bytes, Bounded]:
        bounded = self._bounded(answer)
        try:
            if not bounded.decodes and answer.headers.get("content-length", "").isdigit():
                return bounded.feed(await answer.read()), bounded  # aiohttp reads no more than that
            parts = [bounded.feed(chunk) async for chunk in answer.content.iter_any()]
            parts.append(bounded.flush())
            return b"".join(parts), bounded
        except UpstreamError:
            answer.close()  # not read to its end: the connection cannot be reused
            raise


FRAMING = scrub.FRAMING


@contextmanager
def _transport_errors(redactor: scrub.Redactor | None) -> Iterator[None]:
    """aiohttp's errors raised as httpx's (what the engine classifies), with secrets scrubbed
    from their messages (they quote URLs)."""
    try:
        with map_aiohttp_exceptions():
            yield
    except Exception as exc:
        if redactor is not None:
            scrub.scrub_exception(exc, redactor)
        raise


def refuse_declared_size(answer: Any, limit: int | None) -> None:
    """A Content-Length over the limit is refused before any of the body is read."""
    length = answer.headers.get("content-length", "")
    if limit is not None and length.isdigit() and int(length) > limit:
        raise too_large(int(length), limit)


def _reframed(bounded: Bounded, redactor: scrub.Redactor | None) -> bool:
    """Whether the body passed on is no longer the one the answer's framing headers describe:
    decoded, or readable by a scrubber that may change it."""
    return bounded.readable and (bounded.decodes or redactor is not None)


def _head(
    raw: Any, reason: bytes, bounded: Bounded, redactor: scrub.Redactor | None
) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """An answer's headers and reason as passed on: scrubbed, and without the framing of a body
    that is decoded or may be changed by the scrubber (it is framed by its end)."""
    drop = FRAMING if _reframed(bounded, redactor) else frozenset()
    if redactor is None:
        return [(name, value) for name, value in raw if name.lower() not in drop], reason
    return scrub.scrubbed_headers(redactor, raw, drop), redactor.sub(reason)


class _Streamed(httpx.AsyncByteStream):
    """A body read as it arrives: bounded and decoded (`Bounded`), scrubbed (a value cut across
    two reads is held back until it can be judged), transport errors mapped to httpx's and
    scrubbed. Closing it early closes the connection (its rest was not read)."""

    def __init__(self, answer: Any, bounded: Bounded, redactor: scrub.Redactor | None) -> None:
        self.answer = answer
        self.bounded = bounded
        self.redactor = redactor

    async def __aiter__(self) -> AsyncIterator[bytes]:
        bounded, redactor = self.bounded, self.redactor
        carry = b""
        try:
            with _transport_errors(scrub.current()):
                async for chunk in self.answer.content.iter_any():
                    out = bounded.feed(chunk)
                    if redactor is not None and out:
                        out, carry = redactor.split(carry + out)
                    if out:
                        yield out
                tail = carry + bounded.flush()
        except Exception:
            self.answer.close()  # not read to its end: the connection cannot be reused
            raise
        if tail:
            yield redactor.sub(tail) if redactor is not None else tail

    async def aclose(self) -> None:
        if self.answer.content.at_eof():
            self.answer.release()  # read to its end: the connection goes back to the pool
        else:
            self.answer.close()

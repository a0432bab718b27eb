"""The common frame of every fake provider server.

A fake is an aiohttp application that speaks one provider's wire format, run on a free
loopback port in a thread of its own, so that sync tests, async tests, end-to-end tests with
a real gateway process and benchmarks can all use it. Faults are injected from Python
(`server.fault(status=503, times=2)`) or over HTTP (`POST /__fault__` with the same fields as
JSON), so a test can break a fake that another process talks to.

Fault fields (all optional):
    status            answer with this status and the provider's own error body
    times             apply to this many matching requests, then expire (default: until cleared)
    path              only requests whose path starts with this
    delay_s           wait this long before answering (a slow provider)
    hang              never answer (the client's timeout must fire)
    drop              close the connection without an answer
    retry_after       value of a Retry-After header sent with the error
    headers           extra response headers
    body              raw body to send instead of the normal one (malformed JSON, say)
    error_code        provider error code in the error body (e.g. insufficient_quota)
    cut_stream_after  in a stream, close the connection after this many chunks
    trickle_s         in a stream or body, wait this long between chunks (slowloris upstream)
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Fault:
    status: int | None = None
    times: int | None = None
    path: str = ""
    delay_s: float = 0.0
    hang: bool = False
    drop: bool = False
    retry_after: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    error_code: str | None = None
    cut_stream_after: int | None = None
    trickle_s: float = 0.0


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    query: dict[str, str]
    at: float = field(default_factory=time.time)  # when it arrived (wall clock)

    def json(self) -> Any:
        return json.loads(self.body or b"null")


FAULT = web.RequestKey("fault", object)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeServer:
    """Subclasses set `kind`, add routes in `add_routes` and format errors in `error_body`."""

    kind = "fake"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.requests: list[Recorded] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._startup_error: BaseException | None = None

    # -- what subclasses provide ------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def error_body(self, status: int, fault: Fault) -> dict[str, Any]:
        """The provider's own error body for `status` (OpenAI's shape unless overridden)."""
        return {
            "error": {
                "message": f"fake {self.kind} error {status}",
                "type": fault.error_code or "server_error",
                "param": None,
                "code": fault.error_code,
            }
        }

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        app.router.add_post("/__fault__", self._post_fault)
        app.router.add_delete("/__fault__", self._delete_faults)
        app.router.add_get("/__requests__", self._get_requests)
        app.router.add_delete("/__requests__", self._delete_requests)
        self.add_routes(app)
        return app

    def start(self) -> FakeServer:
        self._thread = threading.Thread(target=self._run, name=f"fake-{self.kind}", daemon=True)
        self._thread.start()
        self._started.wait(10)
        if self._startup_error is not None:
            raise self._startup_error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._start_site())
        except BaseException as exc:  # reported to start()
            self._startup_error = exc
            self._started.set()
            return
        self._started.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup() if self._runner else asyncio.sleep(0))
        loop.close()

    async def _start_site(self) -> None:
        self._runner = web.AppRunner(self.build_app(), access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def start_site(self) -> None:
        """Listen from the current loop (for `python -m tests.fakes`); `port` is set after."""
        await self._start_site()

    # -- faults -------------------------------------------------------------------------------

    def fault(self, **fields: Any) -> Fault:
        fault = Fault(**fields)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def reset(self) -> None:
        self.clear_faults()
        with self._lock:
            self.requests.clear()

    def requests_to(self, path: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if path.startswith(fault.path):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self._faults.remove(fault)
                    return fault
        return None

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/__"):
            return await handler(request)
        body = await request.read()
        with self._lock:
            self.requests.append(
                Recorded(request.method, request.path, dict(request.headers), body, dict(request.query))
            )
        fault = self._take_fault(request.path)
        request[FAULT] = fault
        if fault is None:
            return await handler(request)
        if fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        if fault.hang:
            await asyncio.sleep(3600)
        if fault.drop:
            assert request.transport is not None
            request.transport.close()
            raise asyncio.CancelledError
        if fault.status is not None and fault.status >= 400:
            headers = dict(fault.headers)
            if fault.retry_after is not None:
                headers["Retry-After"] = fault.retry_after
            if fault.body is not None:
                return web.Response(
                    status=fault.status, text=fault.body, headers=headers, content_type="application/json"
                )
            return web.json_response(self.error_body(fault.status, fault), status=fault.status, headers=headers)
        response = await handler(request)
        if fault.body is not None and isinstance(response, web.Response):
            return web.Response(
                status=fault.status or response.status,
                text=fault.body,
                content_type="application/json",
                headers=fault.headers,
            )
        for name, value in fault.headers.items():
            response.headers[name] = value
        return response

    async def _post_fault(self, request: web.Request) -> web.Response:
        data = await request.json()
        fault = self.fault(**data)
        return web.json_response(asdict(fault))

    async def _delete_faults(self, request: web.Request) -> web.Response:
        self.clear_faults()
        return web.json_response({"cleared": True})

    async def _get_requests(self, request: web.Request) -> web.Response:
        with self._lock:
            rows = [{"method": r.method, "path": r.path} for r in self.requests]
        return web.json_response(rows)

    async def _delete_requests(self, request: web.Request) -> web.Response:
        with self._lock:
            self.requests.clear()
        return web.json_response({"cleared": True})

    # -- streaming helpers for subclasses --------------------------------------------------------

    async def stream(
        self,
        request: web.Request,
        frames: Iterable[bytes] | AsyncIterable[bytes],
        *,
        content_type: str = "text/event-stream",
    ) -> web.StreamResponse:
        """Send `frames` one write each, honouring the fault's `cut_stream_after` and `trickle_s`."""
        fault: Fault | None = request.get(FAULT)  # type: ignore[assignment]
        response = web.StreamResponse(status=200, headers={"Content-Type": content_type, "Cache-Control": "no-cache"})
        await response.prepare(request)
        sent = 0

        async def frames_iter() -> Any:
            if isinstance(frames, AsyncIterable):
                async for frame in frames:
                    yield frame
            else:
                for frame in frames:
                    yield frame

        async for frame in frames_iter():
            if fault is not None and fault.cut_stream_after is not None and sent >= fault.cut_stream_after:
                assert request.transport is not None
                request.transport.close()
                return response
            if fault is not None and fault.trickle_s:
                await asyncio.sleep(fault.trickle_s)
            await response.write(frame)
            sent += 1
        await response.write_eof()
        return response


def sse(data: Any, event: str | None = None) -> bytes:
    """One server-sent event frame with a JSON (or literal string) payload."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()

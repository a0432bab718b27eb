"""Upstreams that misbehave below HTTP, where the aiohttp fakes cannot: raw sockets on loopback.

- `BlackHole`: a listening socket whose accept queue is full, so a connect hangs (no SYN-ACK)
  until the client's connect timeout fires. Nothing leaves the machine.
- `RawUpstream`: answers every request with bytes a `behaviour` writes to the socket: a
  slowloris that trickles its answer, a body shorter than its Content-Length, a stream that
  ends cleanly before `data: [DONE]`. It records how each connection ended, so a test can see
  that the gateway let go of a trickling upstream instead of waiting for it forever.
"""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Behaviour = Callable[[socket.socket], None]


class BlackHole:
    """127.0.0.1:<port> accepts nothing: connects to it time out."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.port = self.listener.getsockname()[1]
        # Fill the accept queue (backlog 0 holds one); later SYNs are dropped, never answered.
        self.fillers = []
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", self.port))
            self.fillers.append(filler)
        time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        for sock in [*self.fillers, self.listener]:
            sock.close()

    def __enter__(self) -> BlackHole:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Connection:
    started: float
    ended: float | None = None
    sent: int = 0
    closed_by_peer: bool = False


@dataclass
class RawUpstream:
    behaviour: Behaviour
    connections: list[Connection] = field(default_factory=list)

    def __post_init__(self) -> None:
        upstream = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                conn = Connection(time.monotonic())
                upstream.connections.append(conn)
                sock: socket.socket = self.request
                _read_request(sock)
                try:
                    upstream.behaviour(_Counting(sock, conn))
                except OSError:  # the gateway hung up: what a slowloris test waits for
                    conn.closed_by_peer = True
                conn.ended = time.monotonic()

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> RawUpstream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Counting:
    """The socket, counting what is sent."""

    def __init__(self, sock: socket.socket, conn: Connection) -> None:
        self.sock = sock
        self.conn = conn

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)
        self.conn.sent += len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


def _read_request(sock: socket.socket) -> bytes:
    """Read one request's head and body (by Content-Length)."""
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


# -- behaviours ---------------------------------------------------------------------------------

COMPLETION = {
    "id": "chatcmpl-raw",
    "object": "chat.completion",
    "created": 0,
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "raw"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


def slowloris(interval_s: float = 0.1, limit_s: float = 10.0, *, stream: bool = False) -> Behaviour:
    """A 200 whose body (or, for a stream, whose first event) never completes: one byte at a time."""

    def behave(sock: socket.socket) -> None:
        kind = "text/event-stream" if stream else "application/json"
        sock.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: 100000\r\n\r\n".encode())
        filler = b":" if stream else b" "  # an SSE comment / JSON whitespace, never a whole answer
        end = time.monotonic() + limit_s
        while time.monotonic() < end:
            sock.sendall(filler)
            time.sleep(interval_s)

    return behave


def short_body() -> Behaviour:
    """A 200 that promises more bytes than it sends, then closes."""

    def behave(sock: socket.socket) -> None:
        body = json.dumps(COMPLETION).encode()
        sock.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body) + 500}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        sock.shutdown(socket.SHUT_WR)

    return behave


def stream_without_done(chunks: int = 1) -> Behaviour:
    """An SSE stream that sends `chunks` chunks and ends cleanly (close-delimited), with no [DONE]."""

    def behave(sock: socket.socket) -> None:
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
        for i in range(chunks):
            chunk = {
                "id": "chatcmpl-raw",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "gpt-4o-mini",
                "choices": [{"index": 0, "delta": {"content": f"part{i} "}, "finish_reason": None}],
            }
            sock.sendall(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        sock.shutdown(socket.SHUT_WR)

    return behave


def flood(size: int) -> Behaviour:
    """A 200 of `size` bytes (JSON whitespace after an opening brace), sent as fast as it goes."""

    def behave(sock: socket.socket) -> None:
        sock.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + f"Content-Length: {size}\r\n\r\n{{".encode()
        )
        block = b" " * (1024 * 1024)
        left = size - 1
        while left > 0:
            sock.sendall(block[:left])
            left -= min(left, len(block))

    return behave

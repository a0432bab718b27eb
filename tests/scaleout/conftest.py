"""Scale-out tests: real Redis, real time, real processes.

These tests do NOT run on the engine tests' virtual-time loop: pytest-asyncio's default loop
runs here, because Redis answers in real time. Each test works under a key prefix of its own.

Redis: $SCALEOUT_REDIS_URL, else $REDIS_URL, else redis://127.0.0.1:6379/0. When it cannot be
reached the tests are skipped, unless $REQUIRE_SCALEOUT is set (CI): then they fail.
Tests that stop Redis start a private `redis-server` on a free loopback port instead.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

URL = os.environ.get("SCALEOUT_REDIS_URL") or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
ROOT = Path(__file__).resolve().parents[2]
NAMES = ("A", "B", "C", "D")
# What the tests' stores allow Redis per operation. The production default (50 ms) is for an idle
# Redis; on a CI machine with both cores busy, connecting a new pool and answering can take far
# longer, and a store that times out falls back to local state, which is not what most tests
# look at. Tests of a Redis that does not answer set their own (test_redis_outage.py).
OP_TIMEOUT_S = 2.0


def _reachable(url: str) -> str | None:
    try:
        redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1).ping()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture(scope="session")
def redis_url() -> str:
    problem = _reachable(URL)
    if problem is not None:
        message = f"Redis at {URL} is unreachable ({problem})"
        if os.environ.get("REQUIRE_SCALEOUT"):
            pytest.fail(message + " and REQUIRE_SCALEOUT is set")
        pytest.skip(message + "; set REQUIRE_SCALEOUT to make this a failure")
    return URL


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    value = f"gwtest:{uuid.uuid4().hex[:10]}:"
    yield value
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=value + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


class WorkerProcess:
    """A `tests.scaleout.worker` subprocess, driven by JSON lines."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.scaleout.worker", name],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

    def ready(self) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert json.loads(line) == {"ready": self.name}, line

    def send(self, op: str, **args: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()

    def reply(self) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.name} exited with {self.proc.wait(5)}")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"worker {self.name}:\n{answer['error']}")
        return answer["ok"]

    def __call__(self, op: str, **args: Any) -> Any:
        self.send(op, **args)
        return self.reply()

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self("close")
                self.proc.wait(5)
            except Exception:
                self.proc.kill()
                self.proc.wait(5)


class Fleet:
    """Four worker processes; `all(op, ...)` runs one command on each at the same time."""

    def __init__(self) -> None:
        self.workers = {name: WorkerProcess(name) for name in NAMES}
        for worker in self.workers.values():
            worker.ready()

    def __getitem__(self, name: str) -> WorkerProcess:
        return self.workers[name]

    def all(self, op: str, names: tuple[str, ...] = NAMES, **args: Any) -> dict[str, Any]:
        for name in names:
            self.workers[name].send(op, **args)
        return {name: self.workers[name].reply() for name in names}

    def configure(self, url: str, prefix: str, names: tuple[str, ...] = NAMES, **policy: Any) -> None:
        # Redis gets 250 ms per operation, not the default 50: on a busy machine an answer can
        # take longer than 50 ms, and the store would then rightly decide on local state,
        # which is not what a test of the shared state looks at.
        store = {"op_timeout_s": OP_TIMEOUT_S, **(policy.pop("store", None) or {})}
        self.all("configure", names, url=url, prefix=prefix, policy=policy, store=store)

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stop()


@pytest.fixture(scope="session")
def fleet(redis_url: str) -> Iterator[Fleet]:
    """Four gateway workers A-D (separate processes), reconfigured by each test."""
    workers = Fleet()
    yield workers
    workers.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateRedis:
    """A redis-server of this test's own, to stop, freeze and restart at will."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while _reachable(self.url) is not None:
            assert time.monotonic() < deadline, "private redis-server did not start"
            time.sleep(0.01)

    def shutdown(self) -> None:
        """What the brief calls killing Redis: `redis-cli shutdown nosave`."""
        subprocess.run(["redis-cli", "-p", str(self.port), "shutdown", "nosave"], capture_output=True, timeout=5)
        assert self.proc is not None
        self.proc.wait(5)

    def freeze(self) -> None:
        """A Redis that accepts connections and never answers (SIGSTOP)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def shared_hash(url: str, prefix: str, key: str = "p") -> dict[str, str]:
    """The shared breaker state of `key` as Redis holds it (empty: never written)."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        return client.hgetall(f"{prefix}{{{key}}}:s")
    finally:
        client.close()

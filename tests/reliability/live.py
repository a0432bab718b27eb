"""A real gateway process (daphne, `manage.py serve`) for the reliability, fuzz and soak runs.

`LiveGateway.start()` copies a migrated SQLite database (made once per test session: an admin
user and an API key with every scope already in it), starts the server on a free loopback
port without the embedded monitor (probes would add calls the tests do not expect), and
talks to it over HTTP like any client.

Every routed request the client sends is remembered by its `X-Request-Id`, so a test can
check that each one was written to the request log exactly once (`accounted()`), read from
the server's database file directly, after the server's analytics writer flushed.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.e2e import server as srv

_TEMPLATE: dict[str, Any] = {}


def template() -> tuple[Path, str, dict[str, str]]:
    """A migrated database with an admin and an all-scopes API key (made once per process)."""
    if not _TEMPLATE:
        folder = Path(tempfile.mkdtemp(prefix="gateway-live-template-"))
        atexit.register(shutil.rmtree, folder, True)
        env = srv.server_env(folder, {"DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}", "REDIS_URL": ""})
        server = srv.ServerProcess(url="", env=env)
        server.manage("migrate", "--noinput")
        server.manage("ensure_admin")
        key = server.manage("create_api_key", "live-admin", "--scopes", "gateway,read,admin").stdout
        _TEMPLATE.update(
            db=folder / "db.sqlite3",
            key=key.strip().splitlines()[-1],
            secrets={k: env[k] for k in ("SECRET_KEY", "ENCRYPTION_KEYS")},
        )
    return _TEMPLATE["db"], _TEMPLATE["key"], _TEMPLATE["secrets"]


@dataclass
class LiveGateway:
    server: srv.ServerProcess
    key: str
    db: Path
    sent: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, folder: Path, env: Mapping[str, str] | None = None, *, embedded: bool = False) -> LiveGateway:
        source, key, secrets = template()
        folder.mkdir(parents=True, exist_ok=True)
        db = folder / "db.sqlite3"
        shutil.copyfile(source, db)
        extra = {
            "DATABASE_URL": f"sqlite:///{db}",
            "REDIS_URL": "",
            "CONFIG_POLL_INTERVAL_S": "0.5",
            "ANALYTICS_FLUSH_INTERVAL_S": "0.2",
            **secrets,
            **(env or {}),
        }
        server = srv.ServerProcess(url="", env=srv.server_env(folder, extra))
        srv.start(server, folder, args=() if embedded else ("--no-embedded",))
        return cls(server, key, db)

    # -- talking to it ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def pid(self) -> int:
        assert self.server.proc is not None
        return self.server.proc.pid

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    def client(self, **kwargs: Any) -> httpx.Client:
        kwargs.setdefault("timeout", 30)
        return httpx.Client(base_url=self.url, headers=self.headers(), **kwargs)

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with self.client() as client:
            return client.request(method, path, **kwargs)

    def configure(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Replace the configuration (PUT /api/config); the server applies it at once."""
        response = self.api("PUT", "/api/config", json=doc)
        assert response.status_code == 200, response.text
        return response.json()

    def breaker(self, name: str) -> dict[str, Any]:
        breakers = self.api("GET", "/api/breakers").json()["breakers"]
        return next(b for b in breakers if b["name"] == name)

    def note(self, response: httpx.Response) -> httpx.Response:
        """Remember a routed request's id, for `accounted()`."""
        request_id = response.headers.get("x-request-id")
        assert request_id, f"no X-Request-Id on {response.status_code}: {response.text[:200]}"
        self.sent.append(request_id)
        return response

    def chat(self, body: dict[str, Any], *, client: httpx.Client | None = None, **kwargs: Any) -> httpx.Response:
        if client is None:
            with self.client() as own:
                return self.note(own.post("/v1/chat/completions", json=body, **kwargs))
        return self.note(client.post("/v1/chat/completions", json=body, **kwargs))

    @contextlib.contextmanager
    def stream(self, body: dict[str, Any]) -> Iterator[tuple[httpx.Response, list[str]]]:
        """A streamed chat: the response and its `data:` payloads, read to the end."""
        with (
            self.client() as client,
            client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as response,
        ):
            self.note(response)
            events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
            yield response, events

    # -- the request log ---------------------------------------------------------------------------

    def rows(self, request_ids: Iterable[str] | None = None) -> list[sqlite3.Row]:
        """Request-log rows (all, or those of `request_ids`), read from the database file."""
        with contextlib.closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)) as db:
            db.row_factory = sqlite3.Row
            if request_ids is None:
                return db.execute("SELECT * FROM analytics_requestlog").fetchall()
            ids = list(request_ids)
            marks = ",".join("?" * len(ids))
            return db.execute(f"SELECT * FROM analytics_requestlog WHERE request_id IN ({marks})", ids).fetchall()

    def accounted(self, request_ids: Iterable[str], timeout_s: float = 10.0) -> dict[str, sqlite3.Row]:
        """Wait for every request's row; each id must have exactly one. Returns the rows by id."""
        ids = list(request_ids)
        deadline = time.monotonic() + timeout_s
        while True:
            rows = self.rows(ids)
            if len(rows) >= len(ids) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        found = [r["request_id"] for r in rows]
        assert sorted(found) == sorted(ids), f"sent {len(ids)} requests, the log has {len(found)}: {found} vs {ids}"
        return {r["request_id"]: r for r in rows}

    # -- the process -------------------------------------------------------------------------------

    def fd_count(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def terminate(self, timeout_s: float = 30) -> int:
        """SIGTERM (the server flushes the analytics queue first); the exit code."""
        proc = self.server.proc
        assert proc is not None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
                raise
        return proc.returncode

    def stop(self) -> None:
        self.server.stop()

    def restart(self, *, embedded: bool = False) -> None:
        """Start the server again on the same database (after `terminate()`)."""
        srv.start(self.server, self.db.parent, args=() if embedded else ("--no-embedded",))

    def log(self) -> str:
        return self.server.log()


def openai_provider(name: str, url: str, **extra: Any) -> dict[str, Any]:
    """An openai-kind provider on a fake, with short timeouts and quick retries."""
    from tests.fakes.openai import API_KEY

    entry: dict[str, Any] = {
        "name": name,
        "kind": "openai",
        "base_url": url.rstrip("/") + "/v1",
        "api_key": API_KEY,
        "models": ["gpt-4o-mini"],
        "capabilities": ["chat"],
        "timeout_s": 1,
        "retry": {"max_attempts": 2, "base_delay_s": 0.01, "max_delay_s": 0.05},
    }
    entry.update(extra)
    return entry


def chain(name: str, *providers: str, **extra: Any) -> dict[str, Any]:
    route: dict[str, Any] = {
        "name": name,
        "capability": "chat",
        "strategy": "priority",
        "targets": [{"provider": p, "model": "gpt-4o-mini"} for p in providers],
    }
    route.update(extra)
    return route

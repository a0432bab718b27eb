"""Start the real server (`manage.py serve`) on a free loopback port.

`start` runs it under daphne unless told otherwise (`server_kind`), or under the server named
by `E2E_SERVER` (`E2E_SERVER=uvicorn pytest tests/browser` runs those suites under uvicorn);
`server_kind=None` passes no `--server`, so the project's default (`ASGI_SERVER`) decides.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from cryptography.fernet import Fernet

from tests.fakes.base import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ServerProcess:
    url: str
    env: dict[str, str]
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def manage(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            input=input,
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path and self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def server_env(tmp_path: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))}
    env.update(
        {
            "DATABASE_URL": env.get("E2E_DATABASE_URL") or f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "SECRET_KEY": "e2e-" + Fernet.generate_key().decode(),
            "ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "ADMIN_USERNAME": "operator",
            "ADMIN_PASSWORD": "operator-pass-123",
            "NO_DEMO": "1",
            "LOG_LEVEL": "WARNING",
        }
    )
    env.update(extra or {})
    return env


def prepare(tmp_path: Path, extra: Mapping[str, str] | None = None) -> ServerProcess:
    """A migrated database with an admin; no server yet."""
    server = ServerProcess(url="", env=server_env(tmp_path, extra))
    server.manage("migrate", "--noinput")
    server.manage("ensure_admin")
    return server


DEFAULT_KIND = os.environ.get("E2E_SERVER", "daphne")


def start(
    server: ServerProcess, tmp_path: Path, *, server_kind: str | None = DEFAULT_KIND, args: tuple[str, ...] = ()
) -> ServerProcess:
    port = free_port()
    server.url = f"http://127.0.0.1:{port}"
    server.log_path = tmp_path / f"server-{port}.log"
    log = server.log_path.open("w")
    chosen = ("--server", server_kind) if server_kind else ()
    server.proc = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port), *chosen, *args],
        cwd=ROOT,
        env=server.env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"server exited with {server.proc.returncode}:\n{server.log()}")
        try:
            if httpx.get(server.url + "/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"server did not come up:\n{server.log()}")

"""Helpers the benchmarks share: wait for a server to answer, read a process's CPU time."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx


def wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    """Return once `url` answers at all; raise if `proc` exits or 60 s pass first."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def cpu_seconds(pid: int, task: int | None = None) -> float:
    """User + system CPU time of a process, or of one of its threads (Linux /proc), in seconds."""
    path = Path(f"/proc/{pid}/task/{task}/stat") if task is not None else Path(f"/proc/{pid}/stat")
    fields = path.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

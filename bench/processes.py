"""Helpers the benchmarks share: wait for a server to answer, read a process's CPU time and
memory (Linux /proc), find a process's children, stop a process and its children."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx


def wait_up(
    url: str, proc: subprocess.Popen[bytes], *, headers: dict[str, str] | None = None, seconds: float = 60
) -> None:
    """Return once `url` answers at all; raise if `proc` exits or `seconds` pass first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1, headers=headers)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def cpu_seconds(pid: int, task: int | None = None) -> float:
    """User + system CPU time of a process, or of one of its threads (Linux /proc), in seconds."""
    path = Path(f"/proc/{pid}/task/{task}/stat") if task is not None else Path(f"/proc/{pid}/stat")
    fields = path.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (a server that forks its workers)."""
    out = [pid]
    for current in out:
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                out.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                continue
    return out


def tree_cpu_seconds(pid: int) -> float:
    total = 0.0
    for p in descendants(pid):
        try:
            total += cpu_seconds(p)
        except OSError:
            continue  # a child that just exited
    return total


def rss_mib(pid: int) -> float:
    """Resident set size of one process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def stop(proc: subprocess.Popen[bytes], seconds: float = 20) -> None:
    """SIGTERM the process (and, if it leads its own session, its group), then wait; kill late."""
    if proc.poll() is not None:
        return
    try:
        if os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.terminate()
    except ProcessLookupError:
        return
    try:
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        if os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
        proc.wait(5)

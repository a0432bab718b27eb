"""Where a gateway worker's CPU goes on the chat path: py-spy samples of `manage.py serve`
under load, as a flame graph and as a summary by module.

    .venv/bin/python -m pip install -e '.[bench]'   # py-spy: the bench's tool, not a test dependency
    .venv/bin/python -m bench.gateway.profile [--server uvicorn] [--seconds 20] [--concurrency 32]
        [--stream | --path {chat,messages,responses}] [--svg docs/profile-chat.svg]

Starts the fast fake upstream and the gateway (as bench/gateway/run.py does), drives
`POST /v1/chat/completions` (or streamed ones, `--stream`, or whole requests to
`/v1/messages` or `/v1/responses` with `--path`) at a fixed concurrency, and samples
the server with py-spy (by thread) twice, one run after the other: once into collapsed stacks (the summary
printed here, and `<svg>.txt` beside the flame graph), once into the SVG flame graph.

The summary gives, over every sample of the server's threads that were not idle:
- self: the frame on top of the stack, grouped by where its code lives (this project's
  modules by file, libraries by package, the standard library by module); time in C code
  (uvloop's I/O, httptools' parser, the JSON codec) counts for the Python frame that called
  it, so `stdlib asyncio` is the loop itself, in uvloop, busy or idle;
- inclusive: the share of samples in which one of this project's functions is on the stack.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.gateway import subjects as sj  # noqa: E402
from bench.gateway.run import body, request_for  # noqa: E402
from bench.load import run_load, run_stream_load  # noqa: E402

PROJECT = ("providers", "analytics", "health", "project")
THREAD = re.compile(r"^thread \(\d+\): (?P<name>.*)$")
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*):(?P<line>\d+)\)$")


def py_spy() -> str:
    found = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if not found:
        raise SystemExit("py-spy is not installed: .venv/bin/python -m pip install py-spy")
    return found


def where(path: str) -> str:
    """A frame's file as a group: `providers/gateway/views.py`, `django/http`, `asyncio`."""
    if "site-packages/" in path:
        parts = path.split("site-packages/", 1)[1].split("/")
        return "/".join(parts[:2]) if len(parts) > 2 else parts[0].removesuffix(".py")
    rel = path.removeprefix(str(ROOT) + "/")
    if rel.startswith(PROJECT):
        return rel
    if "/lib/python3" in path:
        parts = path.split("/lib/python3", 1)[1].split("/")[1:]
        return "stdlib " + ("/".join(parts[:1]).removesuffix(".py") if parts else path)
    return rel


def parse(frame: str) -> tuple[str, str]:
    """py-spy's `function (file:line)` -> (function, file)."""
    match = FRAME.match(frame.strip())
    if not match:
        return frame.strip(), ""
    return match["func"], match["file"]


def is_waiting(func: str, file: str) -> bool:
    """A thread parked on a queue or a lock (py-spy does not always see it as idle): an
    executor's worker waiting for work, a condition or event wait."""
    return (file.endswith("concurrent/futures/thread.py") and func == "_worker") or (
        file.endswith(("/threading.py", "/queue.py"))
        and func.split(".")[-1] in {"wait", "get", "_wait_for_tstate_lock"}
    )


def summarise(collapsed: str, top: int = 30) -> list[str]:
    self_by: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = idle = 0
    for row in collapsed.splitlines():
        stack, _, count_text = row.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [parse(f) for f in stack.split(";")]
        # with --threads, py-spy puts `thread (tid): name` first
        named = THREAD.match(frames[0][0]) if frames else None
        thread = "other" if named is None else named["name"]
        thread = "MainThread (the event loop)" if thread == "MainThread" else re.sub(r"_\d+$", "_*", thread)
        frames = [(func, file) for func, file in frames if file]
        if not frames:
            continue
        func, file = frames[-1]
        if is_waiting(func, file):
            idle += count
            continue
        threads[thread] += count
        total += count
        self_by[where(file)] += count
        seen = set()
        for func, file in frames:
            group = where(file)
            if group.startswith(PROJECT):
                name = f"{group}:{func}"
                if name not in seen:
                    seen.add(name)
                    inclusive[name] += count
    lines = [
        f"{total} samples of work ({idle} of threads waiting for work left out): "
        + ", ".join(f"{name} {n / total:.1%}" for name, n in threads.most_common()),
        "",
        "self time by where the code lives:",
    ]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in self_by.most_common(top)]
    lines += ["", "this project's functions, inclusive (on the stack):"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in inclusive.most_common(top)]
    return lines


def record(pid: int, seconds: int, fmt: str, out: Path, rate: int) -> subprocess.Popen[bytes]:
    # full file names to group frames by where they live; the flame graph keeps py-spy's short ones
    names = ["--full-filenames"] if fmt == "raw" else []
    return subprocess.Popen(
        [
            py_spy(),
            "record",
            "-p",
            str(pid),
            "-d",
            str(seconds),
            "-r",
            str(rate),
            "-f",
            fmt,
            "-o",
            str(out),
            "--threads",
            *names,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


ENDPOINTS = {"chat": "/v1/chat/completions", "messages": "/v1/messages", "responses": "/v1/responses"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default="uvicorn", choices=["uvicorn", "daphne"])
    parser.add_argument("--seconds", type=int, default=20, help="length of each of the two recordings")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--stream", action="store_true", help="streamed requests (200 chunks each)")
    parser.add_argument(
        "--path",
        default="chat",
        choices=["chat", "messages", "responses"],
        help="whole requests to this path (as bench.gateway.run --paths sends them)",
    )
    parser.add_argument("--svg", type=Path, default=ROOT / "docs" / "profile-chat.svg")
    args = parser.parse_args()

    upstream = sj.start_upstream(200)
    gateway = None
    try:
        env, key = sj.prepare_gateway(upstream.base)
        gateway = sj.start_gateway(args.server, env, key)
        stop = threading.Event()

        def load() -> None:
            async def forever() -> None:
                while not stop.is_set():
                    if args.stream:
                        await run_stream_load(
                            gateway.chat_url,
                            body("bench", True),
                            concurrency=args.concurrency,
                            requests=args.concurrency * 4,
                            headers=gateway.headers,
                            warmup=0,
                        )
                    else:
                        url, sent, headers = request_for(gateway, "chat" if args.path == "chat" else f"{args.path}-32")
                        await run_load(
                            url,
                            sent,
                            concurrency=args.concurrency,
                            requests=args.concurrency * 50,
                            headers=headers,
                            warmup=0,
                        )

            asyncio.run(forever())

        driver = threading.Thread(target=load, daemon=True)
        driver.start()
        folder = Path(tempfile.mkdtemp(prefix="bench-profile-"))
        raw = folder / "chat.collapsed.txt"
        for fmt, out in (("raw", raw), ("flamegraph", args.svg)):
            spy = record(gateway.proc.pid, args.seconds, fmt, out, args.rate)
            _, err = spy.communicate(timeout=args.seconds + 60)
            if spy.returncode != 0:
                raise SystemExit(f"py-spy failed: {err.decode(errors='replace')[-2000:]}")
        stop.set()
        driver.join(60)
    finally:
        if gateway is not None:
            gateway.stop()
        upstream.stop()
    summary = summarise(raw.read_text())
    kind = "streamed (200 chunks)" if args.stream else "whole"
    head = (
        f"py-spy, {args.rate} Hz, {args.seconds} s: manage.py serve --server {args.server}, "
        f"{kind} POST {ENDPOINTS[args.path]} at c={args.concurrency}"
    )
    text = "\n".join([head, *summary]) + "\n"
    args.svg.with_suffix(".txt").write_text(text)
    print(text)
    print(f"flame graph: {args.svg}; summary: {args.svg.with_suffix('.txt')}; collapsed stacks: {raw}")


if __name__ == "__main__":
    main()

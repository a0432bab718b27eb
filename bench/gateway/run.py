"""The gateway's added latency and throughput, beside a direct call to the same upstream.

    .venv/bin/python -m bench.gateway.run [--server daphne uvicorn] [--requests 3000]

Starts a fast fake OpenAI upstream (bench/upstream.py) and the real gateway
(`manage.py serve`) on loopback with a fresh SQLite database, then drives
`POST /v1/chat/completions` with the closed-loop load generator of bench/load.py:

- direct: the same load straight to the upstream (the floor);
- gateway: through the route `bench` (one target);
- failover: route `failover`, whose first target refuses connections (breaker switched off
  so every request tries it) before the second serves;
- skip: route `skip`, whose first target's breaker is forced open.

Client, gateway and upstream share this machine's cores; compare figures from one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.load import LoadResult, run_load  # noqa: E402
from bench.processes import cpu_seconds, wait_up  # noqa: E402
from tests.fakes.base import free_port  # noqa: E402

BODY = json.dumps({"model": "bench", "messages": [{"role": "user", "content": "Say hello."}]}).encode()


def config(upstream: str, refused: str) -> str:
    fast = {"retry": {"max_attempts": 1}, "timeout_s": 10}
    doc = {
        "providers": [
            {"name": "upstream", "kind": "openai", "base_url": upstream, "models": ["bench-model"], **fast,
             "health_check": {"interval_s": 3600, "timeout_s": 5}},
            {"name": "refused", "kind": "openai", "base_url": refused, "models": ["bench-model"], **fast,
             "breaker": {"mode": "disabled"}, "health_check": {"interval_s": 3600, "timeout_s": 5}},
            {"name": "opened", "kind": "openai", "base_url": upstream, "models": ["bench-model"], **fast,
             "health_check": {"interval_s": 3600, "timeout_s": 5}},
        ],
        "routes": [
            {"name": "bench", "targets": [{"provider": "upstream", "model": "bench-model"}]},
            {"name": "failover", "targets": [{"provider": "refused", "model": "bench-model"},
                                             {"provider": "upstream", "model": "bench-model"}]},
            {"name": "skip", "targets": [{"provider": "opened", "model": "bench-model"},
                                         {"provider": "upstream", "model": "bench-model"}]},
        ],
    }
    return json.dumps(doc)


def manage(env: dict[str, str], *args: str) -> str:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True).stdout


def body_for(route: str) -> bytes:
    return BODY.replace(b'"bench"', json.dumps(route).encode())


async def measure(url: str, route: str, c: int, n: int, headers: dict[str, str], pid: int | None = None) -> LoadResult:
    """Run the load; with `pid`, also the CPU that process spent per measured request
    (steadier than wall time on a shared machine)."""
    before = cpu_seconds(pid) if pid else 0.0
    result = await run_load(url, body_for(route), concurrency=c, requests=n, headers=headers, warmup=100)
    if pid:
        # the warm-up's CPU is included: spread over warm-up + measured requests
        result.cpu_ms = (cpu_seconds(pid) - before) * 1000 / (n + 100)  # type: ignore[attr-defined]
    return result


def line(label: str, r: LoadResult, direct: LoadResult | None = None) -> str:
    added = f"{r.p50 - direct.p50:+7.2f} ms" if direct else "        —"
    ratio = f"{r.rps / direct.rps:5.2f}x" if direct else "    —"
    errors = sum(v for k, v in r.statuses.items() if k != 200) + r.errors
    cpu = getattr(r, "cpu_ms", None)
    cpu_text = f"  cpu {cpu:5.2f} ms/req" if cpu is not None else ""
    return (f"  {label:<24} c={r.concurrency:<3} {r.rps:8.0f} req/s  p50 {r.p50:7.2f}  p95 {r.pct(95):7.2f}  "
            f"p99 {r.pct(99):7.2f} ms  added p50 {added}  throughput {ratio}  non-200 {errors}{cpu_text}")


def run(server_kind: str, requests: int, upstream_url: str, upstream_pid: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update({"DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}", "SECRET_KEY": "bench-" + "x" * 40,
                "NO_DEMO": "1", "LOG_LEVEL": "WARNING", "MONITOR_EMBEDDED": "false"})
    manage(env, "migrate", "--noinput")
    refused = f"http://127.0.0.1:{free_port()}/v1"
    (tmp / "config.json").write_text(config(upstream_url + "/v1", refused))
    manage(env, "import_config", str(tmp / "config.json"))
    key = manage(env, "create_api_key", "bench", "--scopes", "gateway,admin").strip().splitlines()[-1]
    port = free_port()
    proc = subprocess.Popen([sys.executable, "manage.py", "serve", "--port", str(port), "--server", server_kind,
                             "--no-embedded"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    gateway = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {key}"}
    try:
        wait_up(gateway + "/healthz", proc)
        httpx.post(f"{gateway}/api/breakers/opened/force-open", headers=headers, json={"minutes": 600}).raise_for_status()
        chat = gateway + "/v1/chat/completions"
        direct_url = upstream_url + "/v1/chat/completions"

        async def all_loads() -> dict[str, LoadResult]:
            out: dict[str, LoadResult] = {}
            for c, n in ((1, requests), (32, requests * 2)):
                out[f"direct-{c}"] = await measure(direct_url, "bench", c, n, {}, upstream_pid)
                out[f"gateway-{c}"] = await measure(chat, "bench", c, n, headers, proc.pid)
            out["failover-1"] = await measure(chat, "failover", 1, requests, headers, proc.pid)
            out["skip-1"] = await measure(chat, "skip", 1, requests, headers, proc.pid)
            out["gateway-1-again"] = await measure(chat, "bench", 1, requests, headers, proc.pid)
            return out

        results = asyncio.run(all_loads())
    finally:
        proc.terminate()
        proc.wait(20)
    print(f"\n{server_kind} (gateway), {requests} requests at c=1, {2 * requests} at c=32")
    print(line("direct", results["direct-1"]))
    print(line("gateway", results["gateway-1"], results["direct-1"]))
    print(line("gateway (again)", results["gateway-1-again"], results["direct-1"]))
    print(line("failover (refused 1st)", results["failover-1"], results["direct-1"]))
    print(line("skip (1st open)", results["skip-1"], results["direct-1"]))
    print(line("direct", results["direct-32"]))
    print(line("gateway", results["gateway-32"], results["direct-32"]))
    base = min(results["gateway-1"].p50, results["gateway-1-again"].p50)
    print(f"  failover adds {results['failover-1'].p50 - base:+.2f} ms p50 over the one-target route; "
          f"skipping an open breaker adds {results['skip-1'].p50 - base:+.2f} ms")
    return {k: v.row() for k, v in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", nargs="+", default=["daphne", "uvicorn"], choices=["daphne", "uvicorn"])
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    up_port = free_port()
    upstream = subprocess.Popen([sys.executable, "-m", "bench.upstream", "--port", str(up_port)], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    upstream_url = f"http://127.0.0.1:{up_port}"
    try:
        wait_up(upstream_url + "/v1/models", upstream)
        print(f"machine: {os.cpu_count()} cores; client, gateway and upstream share them")
        for kind in args.server:
            run(kind, args.requests, upstream_url, upstream.pid)
    finally:
        upstream.terminate()
        upstream.wait(10)


if __name__ == "__main__":
    main()

"""Can one monitor probe 1,000 providers within their 30 s interval, and at what CPU cost?

    .venv/bin/python -m bench.monitor.run [--providers 1000] [--interval 30] [--upstreams 4]

Registers N OpenAI-compatible providers (30 s interval, cheap probe = GET /v1/models) spread
over a few fast fake upstreams on loopback (bench/upstream.py), runs `manage.py monitor` as its
own process for one interval plus a margin, then reads from the database how many distinct
providers were probed in the first interval, how the probe latencies were spread, and how
much CPU the monitor process used (from /proc).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.processes import cpu_seconds, wait_up  # noqa: E402
from tests.fakes.base import free_port  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--providers", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--upstreams", type=int, default=4)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-monitor-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(
        {
            "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
            "SECRET_KEY": "bench-" + "x" * 40,
            "NO_DEMO": "1",
            "LOG_LEVEL": "WARNING",
            "CATALOG_REFRESH_S": "1e9",
        }
    )
    upstreams = []
    try:
        for _ in range(args.upstreams):
            port = free_port()
            proc = subprocess.Popen(
                [sys.executable, "-m", "bench.upstream", "--port", str(port)],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            upstreams.append((port, proc))
        for port, proc in upstreams:
            wait_up(f"http://127.0.0.1:{port}/v1/models", proc)
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True
        )
        providers = [
            {
                "name": f"p{i:04d}",
                "kind": "openai",
                "models": ["bench-model"],
                "base_url": f"http://127.0.0.1:{upstreams[i % len(upstreams)][0]}/v1",
                "health_check": {"interval_s": args.interval, "timeout_s": 10},
            }
            for i in range(args.providers)
        ]
        (tmp / "providers.json").write_text(json.dumps({"providers": providers}))
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "manage.py", "import_config", str(tmp / "providers.json")],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        print(f"registered {args.providers} providers in {time.monotonic() - started:.1f} s")

        monitor = subprocess.Popen(
            [sys.executable, "manage.py", "monitor"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        began = time.time()
        cpu_start = cpu_seconds(monitor.pid)
        if os.environ.get("PYSPY"):
            subprocess.Popen(
                [
                    str(ROOT / ".venv/bin/py-spy"),
                    "record",
                    "-p",
                    str(monitor.pid),
                    "-o",
                    "/tmp/spy-mon.txt",
                    "-f",
                    "raw",
                    "-r",
                    "200",
                    "-d",
                    str(int(args.interval)),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        time.sleep(args.interval + 5)
        cpu_used = cpu_seconds(monitor.pid) - cpu_start
        monitor.terminate()
        monitor.wait(30)

        script = (
            "import json, datetime as d; from health.models import ProbeResult as P; "
            f"t0 = d.datetime.fromtimestamp({began}, d.UTC); t1 = t0 + d.timedelta(seconds={args.interval}); "
            "rows = list(P.objects.filter(at__gte=t0).values_list('provider__name', 'at', 'ok', 'latency_ms')); "
            "first = {n for n, at, ok, ms in rows if at < t1}; "
            "firsts = {}; [firsts.setdefault(n, at) for n, at, ok, ms in sorted(rows, key=lambda r: r[1])]; "
            "print(json.dumps({'first_interval': len(first), 'probes': len(rows), "
            "'failed': sum(1 for r in rows if not r[2]), 'latencies': [r[3] for r in rows], "
            "'all_by': max(firsts.values(), default=t0).timestamp() - t0.timestamp()}))"
        )
        out = (
            subprocess.run(
                [sys.executable, "manage.py", "shell", "-c", script],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        data = json.loads(out)
        lat = sorted(data["latencies"])
        window = args.interval + 5
        print(
            f"providers probed in the first {args.interval:g} s: {data['first_interval']} / {args.providers}; "
            f"every one had its first probe {data['all_by']:.1f} s after the monitor started"
        )
        print(
            f"probes in {window:g} s: {data['probes']} ({data['failed']} failed); probe latency p50 "
            f"{statistics.median(lat):.1f} ms, p95 {lat[int(len(lat) * 0.95)]:.1f} ms"
        )
        print(
            f"monitor CPU: {cpu_used:.2f} s over {window:g} s = {100 * cpu_used / window:.0f}% of one core, "
            f"{1000 * cpu_used / max(1, data['probes']):.2f} ms per probe"
        )
    finally:
        for _, proc in upstreams:
            proc.terminate()
        for _, proc in upstreams:
            proc.wait(10)


if __name__ == "__main__":
    httpx.Timeout(1)  # imported for wait_up
    main()

"""What the gateway bench measures, each started on a free loopback port before a run and
stopped after it: the fake upstream, the bare pass-through under each server, our gateway
(`manage.py serve`) under each server, and the peers (bench/gateway/peers.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.gateway import peers
from bench.processes import stop, wait_up
from tests.fakes.base import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Subject:
    name: str  # direct | bare-<server> | gateway-<server> | portkey | litellm
    label: str
    base: str  # what `/v1/chat/completions` is appended to
    proc: subprocess.Popen[bytes]
    headers: dict[str, str] = field(default_factory=dict)
    routes: tuple[str, ...] = ("bench",)  # the gateway also has `failover` and `skip`
    # the gateway with --paths: the headers of a key with a budget and an rpm limit
    limited_headers: dict[str, str] = field(default_factory=dict)
    # the phases measured each round: None, every one (run.py decides); a gateway under Redis
    # is measured on the plain chat path and under the limited key only
    phases: tuple[str, ...] | None = None

    @property
    def chat_url(self) -> str:
        return self.base + "/v1/chat/completions"

    def stop(self) -> None:
        stop(self.proc)


def _popen(args: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.Popen[bytes]:
    # a session of its own, so that stopping it stops whatever it forked (LiteLLM's workers)
    return subprocess.Popen(
        args, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def start_upstream(stream_chunks: int) -> Subject:
    port = free_port()
    proc = _popen([sys.executable, "-m", "bench.upstream", "--port", str(port), "--stream-chunks", str(stream_chunks)])
    base = f"http://127.0.0.1:{port}"
    wait_up(base + "/v1/models", proc)
    return Subject("direct", "direct to the upstream", base, proc)


def start_bare(server: str, upstream: str) -> Subject:
    port = free_port()
    env = {**os.environ, "BARE_UPSTREAM": upstream}
    if server == "uvicorn":
        args = [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.gateway.bare:app",
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--log-level",
            "warning",
            "--no-access-log",
            "--lifespan",
            "off",
        ]
    else:
        args = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "-v", "0", "bench.gateway.bare:app"]
    proc = _popen(args, env)
    base = f"http://127.0.0.1:{port}"
    wait_up(base + "/", proc)
    return Subject(f"bare-{server}", f"bare pass-through, {server} + aiohttp", base, proc)


# --paths: the upstream's model is priced (a keyed request's spend is then real money, settled
# against its budget) and the route `cached` keeps answers for an hour.
PRICES = {"bench-model": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}}
CACHED_ROUTE = "cached"


def gateway_config(upstream: str, refused: str, *, paths: bool = False) -> str:
    fast = {"retry": {"max_attempts": 1}, "timeout_s": 10}
    check = {"health_check": {"interval_s": 3600, "timeout_s": 5}}
    priced = {"prices": PRICES} if paths else {}
    doc: dict[str, list[dict[str, object]]] = {
        "providers": [
            {
                "name": "upstream",
                "kind": "openai",
                "base_url": upstream,
                "models": ["bench-model"],
                **fast,
                **check,
                **priced,
            },
            {
                "name": "refused",
                "kind": "openai",
                "base_url": refused,
                "models": ["bench-model"],
                **fast,
                **check,
                "breaker": {"mode": "disabled"},
            },
            {"name": "opened", "kind": "openai", "base_url": upstream, "models": ["bench-model"], **fast, **check},
        ],
        "routes": [
            {"name": "bench", "targets": [{"provider": "upstream", "model": "bench-model"}]},
            {
                "name": "failover",
                "targets": [
                    {"provider": "refused", "model": "bench-model"},
                    {"provider": "upstream", "model": "bench-model"},
                ],
            },
            {
                "name": "skip",
                "targets": [
                    {"provider": "opened", "model": "bench-model"},
                    {"provider": "upstream", "model": "bench-model"},
                ],
            },
        ],
    }
    if paths:
        doc["routes"].append(
            {
                "name": CACHED_ROUTE,
                "targets": [{"provider": "upstream", "model": "bench-model"}],
                "cache": {"ttl_s": 3600},
            }
        )
    return json.dumps(doc)


def gateway_env(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "ASGI_SERVER"))}
    env.update(
        {
            "DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}",
            "SECRET_KEY": "bench-" + "x" * 40,
            "NO_DEMO": "1",
            "LOG_LEVEL": "WARNING",
            "MONITOR_EMBEDDED": "false",
        }
    )
    return env


def manage(env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    ).stdout


def prepare_gateway(
    upstream: str, config_json: str | None = None, *, paths: bool = False
) -> tuple[dict[str, str], str]:
    """A fresh SQLite database with the bench's providers and routes (or `config_json`; with
    `paths`, also the priced model and the cached route), and an API key (scopes gateway and
    admin): the server's environment and the key."""
    folder = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    env = gateway_env(folder)
    manage(env, "migrate", "--noinput")
    refused = f"http://127.0.0.1:{free_port()}/v1"
    (folder / "config.json").write_text(config_json or gateway_config(upstream + "/v1", refused, paths=paths))
    manage(env, "import_config", str(folder / "config.json"))
    key = manage(env, "create_api_key", "bench", "--scopes", "gateway,admin").strip().splitlines()[-1]
    return env, key


# A budget no bench run reaches and an rpm no bench run passes: every request is admitted,
# and pays the whole check (the atomic count, the spend settled against the budget).
LIMITED_BUDGET = "1000000"
LIMITED_RPM = "10000000"  # create_api_key's largest


def create_limited_key(env: dict[str, str]) -> str:
    """An API key (scope gateway) with a budget per month and an rpm limit."""
    return (
        manage(
            env,
            "create_api_key",
            "bench-limited",
            "--scopes",
            "gateway",
            "--budget",
            LIMITED_BUDGET,
            "--rpm",
            LIMITED_RPM,
        )
        .strip()
        .splitlines()[-1]
    )


def start_gateway(
    server: str | None,
    env: dict[str, str],
    key: str,
    *,
    prefix: tuple[str, ...] = (),
    redis_url: str | None = None,
    tree: Path | None = None,
) -> Subject:
    """`manage.py serve --no-embedded` (the server named, or the project's default when None);
    `prefix` runs it under another program (a profiler); `redis_url`: with REDIS_URL (and
    SHARED_STATE) set, so breakers, limits and the response cache live in Redis; `tree`: the
    code of another copy of the project (a baseline to compare with), on the same database."""
    port = free_port()
    args = [*prefix, sys.executable, "manage.py", "serve", "--port", str(port), "--no-embedded"]
    if server:
        args += ["--server", server]
    if redis_url:
        env = {**env, "REDIS_URL": redis_url, "SHARED_STATE": "true"}
    proc = _popen(args, env, cwd=tree or ROOT)
    base = f"http://127.0.0.1:{port}"
    wait_up(base + "/healthz", proc)
    headers = {"Authorization": f"Bearer {key}"}
    shown = server or "default server"
    if tree is not None:
        return Subject(
            f"baseline-{server or 'default'}", f"baseline ({tree}), {shown}", base, proc, headers, ("bench",)
        )
    if redis_url:
        return Subject(
            f"gateway-{server or 'default'}-redis", f"this gateway, {shown}, REDIS_URL set", base, proc, headers
        )
    return Subject(
        f"gateway-{server or 'default'}", f"this gateway, {shown}", base, proc, headers, ("bench", "failover", "skip")
    )


def open_skip_target(subject: Subject) -> None:
    """Force the `skip` route's first target open, so that every request skips it."""
    httpx.post(
        f"{subject.base}/api/breakers/opened/force-open", headers=subject.headers, json={"minutes": 600}
    ).raise_for_status()


def start_portkey(upstream: str) -> Subject:
    entry = peers.ensure_portkey()
    port = free_port()
    env = {**os.environ, "NODE_ENV": "production"}
    proc = _popen(["node", str(entry), f"--port={port}", "--headless"], env, cwd=entry.parent)
    base = f"http://127.0.0.1:{port}"
    wait_up(base + "/", proc)
    headers = {
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": upstream + "/v1",
        "Authorization": "Bearer sk-bench",
    }
    return Subject("portkey", f"Portkey AI gateway {peers.portkey_version()} (Node)", base, proc, headers)


def start_litellm(upstream: str) -> Subject:
    exe = peers.ensure_litellm()
    folder = Path(tempfile.mkdtemp(prefix="bench-litellm-"))
    (folder / "config.yaml").write_text(peers.litellm_config(upstream))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL"))}
    env.update({"LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False", "DISABLE_SCHEMA_UPDATE": "True"})
    proc = _popen(
        [
            str(exe),
            "--config",
            str(folder / "config.yaml"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--num_workers",
            "1",
        ],
        env,
        cwd=folder,
    )
    base = f"http://127.0.0.1:{port}"
    wait_up(base + "/health/liveliness", proc, seconds=180)
    return Subject(
        "litellm",
        f"LiteLLM proxy {peers.litellm_version()}",
        base,
        proc,
        {"Authorization": f"Bearer {peers.LITELLM_MASTER_KEY}"},
    )

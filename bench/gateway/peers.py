"""Other gateways measured beside ours, each installed outside the repository.

- Portkey's AI gateway (Node, Hono), `npm install @portkey-ai/gateway@PORTKEY_VERSION` into
  `$GATEWAY_BENCH_CACHE/portkey` (with `@hono/node-server` pinned, see `portkey_package`)
  and run with `NODE_ENV=production node build/start-server.js --headless`. It routes by
  headers: `x-portkey-provider: openai` and `x-portkey-custom-host: <upstream>/v1`.
- LiteLLM's proxy, `pip install 'litellm[proxy]==LITELLM_VERSION'` into a venv of its own,
  `$GATEWAY_BENCH_CACHE/litellm`, run as `litellm --config ... --num_workers 1` (no database,
  a master key) with one model, `bench`, pointed at the upstream.

`GATEWAY_BENCH_CACHE` defaults to `~/.cache/gateway-bench`. Each is installed the first time it
is asked for (`python -m bench.gateway.peers portkey litellm` installs without measuring).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

PORTKEY_VERSION = "1.15.2"
HONO_NODE_SERVER_VERSION = "1.13.5"
LITELLM_VERSION = "1.106.2"
# LiteLLM refuses to start without a master key (or with a weak one); ours checks keys too
LITELLM_MASTER_KEY = "sk-" + "5f0c9e2b7a4d4c1e8b3a6f9d2c7e1b40" * 2


def cache_dir() -> Path:
    return Path(os.environ.get("GATEWAY_BENCH_CACHE", Path.home() / ".cache" / "gateway-bench"))


def portkey_entry() -> Path:
    return cache_dir() / "portkey" / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"


def portkey_package() -> str:
    # `@hono/node-server` as Portkey's own lockfile resolves it (1.13.5): with the newest 1.x
    # that a bare `npx` pulls, every streamed answer fails with `TypeError: immutable`
    # (Portkey-AI/gateway#1389, #1550; fixed in honojs/node-server#382, in the 2.x line)
    return (
        json.dumps(
            {
                "name": "gateway-bench-portkey",
                "private": True,
                "dependencies": {"@portkey-ai/gateway": PORTKEY_VERSION},
                "overrides": {"@hono/node-server": HONO_NODE_SERVER_VERSION},
            },
            indent=1,
        )
        + "\n"
    )


def ensure_portkey() -> Path:
    entry = portkey_entry()
    folder = cache_dir() / "portkey"
    package = folder / "package.json"
    if not entry.exists() or not package.exists() or package.read_text() != portkey_package():
        folder.mkdir(parents=True, exist_ok=True)
        package.write_text(portkey_package())
        print(f"installing @portkey-ai/gateway@{PORTKEY_VERSION} into {folder}", flush=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=folder, check=True)
    return entry


def portkey_version() -> str:
    return str(json.loads((portkey_entry().parents[1] / "package.json").read_text())["version"])


def litellm_bin() -> Path:
    return cache_dir() / "litellm" / "bin" / "litellm"


def ensure_litellm() -> Path:
    exe = litellm_bin()
    if not exe.exists():
        venv = cache_dir() / "litellm"
        base = Path(sys.base_prefix) / "bin" / "python3"
        print(f"installing litellm[proxy]=={LITELLM_VERSION} into {venv}", flush=True)
        subprocess.run([str(base), "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"litellm[proxy]=={LITELLM_VERSION}"],
            check=True,
        )
    return exe


def litellm_version() -> str:
    out = subprocess.run(
        [str(litellm_bin().parent / "python"), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def litellm_config(upstream: str) -> str:
    """The proxy's YAML (JSON is YAML): one model, no callbacks, no database."""
    return json.dumps(
        {
            "model_list": [
                {
                    "model_name": "bench",
                    "litellm_params": {
                        "model": "openai/bench-model",
                        "api_base": upstream + "/v1",
                        "api_key": "sk-bench",
                    },
                }
            ],
            "litellm_settings": {"drop_params": True, "telemetry": False},
            "general_settings": {"master_key": LITELLM_MASTER_KEY},
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("peers", nargs="+", choices=["portkey", "litellm"])
    args = parser.parse_args()
    for peer in args.peers:
        print(ensure_portkey() if peer == "portkey" else ensure_litellm())


if __name__ == "__main__":
    main()

"""Run one fake provider in the foreground: `python -m tests.fakes openai --port 9001`."""

from __future__ import annotations

import argparse
import asyncio

from . import FAKES, fake_server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=sorted(FAKES))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = fake_server(args.kind, host=args.host, port=args.port)

    async def run() -> None:
        await server.start_site()
        print(f"fake {args.kind} listening on {server.url}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(run())


if __name__ == "__main__":
    main()

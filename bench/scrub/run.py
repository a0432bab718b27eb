"""What scrubbing credentials from provider answers costs per response.

Run: .venv/bin/python bench/scrub/run.py [--secrets 50] [--size 2048] [--n 2000]

Times `Redactor.sub` (a whole body) and `Redactor.split` over 256-byte chunks (a stream) on a
JSON chat completion of `size` bytes holding no secret (the usual case) and one holding an
echoed key, for `secrets` random credentials of 20-60 characters. Also the build of the
pattern (paid once per configuration change), the pass-through cost with no secret set, and
1 MB bodies: binary audio, and a JSON image as base64. Figures are the best of 5 runs.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import string
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from providers.adapters import scrub


def body(size: int, rng: random.Random, echo: str | None = None) -> bytes:
    words = [("".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 9)))) for _ in range(size // 4)]
    text = " ".join(words)
    if echo:
        text = f"Authorization: Bearer {echo} {text}"
    doc = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
    }
    data = json.dumps(doc).encode()
    return data[:size] if echo is None else data


def best(fn, n: int) -> float:
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - start) / n)
    return min(runs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--secrets", type=int, default=50)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits + "-_"
    secrets = [
        rng.choice(["sk-proj-", "sk-ant-api03-", "", "r8_"])
        + "".join(rng.choice(alphabet) for _ in range(rng.randint(20, 60)))
        for _ in range(args.secrets)
    ]
    clean = body(args.size, rng)
    dirty = body(args.size, rng, echo=secrets[3])

    print(f"{args.secrets} secrets, {len(clean)}-byte body")
    start = time.perf_counter()
    redactor = scrub.Redactor.build(frozenset(secrets))
    build_ms = (time.perf_counter() - start) * 1000
    print(
        f"  build the pattern (once per configuration change): {build_ms:8.1f} ms, "
        f"{len(redactor.pattern.pattern)} bytes of regex"
    )
    assert redactor.sub(clean) == clean and b"[redacted]" in redactor.sub(dirty)

    def stream(data: bytes) -> None:
        carry = b""
        for i in range(0, len(data), 256):
            _, carry = redactor.split(carry + data[i : i + 256])
        redactor.sub(carry)

    none = best(lambda: scrub.scrub_bytes(clean), args.n)  # no secret set: the pass-through
    figures = {
        "no secret configured (pass-through)": none,
        "whole body, no secret in it": best(lambda: redactor.sub(clean), args.n),
        "whole body, a key echoed in it": best(lambda: redactor.sub(dirty), args.n),
        "streamed in 256-byte chunks, no secret": best(lambda: stream(clean), args.n),
    }
    for name, seconds in figures.items():
        print(f"  {name:42s} {seconds * 1e6:8.1f} µs per response")
    audio = os.urandom(1 << 20)
    image = json.dumps({"data": [{"b64_json": base64.b64encode(os.urandom(786_000)).decode()}]}).encode()
    for name, data in (("1 MB of binary audio", audio), (f"{len(image) >> 10} KB JSON with a base64 image", image)):
        print(f"  {name:42s} {best(lambda d=data: redactor.sub(d), 3) * 1e3:8.1f} ms per response")


if __name__ == "__main__":
    main()

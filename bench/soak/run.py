"""Soak: the real server for N minutes at a fixed concurrency, with random upstream faults.

    .venv/bin/python -m bench.soak.run [--minutes 10] [--concurrency 8] [--seed 1] [--keep]

Starts `manage.py serve` (daphne, the embedded monitor on, a fresh SQLite database) and three
fake OpenAI upstreams on loopback. Routes: `soak` = A → B → C, `soak-refused` = a provider
whose port refuses connections → A. Clients send chat completions, a quarter of them streamed,
at a fixed concurrency until the time is up (or MAX_REQUESTS). Every 1.5 s a random fault is
injected into a random upstream through the fakes' fault API (500, 502, 503, 529, 429 with
Retry-After in seconds or as a date, a hang past the attempt timeout, a dropped connection,
a malformed body, a stream cut after its first chunk), each for a few requests or 2 s; every 90 s
upstream B is stopped for 4 s (refused connections) and started again on the same port.

Breakers break for 5 s (up to 30 s) so that a soak of minutes sees them open and close
many times. Then it checks, and prints:
- no error beyond the injected ones: every failed attempt in the request log (retried,
  failed over or not) matches a fault an upstream applied at that time (or B's outage, or
  the refusing provider); every non-2xx answer and every stream aborted in band has only such
  attempts or skips that faults cause (open breaker, cooldown, throttling); no client error;
- memory: the server's RSS at the end against after the warm-up (first 10 %, at least 20 s):
  growth under 10 %;
- file descriptors: /proc/<pid>/fd sampled every 5 s; the highest count in the last tenth of
  the run against the highest in the first fifth after the warm-up: no growth beyond 16
  (connection pools breathe with the load);
- accounting: after SIGTERM (which flushes), the request log holds exactly the requests the
  clients sent, each once.

It exits 1 if a check fails. Traffic stays on 127.0.0.1; the loop is bounded in time and count.
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import json
import random
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.fakes.base import Fault, free_port  # noqa: E402
from tests.fakes.openai import FakeOpenAI  # noqa: E402
from tests.reliability.live import LiveGateway, openai_provider  # noqa: E402

CHAT = "/v1/chat/completions"
MAX_REQUESTS = 2_000_000
FAILED = {"failure", "deadline", "rate_limited", "exhausted", "stream_aborted"}
# Skips only a fault can cause: a breaker opened by failures, a key cooling down after a 429,
# adaptive throttling after 429/529, the retry budget spent on retries of failures, a deadline
# eaten by a hang.
FAULT_SKIPS = {"open", "half_open_full", "cooldown", "throttled", "budget", "deadline", "bulkhead_full"}


class SoakUpstream(FakeOpenAI):
    """A fake that notes the time and kind of every fault it applies."""

    def __init__(self, name: str, port: int = 0) -> None:
        super().__init__(port=port)
        self.name = name
        self.applied: list[tuple[float, str]] = []

    def _take_fault(self, path: str) -> Fault | None:
        fault = super()._take_fault(path)
        if fault is not None:
            self.applied.append((time.time(), describe(fault)))
        return fault


def describe(fault: Fault) -> str:
    if fault.hang:
        return "hang"
    if fault.drop:
        return "drop"
    if fault.cut_stream_after is not None:
        return "cut_stream"
    if fault.body is not None:
        return "malformed"
    return f"http_{fault.status}"


def random_fault(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(["500", "502", "503", "529", "429s", "429date", "429long", "hang", "drop", "malformed", "cut"])
    times = rng.randint(1, 6)
    fault: dict[str, Any] = {"path": CHAT, "times": times}
    if kind in ("500", "502", "503", "529"):
        fault["status"] = int(kind)
    elif kind == "429s":
        fault.update(status=429, retry_after="1")
    elif kind == "429date":
        fault.update(status=429, retry_after=email.utils.formatdate(time.time() + 2, usegmt=True))
    elif kind == "429long":
        fault.update(status=429, retry_after="20")
    elif kind == "hang":
        fault.update(hang=True, times=min(times, 2))
    elif kind == "drop":
        fault["drop"] = True
    elif kind == "malformed":
        fault.update(status=200, body='{"choices": [oops')
    else:
        fault["cut_stream_after"] = 1
    return fault


@dataclass
class Sent:
    started: float
    ended: float
    status: int
    request_id: str
    aborted: bool = False
    error: str = ""


@dataclass
class Soak:
    live: LiveGateway
    upstreams: dict[str, SoakUpstream]
    deadline: float
    rng: random.Random
    sent: list[Sent] = field(default_factory=list)
    client_errors: list[str] = field(default_factory=list)
    outages: list[tuple[float, float]] = field(default_factory=list)
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # (t, rss KiB, fds)
    injected: Counter[str] = field(default_factory=Counter)

    def running(self) -> bool:
        return time.monotonic() < self.deadline and len(self.sent) < MAX_REQUESTS

    async def pause(self, seconds: float) -> None:
        """Sleep, but never past the end of the run."""
        await asyncio.sleep(max(0.0, min(seconds, self.deadline - time.monotonic())))

    async def client(self, client: httpx.AsyncClient, n: int) -> None:
        rng = random.Random(n)
        while self.running():
            stream = rng.random() < 0.25
            route = "soak-refused" if rng.random() < 0.1 else "soak"
            body = {
                "model": route,
                "messages": [{"role": "user", "content": f"soak {n} {len(self.sent)}"}],
                "stream": stream,
            }
            started = time.time()
            try:
                if stream:
                    async with client.stream("POST", CHAT, json=body) as response:
                        text = (await response.aread()).decode()
                    aborted = response.status_code == 200 and '"stream_aborted"' in text
                else:
                    response = await client.post(CHAT, json=body)
                    aborted = False
            except httpx.HTTPError as exc:
                self.client_errors.append(f"{type(exc).__name__}: {exc}")
                continue
            error = ""
            if response.status_code != 200 and not stream:
                error = (response.json().get("error") or {}).get("type", "")
            self.sent.append(
                Sent(
                    started, time.time(), response.status_code, response.headers.get("x-request-id", ""), aborted, error
                )
            )

    async def inject(self) -> None:
        """A fault every 1.5 s, mostly on A (which carries the traffic), for a few requests or
        at most 2 s: a fault left waiting on an idle fallback would hit the next failover all
        at once."""
        loop = asyncio.get_running_loop()
        while self.running():
            await self.pause(1.5)
            name = self.rng.choices(["a", "b", "c"], weights=[6, 3, 1])[0]
            fields = random_fault(self.rng)
            fault = self.upstreams[name].fault(**fields)
            self.injected[describe(fault)] += 1
            loop.call_later(self.rng.uniform(0.5, 2.0), self.expire, name, fault)

    def expire(self, name: str, fault: Fault) -> None:
        upstream = self.upstreams[name]
        with upstream._lock:
            if fault in upstream._faults:
                upstream._faults.remove(fault)

    async def outage(self) -> None:
        while self.running():
            await self.pause(90)
            if not self.running():
                return
            b = self.upstreams["b"]
            start = time.time()
            b.stop()
            await asyncio.sleep(4)
            restarted = SoakUpstream("b", port=b.port)
            restarted.applied = b.applied
            restarted._faults = b._faults
            restarted.start()
            self.upstreams["b"] = restarted
            self.outages.append((start, time.time()))

    async def sample(self) -> None:
        while self.running():
            self.samples.append((time.monotonic(), self.live.rss_kib(), self.live.fd_count()))
            await self.pause(5)


def config(urls: dict[str, str], refused: str) -> dict[str, Any]:
    quick = {
        "timeout_s": 3,
        "health_check": {"interval_s": 10, "timeout_s": 2},
        "retry": {"max_attempts": 2, "base_delay_s": 0.05, "max_delay_s": 0.5},
        "breaker": {"break_s": 5, "max_break_s": 30},
    }
    providers = [openai_provider(f"soak-{name}", url, **quick) for name, url in sorted(urls.items())]
    providers.append(openai_provider("soak-refused", refused, **quick))
    return {
        "providers": providers,
        "routes": [
            {
                "name": "soak",
                "capability": "chat",
                "max_attempts": 4,
                "targets": [{"provider": f"soak-{n}", "model": "gpt-4o-mini"} for n in sorted(urls)],
            },
            {
                "name": "soak-refused",
                "capability": "chat",
                "targets": [
                    {"provider": "soak-refused", "model": "gpt-4o-mini"},
                    {"provider": "soak-a", "model": "gpt-4o-mini"},
                ],
            },
        ],
    }


def fault_kind(attempt: dict[str, Any]) -> str:
    """The kind of fault (as `describe` names it) that explains a failed attempt."""
    reason = attempt["reason"]
    if attempt["outcome"] == "rate_limited":
        return "http_429"
    if attempt["outcome"] == "stream_aborted":
        return "cut_stream"
    if reason.startswith("http_"):
        return reason
    if reason == "malformed_response":
        return "malformed"
    if reason in ("attempt_timeout", "read_timeout", "timeout"):
        return "hang"
    return "drop"  # a connection closed without an answer: connect, protocol or transport error


def explained_failures(rows: list[Any], soak: Soak) -> tuple[Counter[str], list[str]]:
    """Match every failed attempt in the log, one to one, to a fault of its kind that its
    upstream applied while the request ran; return what matched and what is left over."""
    pending: dict[tuple[str, str], list[float]] = defaultdict(list)
    for name, upstream in soak.upstreams.items():
        for at, kind in upstream.applied:
            pending[(f"soak-{name}", kind)].append(at)
    for times in pending.values():
        times.sort()
    attempts = []
    for row in rows:
        at = _timestamp(row["at"])
        for attempt in json.loads(row["attempts"]):
            if attempt["skipped"] is None and attempt["outcome"] in FAILED:
                attempts.append((at, at + row["latency_ms"] / 1000, attempt, row["request_id"]))
    attempts.sort(key=lambda a: a[1])  # the earliest-ending request takes the earliest fault
    matched: Counter[str] = Counter()
    unexplained: list[str] = []
    for start, end, attempt, request_id in attempts:
        provider = attempt["provider"]
        if provider == "soak-refused":
            matched["refused provider"] += 1
            continue
        if provider == "soak-b" and any(s - 1 <= end and start <= e + 1 for s, e in soak.outages):
            matched["B's outage"] += 1
            continue
        kind = fault_kind(attempt)
        times = pending[(provider, kind)]
        hit = next((i for i, t in enumerate(times) if start - 1 <= t <= end + 1), None)
        if hit is None:
            unexplained.append(
                f"{request_id} {provider} {attempt['outcome']} {attempt['reason']}: {attempt['error'][:120]}"
            )
            continue
        times.pop(hit)
        matched[kind] += 1
    return matched, unexplained


def _timestamp(value: str) -> float:
    """A request log `at` as SQLite holds it (UTC, without a zone) in Unix seconds."""
    from datetime import UTC, datetime

    at = datetime.fromisoformat(value)
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


def non_2xx_unexplained(soak: Soak, rows_by_id: dict[str, Any]) -> list[str]:
    """Every non-2xx answer, and every stream aborted in band, must have come from faults."""
    bad = []
    for sent in soak.sent:
        if sent.status == 200 and not sent.aborted:
            continue
        row = rows_by_id.get(sent.request_id)
        if row is None:
            bad.append(f"{sent.request_id}: {sent.status} not in the log")
            continue
        attempts = json.loads(row["attempts"])
        if sent.status not in (200, 502, 503):
            bad.append(f"{sent.request_id}: status {sent.status} ({sent.error})")
            continue
        causes = [
            a for a in attempts if (a["skipped"] is None and a["outcome"] in FAILED) or (a["skipped"] in FAULT_SKIPS)
        ]
        if not causes or len(causes) != len([a for a in attempts if a["outcome"] != "success"]):
            bad.append(f"{sent.request_id}: {sent.status} with attempts {attempts}")
    return bad


async def soak(minutes: float, concurrency: int, seed: int, keep: bool = False) -> int:
    rng = random.Random(seed)
    folder = Path(tempfile.mkdtemp(prefix="gateway-soak-"))
    upstreams = {name: SoakUpstream(name).start() for name in ("a", "b", "c")}
    refused = f"http://127.0.0.1:{free_port()}"
    live = LiveGateway.start(folder, {"ANALYTICS_FLUSH_INTERVAL_S": "1", "LOG_LEVEL": "WARNING"}, embedded=True)
    print(f"server pid {live.pid} at {live.url}; database {live.db}")
    try:
        live.configure(config({n: u.url for n, u in upstreams.items()}, refused))
        duration = minutes * 60
        run = Soak(live, upstreams, time.monotonic() + duration, rng)
        warmup = max(20.0, duration * 0.1)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=live.url, headers=live.headers(), timeout=60, limits=limits) as client:
            started = time.monotonic()
            await asyncio.gather(
                run.inject(), run.outage(), run.sample(), *(run.client(client, n) for n in range(concurrency))
            )
        elapsed = time.monotonic() - started
        end_rss, end_fds = live.rss_kib(), live.fd_count()
        after_warmup = next((s for s in run.samples if s[0] - started >= warmup), run.samples[-1])
        for up in run.upstreams.values():
            up.clear_faults()
        assert live.terminate() == 0, "the server did not stop cleanly"
    finally:
        live.stop()
        for up in upstreams.values():  # B's restarts replaced it in this same dict
            up.stop()

    rows = live.rows()
    rows_by_id = {r["request_id"]: r for r in rows}
    ids = [s.request_id for s in run.sent]
    matched, unexplained = explained_failures(rows, run)
    bad_answers = non_2xx_unexplained(run, rows_by_id)
    statuses = Counter("aborted" if s.aborted else str(s.status) for s in run.sent)
    rss_growth = (end_rss - after_warmup[1]) / after_warmup[1]
    # Connections come and go with the load: compare the highest counts early and late.
    measured = [s for s in run.samples if s[0] >= after_warmup[0]]
    tenth = max(1, len(measured) // 10)
    early_fds = max(s[2] for s in measured[: tenth * 2])
    late_fds = max([end_fds] + [s[2] for s in measured[-tenth:]])
    fd_growth = late_fds - early_fds
    checks = {
        "no error beyond the injected ones": not unexplained and not bad_answers and not run.client_errors,
        "memory growth under 10 %": rss_growth < 0.10,
        "no file-descriptor leak": fd_growth <= 16,
        "exact accounting": sorted(ids) == sorted(rows_by_id) and len(rows) == len(ids) == len(set(ids)),
    }
    print(f"\nsoak: {elapsed / 60:.1f} min at concurrency {concurrency}, seed {seed}")
    print(
        f"requests sent: {len(run.sent)} ({len(run.sent) / elapsed:.0f}/s); answers: {dict(sorted(statuses.items()))}"
    )
    print(
        f"faults injected: {sum(run.injected.values())} {dict(sorted(run.injected.items()))}; "
        f"B stopped {len(run.outages)} times"
    )
    print(f"faults applied by the upstreams: { {n: len(u.applied) for n, u in sorted(run.upstreams.items())} }")
    print(f"failed attempts matched to a fault: {sum(matched.values())} {dict(sorted(matched.items()))}")
    print(
        f"unexplained failed attempts: {len(unexplained)}; unexplained answers: {len(bad_answers)}; "
        f"client errors: {len(run.client_errors)}"
    )
    for line in unexplained[:10] + bad_answers[:10] + run.client_errors[:10]:
        print("   ", line)
    rss = [s[1] for s in run.samples]
    fds = [s[2] for s in run.samples]
    print(
        f"server RSS: {after_warmup[1] / 1024:.1f} MiB after warm-up ({warmup:.0f} s), {end_rss / 1024:.1f} MiB "
        f"at the end ({rss_growth:+.1%}); min {min(rss) / 1024:.1f}, max {max(rss) / 1024:.1f} MiB"
    )
    print(
        f"server fds: {after_warmup[2]} after warm-up, {end_fds} at the end; highest {early_fds} early "
        f"and {late_fds} late ({fd_growth:+d}); min {min(fds)}, max {max(fds)}"
    )
    print(f"request log after SIGTERM: {len(rows)} rows, {len(set(rows_by_id))} distinct ids; clients sent {len(ids)}")
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    if keep:
        print(f"kept {folder} (database and server log)")
    else:
        shutil.rmtree(folder, ignore_errors=True)
    return 0 if all(checks.values()) else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the database and the server's log")
    args = parser.parse_args()
    sys.exit(asyncio.run(soak(args.minutes, args.concurrency, args.seed, args.keep)))


if __name__ == "__main__":
    main()

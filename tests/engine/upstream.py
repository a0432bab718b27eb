"""A scripted fake upstream for engine tests: counts calls, tracks overlap, records contexts."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from providers.engine import AttemptContext, TargetSpec, UpstreamError

Behaviour = Callable[[TargetSpec, AttemptContext], Awaitable[Any]]


def ok(value: Any = "ok", delay: float = 0.0) -> Behaviour:
    async def behaviour(target: TargetSpec, ctx: AttemptContext) -> Any:
        if delay:
            await asyncio.sleep(delay)
        return value

    return behaviour


def http_error(
    status: int, *, delay: float = 0.0, headers: Mapping[str, str] | None = None, body: bytes = b""
) -> Behaviour:
    async def behaviour(target: TargetSpec, ctx: AttemptContext) -> Any:
        if delay:
            await asyncio.sleep(delay)
        raise UpstreamError.from_response(status, httpx.Headers(headers or {}), body)

    return behaviour


def raises(exc: BaseException, delay: float = 0.0) -> Behaviour:
    async def behaviour(target: TargetSpec, ctx: AttemptContext) -> Any:
        if delay:
            await asyncio.sleep(delay)
        raise exc

    return behaviour


def hang() -> Behaviour:
    async def behaviour(target: TargetSpec, ctx: AttemptContext) -> Any:
        await asyncio.Event().wait()

    return behaviour


class Upstream:
    """Plays `script` in order, then `default` for ever. Counts what the engine sends."""

    def __init__(self, *script: Behaviour, default: Behaviour | None = None) -> None:
        self.script = list(script)
        self.default = default or ok()
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.contexts: list[AttemptContext] = []
        self.started_at: list[float] = []
        self.cancelled = 0

    async def __call__(self, target: TargetSpec, ctx: AttemptContext) -> Any:
        self.calls += 1
        self.contexts.append(ctx)
        self.started_at.append(asyncio.get_running_loop().time())
        behaviour = self.script.pop(0) if self.script else self.default
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await behaviour(target, ctx)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1


class Router:
    """One `Upstream` per provider name."""

    def __init__(self, **upstreams: Upstream) -> None:
        self.upstreams = upstreams

    def __getitem__(self, provider: str) -> Upstream:
        return self.upstreams[provider]

    async def __call__(self, target: TargetSpec, ctx: AttemptContext) -> Any:
        return await self.upstreams[target.provider](target, ctx)

    @property
    def calls(self) -> int:
        return sum(u.calls for u in self.upstreams.values())

"""One gateway request's trip: its id, its route, the key's admission, the engine's chain,
the headers that say who served it, and the record announced about it when it ends.

Request ids: a caller's own `X-Request-Id` is kept when it is a plain token (at most
`MAX_REQUEST_ID` characters of letters, digits and `._:-`), so a client can find its request
in the log by the id it chose; anything else is ignored and a new id made. Either way the
answer carries it back.

Headers: `X-Gateway-Route`, `-Attempts`, `-Provider`, `-Model`, `-Failovers`, `X-Request-Id`,
`X-Gateway-Cache` on routes with a response cache, and the serving provider's rate-limit
headers (`x-ratelimit-*`, `anthropic-ratelimit-*`) as `X-Gateway-Upstream-Ratelimit-<rest>`
(`X-Gateway-Upstream-Ratelimit-Remaining-Requests`), their values as the shared client's
scrubbing left them, encoded as every header here is.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.http import HttpRequest, HttpResponse

from providers.adapters import Usage
from providers.bounds import header_value
from providers.engine import (
    AllTargetsFailed,
    AttemptRecord,
    CallerError,
    ChainResult,
    DeadlineExceeded,
    NoTargets,
    RoutePolicy,
    TargetSpec,
)
from providers.keys import KeyRefused
from providers.keys import admit as admit_key
from providers.runtime import Runtime
from providers.snapshot import ResolveError, Snapshot

from .bodies import check_name
from .calls import Call
from .dialects import openai_chat
from .dialects.dialect import Dialect
from .dialects.ids import new_hex
from .errors import RequestError, error_response, is_json
from .kept_bodies import Answer, Transcript, body_limit, keep_bodies
from .records import RequestRecord, announce

OPENAI = openai_chat.DIALECT
MAX_REQUEST_ID = 64
_REQUEST_ID = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_REQUEST_ID}}}")
UPSTREAM_RATELIMIT = "X-Gateway-Upstream-Ratelimit-"

_pending: set[asyncio.Task[None]] = set()  # token counts on their way to a shared store


def request_id_of(request: HttpRequest) -> str:
    """The request's id: the caller's `X-Request-Id` when it is a plain token, else a new one;
    the same for every call on one request."""
    known = getattr(request, "gateway_request_id", None)
    if isinstance(known, str):
        return known
    said = request.META.get("HTTP_X_REQUEST_ID", "")
    request_id = said if isinstance(said, str) and _REQUEST_ID.fullmatch(said) else new_hex(8)
    request.gateway_request_id = request_id  # type: ignore[attr-defined]
    return request_id


def options(request: HttpRequest) -> tuple[float | None, str | None]:
    """Caller overrides from headers: a shorter deadline and a preferred provider."""
    deadline = request.META.get("HTTP_X_GATEWAY_DEADLINE")
    try:
        deadline_s = float(deadline) if deadline else None
    except ValueError:
        raise RequestError(400, "X-Gateway-Deadline must be a number of seconds.") from None
    if deadline_s is not None and not 0 < deadline_s <= 3600:
        raise RequestError(400, "X-Gateway-Deadline must be > 0 and <= 3600.")
    prefer = request.META.get("HTTP_X_GATEWAY_PREFER") or None
    if prefer is not None:
        check_name(prefer, "X-Gateway-Prefer")
    return deadline_s, prefer


def ratelimit_headers(seen: dict[str, str]) -> dict[str, str]:
    """A provider's rate-limit headers ("remaining-requests": "99") under the gateway's names."""
    return {
        UPSTREAM_RATELIMIT + "-".join(part.capitalize() for part in rest.split("-")): header_value(value)
        for rest, value in seen.items()
    }


class Exchange:
    """One request's trip through the engine, and the record announced about it when it ends."""

    def __init__(
        self, request: HttpRequest, rt: Runtime, snapshot: Snapshot, capability: str, *, dialect: Dialect = OPENAI
    ) -> None:
        self.request = request
        self.rt = rt
        self.snapshot = snapshot
        self.capability = capability
        self.dialect = dialect
        self.started = time.perf_counter()
        self.at = datetime.now(UTC)
        self.request_id = request_id_of(request)
        self.route = ""
        self.result: ChainResult[Any] | None = None
        self.cache = ""  # hit | miss | bypass on a route with a response cache
        self.admitted = False
        # The bytes of each body the record keeps; None (the default): bodies are not kept,
        # and this is all the work they cost (kept_bodies.py).
        self.body_limit = body_limit()

    def resolve(self, model: Any) -> tuple[RoutePolicy, tuple[TargetSpec, ...]]:
        try:
            policy, targets = self.snapshot.resolve(model, self.capability)
        except ResolveError as exc:
            raise RequestError(exc.status, str(exc), code=exc.code) from None
        self.route = policy.name
        return policy, targets

    async def admit(self) -> None:
        """The key's routes, budget and rates, before any provider is called (or any kept
        answer is read: a key that may not use the route never gets one)."""
        key = getattr(self.request, "api_key", None)
        if key is not None and not self.admitted:
            try:
                await admit_key(key, self.route)
            except KeyRefused as exc:
                raise exc.request_error() from None
        self.admitted = True

    async def run(
        self,
        call: Call,
        policy: RoutePolicy,
        targets: tuple[TargetSpec, ...],
        *,
        deadline_s: float | None,
        prefer: str | None,
    ) -> ChainResult[Any]:
        await self.admit()
        self.result = await self.rt.engine.execute(
            policy,
            targets,
            call.attempt_fn(self.rt, self.snapshot),
            deadline_s=deadline_s,
            preferred_provider=prefer,
            streaming=call.stream,
        )
        return self.result

    def headers(self, attempts: list[AttemptRecord], provider: str = "", model: str = "") -> dict[str, str]:
        # The route may be the caller's own `provider/model` text: checked at the edge, and
        # still encoded, so a header never carries a caller's raw characters.
        headers = {
            "X-Gateway-Route": header_value(self.route),
            "X-Gateway-Attempts": str(sum(1 for a in attempts if a.skipped is None)),
            "X-Request-Id": self.request_id,
        }
        if provider:
            headers["X-Gateway-Provider"] = header_value(provider)
            headers["X-Gateway-Model"] = header_value(model)
        if self.cache:
            headers["X-Gateway-Cache"] = self.cache
        return headers

    def success_headers(self, result: ChainResult[Any], call: Call | None = None) -> dict[str, str]:
        headers = self.headers(result.attempts, result.target.provider, result.target.model)
        headers["X-Gateway-Failovers"] = str(result.failovers)
        if call is not None:
            headers.update(ratelimit_headers(call.ratelimits.get(result.target.provider, {})))
        return headers

    def transcript(self) -> Transcript | None:
        """Where a streamed answer's relayed bytes are noted for the record; None when bodies
        are not kept."""
        return Transcript(self.body_limit) if self.body_limit is not None else None

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def cost(self, provider: str, model: str, usage: Usage) -> Decimal | None:
        """What `provider` charged for `usage` at `model`'s prices; None: unknown (a unit used
        has no known price). Nobody served (no provider): nothing was charged."""
        entry = self.snapshot.providers.get(provider) if provider else None
        return usage.cost(entry.price(model)) if entry is not None else Decimal(0)

    def record(
        self,
        outcome: str,
        status: int,
        attempts: list[AttemptRecord],
        *,
        provider: str = "",
        model: str = "",
        usage: Usage | None = None,
        ttft_ms: float | None = None,
        stream: bool = False,
        failovers: int = 0,
        retries: int = 0,
        error: str = "",
        saved: Decimal = Decimal(0),
        answer: Answer = None,
    ) -> Decimal | None:
        """Announce the request's record; returns its cost (None: unknown). `answer` is what
        the caller was sent (a response, or a stream's transcript), kept when bodies are."""
        usage = usage or Usage()
        cost = self.cost(provider, model, usage)
        entry = self.snapshot.providers.get(provider) if provider else None
        tokens = usage.tokens_in + usage.tokens_out
        if entry is not None and entry.tokens_per_minute and tokens:  # what the provider's token limit counts
            task = asyncio.get_running_loop().create_task(self.rt.engine.limits.add_tokens(provider, tokens))
            _pending.add(task)
            task.add_done_callback(_pending.discard)
        key = getattr(self.request, "api_key", None)
        record = RequestRecord(
            at=self.at,
            request_id=self.request_id,
            route=self.route,
            capability=self.capability,
            outcome=outcome,
            status=status,
            latency_ms=self.elapsed_ms(),
            provider=provider,
            model=model,
            api_key_id=key.id if key is not None else None,
            ttft_ms=ttft_ms,
            stream=stream,
            attempts=[a.as_dict() for a in attempts],
            calls=sum(1 for a in attempts if a.skipped is None),
            failovers=failovers,
            retries=retries,
            tokens_in=usage.tokens_in,
            tokens_out=usage.tokens_out,
            characters=usage.characters,
            images=usage.images,
            cost=cost,
            error=error,
            cache=self.cache,
            saved=saved,
        )
        if self.body_limit is not None:
            keep_bodies(record, self.request, answer, self.body_limit)
        announce(record)
        return cost

    def failure_response(self, exc: BaseException) -> HttpResponse:
        """The answer, and the record, for a request the chain could not serve."""
        if isinstance(exc, CallerError):
            upstream = exc.upstream
            attempts = exc.attempts
            served = next((a for a in reversed(attempts) if a.skipped is None), None)
            status = upstream.status or 400
            response = relayed_error(status, upstream.body, upstream.media_type, upstream.message, self.dialect)
            for name, value in self.headers(
                attempts, served.provider if served else "", served.model if served else ""
            ).items():
                response[name] = value
            hops = exc.hops
            self.record(
                "caller_error",
                status,
                attempts,
                provider=served.provider if served else "",
                model=served.model if served else "",
                error=upstream.classification.reason,
                failovers=hops.failovers,
                retries=hops.retries,
                answer=response,
            )
            return response
        if isinstance(exc, AllTargetsFailed):
            attempts = exc.attempts
            if isinstance(exc, DeadlineExceeded):
                status, type_, outcome = 502, "deadline_exceeded", "deadline"
            elif exc.all_skipped:
                status, type_, outcome = 503, "no_target_available", "unavailable"
            else:
                status, type_, outcome = 502, "all_targets_failed", "failure"
            last = next((a for a in reversed(attempts) if a.skipped is None), None)
            reason = last.reason if last else (attempts[-1].skipped or "") if attempts else ""
            hops = exc.hops
            headers = self.headers(attempts)
            retry_after = getattr(exc, "retry_after", None)
            if (
                status == 503
                and isinstance(retry_after, int | float)
                and not isinstance(retry_after, bool)
                and math.isfinite(retry_after)
            ):
                headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
            response = error_response(
                status,
                type_,
                str(exc),
                attempts=[a.as_dict() for a in attempts],
                headers=headers,
                shape=self.dialect.error_body,
            )
            self.record(
                outcome,
                status,
                attempts,
                error=reason,
                failovers=hops.failovers,
                retries=hops.retries,
                answer=response,
            )
            return response
        if isinstance(exc, NoTargets):
            response = error_response(
                503,
                "no_target_available",
                str(exc),
                attempts=[],
                headers=self.headers([]),
                shape=self.dialect.error_body,
            )
            self.record("unavailable", 503, [], error="no_targets", answer=response)
            return response
        raise exc


def relayed_error(
    status: int, body: bytes, media_type: str | None, message: str, dialect: Dialect = OPENAI
) -> HttpResponse:
    """A provider's answer to a bad request, relayed to the caller: JSON in the caller's API's
    shape as it came; other JSON (an Anthropic error to an OpenAI client, say) said again in
    that shape with the provider's type and message; anything else (an HTML error page, text)
    wrapped in our JSON error, never served as a page of ours."""
    data: Any = None
    if body and is_json(media_type or "application/json"):
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if dialect.native_error(data) or (data is None and dialect is OPENAI):
            return HttpResponse(body, status=status, content_type=media_type or "application/json")
    type_, said = _upstream_error(data)
    return error_response(
        status,
        type_ or "invalid_request_error",
        said or message or f"the provider answered {status}",
        code="upstream_error",
        shape=dialect.error_body,
    )


def _upstream_error(data: Any) -> tuple[str | None, str | None]:
    """(type, message) of a provider's JSON error: OpenAI's and Anthropic's `error` object,
    or Ollama's `{"error": "text"}`."""
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, str):
        return None, error
    if not isinstance(error, dict):
        return None, None
    type_, message = error.get("type"), error.get("message")
    return (
        type_ if isinstance(type_, str) and type_ else None,
        message if isinstance(message, str) and message else None,
    )

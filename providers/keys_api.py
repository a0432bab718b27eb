"""API keys in the operations API (scope `admin`): `GET /api/keys`, `GET /api/keys/<prefix>`,
`PATCH /api/keys/<prefix>` (routes, budget and its period, rpm, tpm, expiry, scopes) and
`POST /api/keys/<prefix>/revoke`.

A key is named by its visible prefix (`gw_1a2b3c4d`); its hash and secret are never shown. Each
answer has the key's limits and its use in the current budget period: spend (as the limit
store counts it, every worker's requests), requests and tokens (from the per-day `KeySpend`
rows, at most KEY_SPEND_FLUSH_INTERVAL_S behind, plus this process's unwritten batch). A change
is audited, and this process reloads the configuration at once (others within
CONFIG_POLL_INTERVAL_S, as for every configuration change), so a revoked key gets 401 at once.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    field_validator,
)

from project.database import db_call

from .gateway.auth import api_view
from .gateway.bodies import parse_json, validate
from .gateway.errors import RequestError
from .keys import KeyLimits, limits_for, period_bounds
from .models import MAX_BUDGET, MAX_KEY_ROUTES, ApiKey, AuditLog, KeySpend
from .openapi import Response, document
from .runtime import runtime

# -- schemas -----------------------------------------------------------------------------------

Period = Literal["day", "week", "month"]


class KeyLimitValues(BaseModel):
    rpm: int | None = Field(description="requests per minute; null: no limit")
    tpm: int | None = Field(description="tokens (in + out) per minute; null: no limit")


class KeyInfo(BaseModel):
    prefix: str = Field(description="the key's visible start; names it in these URLs")
    name: str
    scopes: list[str]
    routes: list[str] = Field(description="the routes the key may use; empty: every route")
    limits: KeyLimitValues
    budget: float | None = Field(description="spend allowed per period, in the prices' currency; null: none")
    budget_period: Period = Field(description="the budget's UTC calendar period (the week starts on Monday)")
    period_start: datetime
    period_end: datetime
    spend: float = Field(description="the key's spend in the current period, every worker's requests")
    budget_used: float | None = Field(description="spend / budget (1 for a budget of 0); null without a budget")
    requests: int = Field(description="requests in the current period")
    tokens_in: int
    tokens_out: int
    tokens: int
    created_at: datetime
    last_used_at: datetime | None = Field(description="written at most once a minute")
    expires_at: datetime | None
    revoked_at: datetime | None
    active: bool = Field(description="neither revoked nor expired")


class KeyList(BaseModel):
    keys: list[KeyInfo]


class KeyChange(BaseModel):
    """What a PATCH changes: the fields it names (null clears a limit); the others stay."""

    model_config = ConfigDict(extra="forbid")

    scopes: Annotated[list[Literal["gateway", "read", "admin"]], Field(min_length=1, max_length=3)] | None = None
    routes: Annotated[list[StrictStr], Field(max_length=MAX_KEY_ROUTES)] | None = Field(
        default=None, description="route names the key may use; [] allows every route"
    )
    budget: Annotated[Decimal, Field(ge=0, le=MAX_BUDGET, max_digits=14, decimal_places=4)] | None = Field(
        default=None, description="per period, in the prices' currency; null: no budget"
    )
    budget_period: Period | None = None
    rpm: Annotated[StrictInt, Field(ge=1, le=10_000_000)] | None = Field(default=None, description="null: no limit")
    tpm: Annotated[StrictInt, Field(ge=1, le=10**12)] | None = Field(default=None, description="null: no limit")
    expires_at: AwareDatetime | None = Field(
        default=None, description="ISO 8601 with a zone, in the future; null: never"
    )

    @field_validator("budget", mode="before")
    @classmethod
    def _a_number(cls, value: Any) -> Any:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float | str)):
            raise ValueError("must be a number")
        return value


# The request's names of the model's fields.
FIELDS = {
    "scopes": "scopes",
    "routes": "routes",
    "budget": "budget",
    "budget_period": "budget_period",
    "rpm": "rate_limit_per_minute",
    "tpm": "tokens_per_minute",
    "expires_at": "expires_at",
}
PARAMS = {column: name for name, column in FIELDS.items()}
NOT_NULL = ("scopes", "routes", "budget_period")


# -- reading -----------------------------------------------------------------------------------


def _number(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def key_rows(prefix: str | None, now: datetime) -> list[tuple[ApiKey, dict[tuple[int, date], KeySpend]]]:
    keys = list(ApiKey.objects.all() if prefix is None else ApiKey.objects.filter(prefix=prefix))
    if not keys:
        return []
    since = min(period_bounds(k.budget_period, now)[0] for k in keys).date()
    days = {(s.key_id, s.day): s for s in KeySpend.objects.filter(key__in=keys, day__gte=since)}
    return [(k, days) for k in keys]


def limits_now(limits: KeyLimits) -> datetime:
    return datetime.fromtimestamp(limits.now(), UTC)  # the clock admissions count periods on


async def key_info(limits: KeyLimits, row: ApiKey, days: dict[tuple[int, date], KeySpend]) -> dict[str, Any]:
    now = limits_now(limits)
    start, end = period_bounds(row.budget_period, now)
    used = limits.unwritten(row.pk, start.date(), end.date())
    for (key_id, day), spent in days.items():
        if key_id == row.pk and start.date() <= day < end.date():
            used.requests += spent.requests
            used.tokens_in += spent.tokens_in
            used.tokens_out += spent.tokens_out
            used.spend += spent.spend
    spend = await limits.spend(row.pk, row.budget_period)
    active = row.revoked_at is None and (row.expires_at is None or row.expires_at > timezone.now())
    return {
        "prefix": row.prefix,
        "name": row.name,
        "scopes": list(row.scopes),
        "routes": list(row.routes or []),
        "limits": {"rpm": row.rate_limit_per_minute, "tpm": row.tokens_per_minute},
        "budget": _number(row.budget),
        "budget_period": row.budget_period,
        "period_start": start.isoformat(),
        "period_end": end.isoformat(),
        "spend": float(spend),
        "budget_used": None if row.budget is None else float(spend / row.budget) if row.budget else 1.0,
        "requests": used.requests,
        "tokens_in": used.tokens_in,
        "tokens_out": used.tokens_out,
        "tokens": used.tokens_in + used.tokens_out,
        "created_at": row.created_at.isoformat(),
        "last_used_at": _when(row.last_used_at),
        "expires_at": _when(row.expires_at),
        "revoked_at": _when(row.revoked_at),
        "active": active,
    }


def _when(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


async def _one(prefix: str) -> dict[str, Any]:
    limits = limits_for(runtime())
    found = await db_call(key_rows, prefix, limits_now(limits)) if len(prefix) <= 16 else []
    if not found:
        raise RequestError(404, f"no API key with the prefix {prefix!r}", code="key_not_found")
    row, days = found[0]
    return await key_info(limits, row, days)


@document(
    "GET",
    "/api/keys",
    "API keys with their limits and their use in the current budget period",
    scope="admin",
    tags=["keys"],
    responses={200: Response("Every key (revoked ones too)", KeyList)},
    errors=(401, 403),
)
@api_view("admin")
async def keys_list(request: HttpRequest) -> HttpResponse:
    limits = limits_for(runtime())
    rows = await db_call(key_rows, None, limits_now(limits))
    return JsonResponse({"keys": [await key_info(limits, row, days) for row, days in rows]})


@document(
    "GET",
    "/api/keys/{prefix}",
    "One API key: limits, spend, requests and tokens in the period",
    scope="admin",
    tags=["keys"],
    responses={200: Response("The key", KeyInfo)},
    errors=(401, 403, 404),
)
@api_view("admin")
async def key_detail(request: HttpRequest, prefix: str) -> HttpResponse:
    return JsonResponse(await _one(prefix))


# -- changing ----------------------------------------------------------------------------------


def _shown(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _change(prefix: str, values: dict[str, Any], actor: str) -> bool:
    """Apply `values` (model field -> value) to the key; False when there is no such key."""
    with transaction.atomic():
        row = ApiKey.objects.select_for_update().filter(prefix=prefix).first()
        if row is None:
            return False
        changes = {}
        for column, value in values.items():
            before = getattr(row, column)
            if before != value:
                changes[PARAMS[column]] = [_shown(before), _shown(value)]
                setattr(row, column, value)
        if not changes:
            return True
        row.full_clean()
        row.save()  # bumps the configuration version: every worker reloads
        AuditLog.objects.create(
            actor=actor, action="update", object_type="api_key", object_name=row.name, changes=changes
        )
    return True


def _actor(request: HttpRequest) -> str:
    key = getattr(request, "api_key", None)
    return f"api:{key.name}" if key is not None else "api"


@document(
    "PATCH",
    "/api/keys/{prefix}",
    "Change a key's routes, budget, period, rpm, tpm, expiry or scopes",
    scope="admin",
    tags=["keys"],
    request=KeyChange,
    responses={200: Response("The key, changed", KeyInfo)},
    errors=(400, 401, 403, 404),
)
@api_view("admin")
async def key_change(request: HttpRequest, prefix: str) -> HttpResponse:
    body = parse_json(request)
    validate(KeyChange, body)
    change = KeyChange.model_validate(body)
    if not body:
        raise RequestError(400, f"Name a field to change: {', '.join(FIELDS)}.", code="nothing_to_change")
    for name in NOT_NULL:
        if name in body and body[name] is None:
            raise RequestError(400, f"Invalid `{name}`: must not be null.", code="invalid_value", param=name)
    if change.expires_at is not None and change.expires_at <= timezone.now():
        raise RequestError(
            400,
            "Invalid `expires_at`: must be in the future (revoke the key to stop it now).",
            code="invalid_value",
            param="expires_at",
        )
    values = {FIELDS[name]: getattr(change, name) for name in body}
    try:
        found = await db_call(_change, prefix, values, _actor(request))
    except ValidationError as exc:
        column, messages = next(iter(exc.message_dict.items()))
        param = PARAMS.get(column, column)
        raise RequestError(400, f"Invalid `{param}`: {' '.join(messages)}", code="invalid_value", param=param) from None
    if not found:
        raise RequestError(404, f"no API key with the prefix {prefix!r}", code="key_not_found")
    await runtime().refresh(force=True)
    return JsonResponse(await _one(prefix))


@csrf_exempt
@require_http_methods(["GET", "PATCH"])
async def key(request: HttpRequest, prefix: str) -> HttpResponse:
    return await (key_change(request, prefix) if request.method == "PATCH" else key_detail(request, prefix))


def _revoke(prefix: str, actor: str) -> bool:
    with transaction.atomic():
        row = ApiKey.objects.select_for_update().filter(prefix=prefix).first()
        if row is None:
            return False
        if row.revoked_at is None:
            row.revoked_at = timezone.now()
            row.save(update_fields=["revoked_at"])
            AuditLog.objects.create(
                actor=actor,
                action="revoke",
                object_type="api_key",
                object_name=row.name,
                changes={"revoked_at": [None, row.revoked_at.isoformat()]},
            )
    return True


@document(
    "POST",
    "/api/keys/{prefix}/revoke",
    "Revoke a key: it is refused (401) from now on",
    scope="admin",
    tags=["keys"],
    responses={200: Response("The key, revoked", KeyInfo)},
    errors=(401, 403, 404),
)
@require_http_methods(["POST"])
@api_view("admin")
async def key_revoke(request: HttpRequest, prefix: str) -> HttpResponse:
    if len(prefix) > 16 or not await db_call(_revoke, prefix, _actor(request)):
        raise RequestError(404, f"no API key with the prefix {prefix!r}", code="key_not_found")
    await runtime().refresh(force=True)
    return JsonResponse(await _one(prefix))

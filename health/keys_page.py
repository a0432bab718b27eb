"""The console's `/keys` page (staff only): every API key with its limits and its use in the
current budget period, the figures `GET /api/keys` gives (computed by the same functions,
providers/keys_api.py), and a sparkline of its spend per day over the last 30 days (the
per-day `KeySpend` rows).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.http import HttpResponse
from django.shortcuts import render

from project.database import db_call
from providers.keys import limits_for
from providers.keys_api import key_info, key_rows, limits_now
from providers.models import KeySpend
from providers.runtime import runtime

from . import charts
from .access import console_view
from .views import ConsoleRequest

TEMPLATE = "health/keys.html"
DAYS = 30


def _daily(key_ids: list[int], today: date) -> dict[int, list[float]]:
    """Spend per key and day over the last DAYS days (today last), 0 for a day without use."""
    first = today - timedelta(days=DAYS - 1)
    per_key: dict[int, dict[date, Decimal]] = {}
    for key_id, day, spend in KeySpend.objects.filter(key_id__in=key_ids, day__gte=first, day__lte=today).values_list(
        "key_id", "day", "spend"
    ):
        per_key.setdefault(key_id, {})[day] = spend
    return {k: [float(per_key.get(k, {}).get(first + timedelta(days=i), 0)) for i in range(DAYS)] for k in key_ids}


def _when(value: str | None) -> str:
    return "" if value is None else f"{datetime.fromisoformat(value).astimezone(UTC):%Y-%m-%d %H:%M} UTC"


async def keys_context() -> dict[str, Any]:
    limits = limits_for(runtime())
    now = limits_now(limits)
    rows = await db_call(key_rows, None, now)
    daily = await db_call(_daily, [row.pk for row, _ in rows], now.date())
    keys = []
    for row, days in rows:
        info = await key_info(limits, row, days)
        used = info["budget_used"]
        values = daily[row.pk]
        keys.append(
            {
                **info,
                "spend_raw": repr(info["spend"]),
                "percent": None if used is None else used * 100,
                "meter": None if used is None else min(used, 1.0),
                "over": used is not None and used >= 1,
                "last_used": _when(info["last_used_at"]),
                "expires": _when(info["expires_at"]),
                "revoked": _when(info["revoked_at"]),
                "chart": charts.sparkline(
                    values,
                    noun="days",
                    fmt=lambda v: f"{v:.4f}",
                    label=f"Spend of {row.name} per day over the last {DAYS} days",
                )
                if any(values)
                else "",
            }
        )
    keys.sort(key=lambda k: (not k["active"], k["name"]))
    return {"section": "keys", "keys": keys, "days": DAYS}


@console_view()
async def keys_page(request: ConsoleRequest) -> HttpResponse:
    context = {**await keys_context(), "role": request.role}
    return render(request, TEMPLATE, context)

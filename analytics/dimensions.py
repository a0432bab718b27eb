"""The route names the rollups keep apart: bounded, whatever callers send.

A caller names a route in `model`, and some names are free-form: `<provider>/<anything>`
reaches the provider with any model name, so 2,000 junk names used to make 2,000 rollup
rows per bucket, 2,000 `/metrics` series and a 2.8 MB `/analytics` page. The rollups keep a
name apart only when the configuration that resolved the request knows it: a configured
route, `<provider>/<model>` for a model that provider lists (configured or discovered), or a
bare model name some provider lists. Every other name is counted under `OTHER`. The raw
request log row keeps the name the caller sent (bounded to its column).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from providers.snapshot import Snapshot

OTHER = "(other)"


def rollup_route(name: str, snapshot: Snapshot) -> str:
    """The name the rollups count a request of route `name` under (`name` or `OTHER`)."""
    if not name or name in snapshot.routes:
        return name  # "" (resolved nowhere) is one bucket already
    provider_name, slash, model = name.partition("/")
    if slash:
        provider = snapshot.providers.get(provider_name)
        # "<provider>/" alone names the provider's default model
        return name if provider is not None and (not model or model in provider.models) else OTHER
    if any(name in p.models for p in snapshot.providers.values()):
        return name
    return OTHER


def current_snapshot() -> Snapshot | None:
    """The configuration snapshot of the running event loop's gateway runtime, if it has one
    (the one that just resolved the request being recorded)."""
    from providers.runtime import existing_runtime

    rt = existing_runtime()
    return rt.snapshot if rt is not None else None

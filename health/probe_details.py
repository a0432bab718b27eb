"""What a provider's probe said about its server (version, loaded models, memory), as the
provider page's "Server" section shows it: labelled rows in human units.

The details are the adapter's own (`Adapter.probe`'s dict, kept on `ProbeResult.detail`), so the
keys differ by kind: Ollama says `version`, `models` and what is `loaded`; SD WebUI
`ram_free_gb` and `vram_free_gb`; ElevenLabs its character balance. Known keys get their label
and unit; any other scalar is shown under its key in words. The latest successful probe that
reported something is read, so a failed check does not blank the section; with none, the page
leaves the section out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .models import ProbeResult

__all__ = ["Detail", "ServerDetails", "latest_server_details", "server_rows"]

MAX_ROWS = 16
MAX_LIST = 12

# key -> label, for keys whose meaning is known; memory keys are read separately.
_LABELS = {
    "version": "Version",
    "loaded": "Loaded models",
    "loaded_models": "Loaded models",
    "running": "Loaded models",
    "models": "Models available",
    "voice": "Voice",
    "voices": "Voices",
    "language": "Language",
    "speakers": "Speakers",
    "tier": "Plan",
    "characters_used": "Characters used",
    "character_limit": "Character limit",
    "characters_left": "Characters left",
    "audio_format": "Audio format",
}
# (label, free key, total key) in GiB, as SD WebUI's probe reports them
_MEMORY = (("Memory (RAM)", "ram_free_gb", "ram_total_gb"), ("VRAM", "vram_free_gb", "vram_total_gb"))
# What a probe reports about itself rather than the server: not shown.
_SKIPPED = {"speech", "audio_bytes", "images", "tokens", "video_bytes", "model", "finish_reason"}


@dataclass(frozen=True, slots=True)
class Detail:
    label: str
    value: str


@dataclass(frozen=True, slots=True)
class ServerDetails:
    at: datetime
    rows: list[Detail]


def size(gib: float) -> str:
    """A size given in GiB, in the unit that reads best (MiB under 1 GiB, TiB from 1024)."""
    if gib >= 1024:
        return f"{gib / 1024:.1f} TiB"
    if gib >= 1:
        return f"{gib:.1f} GiB"
    return f"{gib * 1024:.0f} MiB"


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _memory(detail: dict[str, Any]) -> list[Detail]:
    rows = []
    for label, free_key, total_key in _MEMORY:
        free, total = _number(detail.get(free_key)), _number(detail.get(total_key))
        if free is not None and total is not None:
            rows.append(Detail(label, f"{size(free)} free of {size(total)}"))
        elif free is not None:
            rows.append(Detail(label, f"{size(free)} free"))
        elif total is not None:
            rows.append(Detail(label, f"{size(total)} in all"))
    return rows


def _loaded(item: Any) -> str:
    """One loaded model: a name, or Ollama's /api/ps entry (name, size_vram in bytes)."""
    if not isinstance(item, dict):
        return str(item)
    name = str(item.get("name") or item.get("model") or "?")
    vram = _number(item.get("size_vram"))
    return f"{name} ({size(vram / 1024**3)} VRAM)" if vram else name


def _text(key: str, value: Any) -> str | None:
    if value is None or value == "" or isinstance(value, dict):
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        if key in ("loaded", "loaded_models", "running"):
            shown = [_loaded(v) for v in value[:MAX_LIST]]
        else:
            shown = [str(v) for v in value[:MAX_LIST] if not isinstance(v, dict | list)]
        more = len(value) - MAX_LIST
        text = ", ".join(shown) + (f" and {more} more" if more > 0 else "")
        return text or ("none" if key in ("loaded", "loaded_models", "running") else None)
    number = _number(value)
    if number is not None and not isinstance(value, float):
        return f"{int(number):,}"
    if number is not None:
        return f"{number:,.2f}".rstrip("0").rstrip(".")
    return str(value)[:200]


def server_rows(detail: Any) -> list[Detail]:
    """The rows of the Server section for one probe's details; [] when it said nothing."""
    if not isinstance(detail, dict):
        return []
    rows: list[Detail] = []
    memory_keys = {k for _, free, total in _MEMORY for k in (free, total)}
    for key in _LABELS:
        text = _text(key, detail.get(key))
        if text is not None:
            rows.append(Detail(_LABELS[key], text))
    rows += _memory(detail)
    for key, value in detail.items():
        if key in _LABELS or key in memory_keys or key in _SKIPPED:
            continue
        text = _text(key, value)
        if text is not None:
            rows.append(Detail(key.replace("_", " ").capitalize(), text))
    return rows[:MAX_ROWS]


def latest_server_details(name: str) -> ServerDetails | None:
    """The newest successful probe of `name` that reported something, as rows; None if none."""
    for row in ProbeResult.objects.filter(provider__name=name, ok=True).order_by("-at", "-id")[:20]:
        rows = server_rows(row.detail)
        if rows:
            return ServerDetails(row.at, rows)
    return None

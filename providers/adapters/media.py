"""Media files adapters hand over: `data:` URLs, an upstream's output downloaded through the URL
guard, a caller's input fetched the same way, and which audio format some bytes are in.

An upstream's output URL (a queued job's image or sound) is the provider's to answer for: a URL
the fetch policy refuses is that provider's FAILURE (`unsafe_output_url`), a missing file is
`output_unavailable`. A caller's URL is the caller's: a refused or unreachable one is a 400
(see `client.fetch`).
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote_to_bytes

import httpx

from providers.engine import Classification, Outcome, UpstreamError

from .base import malformed
from .client import SuppliedBy, fetch
from .urlguard import caller_error

__all__ = ["AUDIO_TYPES", "audio_format", "data_url", "download", "parse_data_url"]

# OpenAI's speech `response_format` values and the media type each is served as.
AUDIO_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/opus",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}
_TYPE_FORMATS = {
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/mpeg3": "mp3",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/vnd.wave": "wav",
    "audio/flac": "flac",
    "audio/x-flac": "flac",
    "audio/ogg": "opus",
    "audio/opus": "opus",
    "audio/aac": "aac",
    "audio/x-aac": "aac",
    "audio/pcm": "pcm",
    "audio/l16": "pcm",
}


def audio_format(content_type: str | None, data: bytes) -> str | None:
    """The format (`AUDIO_TYPES` key) of `data`: from its media type when that names one, else
    from its first bytes; None when neither says."""
    named = _TYPE_FORMATS.get((content_type or "").split(";")[0].strip().lower())
    if named is not None:
        return named
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[:4] == b"fLaC":
        return "flac"
    if data[:4] == b"OggS":
        return "opus"
    if data[:3] == b"ID3":
        return "mp3"
    if len(data) >= 2 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0:
        # an MPEG audio frame: layer bits 00 is AAC's ADTS, anything else MP3
        return "aac" if data[1] & 0x06 == 0 else "mp3"
    return None


def parse_data_url(url: str) -> tuple[bytes, str]:
    """The bytes and media type of a `data:` URL; ValueError if it is not a well-formed one."""
    if not url.startswith("data:") or "," not in url:
        raise ValueError("not a data: URL")
    head, _, payload = url[5:].partition(",")
    parts = head.split(";")
    media_type = parts[0].strip().lower() or "text/plain"
    if "base64" in (p.strip().lower() for p in parts[1:]):
        try:
            return base64.b64decode(payload, validate=True), media_type
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"its base64 does not decode: {exc}") from None
    return unquote_to_bytes(payload), media_type


def data_url(content: bytes, media_type: str) -> str:
    return f"data:{media_type};base64,{base64.b64encode(content).decode()}"


async def download(
    client: httpx.AsyncClient,
    url: str,
    *,
    timeout: float,
    supplied_by: SuppliedBy,
    what: str,
    base_url: str | None = None,
    connect_timeout: float | None = None,
) -> tuple[bytes, str]:
    """The bytes and media type behind `url` (a `data:` URL is read in place), fetched through
    the fetch policy. An upstream's URL on `base_url`'s own origin is fetched with the
    provider's client (the operator chose that host already)."""
    if url.startswith("data:"):
        try:
            return parse_data_url(url)
        except ValueError as exc:
            if supplied_by == "upstream":
                raise malformed(f"{what} is a data: URL that cannot be read: {exc}") from None
            raise caller_error(
                f"{what} is a data: URL that cannot be read: {exc}", code="invalid_data_url", reason="invalid_data_url"
            ) from None
    response = await fetch(
        client,
        url,
        timeout=timeout,
        supplied_by=supplied_by,
        what=what,
        same_origin_as=base_url if supplied_by == "upstream" else None,
        connect_timeout=connect_timeout,
    )
    if not response.is_success:  # only an upstream's URL gets here unsuccessful: fetch raised for a caller's
        raise UpstreamError(
            Classification(Outcome.FAILURE, "output_unavailable"),
            status=response.status_code,
            message=f"downloading {what} answered HTTP {response.status_code}",
            headers=response.headers,
            body=response.content[:2000],
        )
    media_type = response.headers.get("content-type", "application/octet-stream").split(";")[0].strip()
    return response.content, media_type

"""Which format a speech answer is in, and the Content-Type the gateway serves it under.

An adapter asks its provider for the `response_format` the caller named (checked first by
`Adapter.speech_format`); this module checks that the answer is in that format before it goes
out. An answer evidently in another one (a local server that ignores `response_format` and
always writes WAV, say) is a FAILURE `wrong_audio_format`, so the engine falls back instead of
serving it: the caller never gets another format than asked. The Content-Type served is the
asked format's (`AUDIO_TYPES`), whatever label the provider put on it (Flask servers call WAV
`text/html`, OpenAI calls PCM `application/octet-stream`); with no format asked it is the
format the bytes are in, or the provider's own label when they do not say.
"""

from __future__ import annotations

import httpx

from .base import malformed
from .media import AUDIO_TYPES, audio_format

__all__ = ["served_type"]

# Headers that name a format beyond doubt; raw PCM has none, so for it only these are read
# (its samples could start like an MPEG frame by chance).
_MAGIC = ((b"RIFF", "wav"), (b"fLaC", "flac"), (b"OggS", "opus"), (b"ID3", "mp3"))


def _magic(data: bytes) -> str | None:
    for head, found in _MAGIC:
        if data.startswith(head):
            return found
    return None


def found_format(wanted: str | None, content_type: str, data: bytes) -> str | None:
    """The format of a speech answer: from its label when that names one, else from its bytes."""
    if wanted == "pcm":
        named = audio_format(content_type, b"")
        return named if named is not None else _magic(data)
    return audio_format(content_type, data)


def served_type(kind: str, wanted: str | None, response: httpx.Response) -> str:
    """The Content-Type to serve `response`'s audio under, for `wanted` (None: no format asked).
    Audio evidently in another format than `wanted` raises FAILURE `wrong_audio_format`."""
    label = response.headers.get("content-type", "").split(";")[0].strip().lower()
    found = found_format(wanted, label, response.content)
    if found is None and (not response.content or label == "application/json"):
        raise malformed(f"{kind} answered no audio", response=response)
    if wanted is None:
        if found is not None:
            return AUDIO_TYPES[found]
        return label or "application/octet-stream"
    if found is not None and found != wanted:
        raise malformed(
            f"{kind} answered {found} audio, not the {wanted} asked for (does the server honour response_format?)",
            response=response,
            reason="wrong_audio_format",
        )
    return AUDIO_TYPES.get(wanted, label or "application/octet-stream")

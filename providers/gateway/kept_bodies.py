"""What the request log keeps of a request's bodies: nothing, unless REQUEST_BODY_RETENTION_DAYS
is above 0 (the default is 0).

When it is, every request record (records.py) carries the caller's body and the answer the
caller got, as text that is safe to store:

- scrubbed: every credential the gateway holds (providers/adapters/scrub.py, in every spelling
  it knows: a provider key a caller pasted into a prompt, or an upstream echoed) and anything
  shaped like one of the gateway's own API keys (`gw_<8 hex>_<secret>`: only their hashes are
  stored, so the shape is all there is to find) become `[redacted]`;
- bounded: at most REQUEST_BODY_MAX_BYTES bytes of each (UTF-8), then a marker that says how
  many bytes were cut. Only that much (and a margin that holds any secret crossing the cut) is
  ever scrubbed, so a 20 MB body costs what a 64 KB one does;
- text only: a binary answer (audio, an image's bytes, a media type that is not text or JSON,
  or bytes holding a NUL) and a multipart upload are described (content type and size; an
  upload's file names and short text fields), never kept as bytes.

A streamed answer is kept as it was relayed: the server-sent events the caller was sent (the
dialect's own, a failure event included), up to the size bound, not a completion assembled
from them, so the page shows what the client saw.

The work happens on the event loop when the record is built, once per request, and only when
bodies are kept: with REQUEST_BODY_RETENTION_DAYS at 0 the gateway reads that one setting per
request (`body_limit`, in `Exchange`) and does nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.http import HttpRequest, HttpResponse
from django.http.request import RawPostDataException

from providers.adapters import scrub

from .records import RequestRecord

DEFAULT_MAX_BYTES = 65536
SSE_MEDIA_TYPE = "text/event-stream"
REDACTED = scrub.REDACTED.encode()
# The gateway's own API keys (providers/models.py: KEY_PREFIX, `token_hex(4)`, `token_urlsafe(32)`);
# a literal prefix, so the search costs ~1 ms a megabyte.
GATEWAY_KEY = re.compile(rb"gw_[0-9a-f]{8}_[A-Za-z0-9_\-]{16,}")
MARGIN = 256  # at least: a gateway key crossing the cut is found whole
MAX_FIELDS = 20  # of a multipart upload, described
MAX_FIELD_CHARS = 200

_TEXT_TYPES = (
    "application/json",
    "application/x-ndjson",
    "application/xml",
    "application/x-www-form-urlencoded",
    "application/javascript",
)


def body_limit() -> int | None:
    """REQUEST_BODY_MAX_BYTES when bodies are kept (REQUEST_BODY_RETENTION_DAYS > 0); None when
    they are not, the default."""
    if settings.REQUEST_BODY_RETENTION_DAYS > 0:
        return max(0, int(getattr(settings, "REQUEST_BODY_MAX_BYTES", DEFAULT_MAX_BYTES)))
    return None


def _margin() -> int:
    """How far past the cut a body is scrubbed: any secret that starts before the cut ends
    within it, in any spelling the scrubber finds (redactor.longest)."""
    redactor = scrub.current()
    return max(MARGIN, redactor.longest if redactor is not None else 0)


class Transcript:
    """A streamed answer as it is relayed: its first bytes (as many as a kept body may need)
    and the size of all of it. `tap(out)` is `out` that notes each write first."""

    __slots__ = ("parts", "room", "size")
    media_type = SSE_MEDIA_TYPE

    def __init__(self, limit: int) -> None:
        self.parts: list[bytes] = []
        self.room = limit + _margin()
        self.size = 0

    def add(self, data: bytes) -> bytes:
        self.size += len(data)
        if self.room > 0:
            piece = data[: self.room]
            self.parts.append(piece)
            self.room -= len(piece)
        return data

    def tap(self, out: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
        return lambda data: out(self.add(data))

    def head(self) -> bytes:
        return b"".join(self.parts)


Answer = HttpResponse | Transcript | None


def keep_bodies(record: RequestRecord, request: HttpRequest, answer: Answer, limit: int) -> None:
    """Put the caller's body and `answer` (what the caller was sent; None: nothing was, the
    client went away first) on `record`, scrubbed and bounded to `limit` bytes each."""
    record.request_body = request_text(request, limit)
    if answer is None:
        record.response_body = ""
    elif isinstance(answer, Transcript):
        record.response_body = kept_text(answer.head(), answer.media_type, limit, size=answer.size)
    else:
        record.response_body = kept_text(answer.content, answer.get("Content-Type", ""), limit)


def request_text(request: HttpRequest, limit: int) -> str:
    """The caller's body as it is kept; a multipart upload described."""
    media_type = request.META.get("CONTENT_TYPE", "")
    if media_type.lower().startswith("multipart/"):
        return _upload(request, media_type, limit)
    try:
        data = request.body
    except RawPostDataException:  # read as a stream already: only its size is known
        return describe(media_type, _length(request))
    return kept_text(data, media_type, limit)


def kept_text(data: bytes, media_type: str, limit: int, *, size: int | None = None) -> str:
    """`data` as it is kept: scrubbed, at most `limit` bytes and a marker saying how many were
    cut, or a description when it is binary. `size`: how long the body was when `data` is
    only its first bytes (a stream's)."""
    size = len(data) if size is None else size
    window = data[: limit + _margin()]
    if not is_text(media_type) or b"\0" in window:
        return describe(media_type, size)
    safe = scrubbed(window)
    unseen = size - len(window)  # never read: past the window
    if unseen <= 0 and len(safe) <= limit:
        return safe.decode("utf-8", "replace")
    cut = min(limit, len(safe))
    while 0 < cut < len(safe) and safe[cut] & 0xC0 == 0x80:  # not inside a character
        cut -= 1
    return safe[:cut].decode("utf-8", "replace") + marker(len(safe) - cut + max(unseen, 0), limit)


def scrubbed(data: bytes) -> bytes:
    """`data` without the credentials the gateway holds and without gateway-key-shaped text."""
    return GATEWAY_KEY.sub(REDACTED, scrub.scrub_bytes(data))


def marker(cut: int, limit: int) -> str:
    return f"\n[… {cut:,} more bytes cut: bodies are kept up to REQUEST_BODY_MAX_BYTES ({limit:,} bytes)]"


def describe(media_type: str, size: int) -> str:
    kind = media_type.split(";")[0].strip()[:100] or "no content type"
    return scrubbed(f"[{kind}, {size:,} bytes: not text, not kept]".encode()).decode("utf-8", "replace")


def is_text(media_type: str) -> bool:
    """Text or JSON by its media type; an unnamed type counts as text (its bytes decide)."""
    kind = media_type.split(";")[0].strip().lower()
    return (
        not kind or kind.startswith("text/") or kind in _TEXT_TYPES or kind.endswith("+json") or kind.endswith("+xml")
    )


def _length(request: HttpRequest) -> int:
    try:
        return max(0, int(request.META.get("CONTENT_LENGTH") or 0))
    except ValueError:
        return 0


def _upload(request: HttpRequest, media_type: str, limit: int) -> str:
    """A multipart upload in one line: its size, its files (name, type, size) and its short
    text fields (a transcription's model, language, prompt), never the files' bytes."""
    kind = media_type.split(";")[0].strip()
    parts = [f"{kind}, {_length(request):,} bytes: an upload, its files not kept"]
    try:
        files, fields = request.FILES, request.POST
    except Exception:  # an upload Django could not parse was refused before any record
        files, fields = None, None
    if files is not None:
        for name in list(files)[:MAX_FIELDS]:
            upload = files.get(name)
            if not isinstance(upload, UploadedFile):
                continue
            parts.append(
                f"file {name}: {(upload.name or '')[:MAX_FIELD_CHARS]!r} "
                f"({upload.content_type or 'no content type'}, {upload.size or 0:,} bytes)"
            )
    if fields is not None:
        for name, value in list(fields.items())[:MAX_FIELDS]:
            parts.append(f"{name[:MAX_FIELD_CHARS]}={str(value)[:MAX_FIELD_CHARS]!r}")
    return kept_text(("[" + "; ".join(parts) + "]").encode(), "text/plain", limit)

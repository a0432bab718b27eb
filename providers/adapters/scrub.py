"""Keeping the gateway's credentials out of everything a provider sends back.

A provider (or a careless proxy in front of it) may repeat our `Authorization` header in an
error body, a success body or a header. Whatever an upstream sends is relayed to callers,
stored in the request log and health rows, logged and pushed to the console, so every
credential the gateway holds is removed at the one place upstream text enters: the HTTP
transport of the shared client (`ScrubbingTransport`), before anything reads it.

The secret set is process-wide and made of named sources (`use_secrets(source, values)`):
the runtime registers its providers' credentials on every configuration change, the server
its own keys. `scrub_text` and `scrub_bytes` apply it anywhere else (the log filter).
A value is found in the spellings an upstream can plausibly echo it in:

- as is;
- escaped, in any mixture: JSON (`\\uXXXX` for any character, surrogate pairs, `\\/` and
  the short escapes, also JSON inside a JSON string), percent-encoding (`quote`,
  `quote_plus`, either hex case) and HTML character references. The body is matched
  through a decoded view of it, and a match covers the escapes it was decoded from;
- base64 (standard or URL-safe, padded or not) and hex (either case), also inside a longer
  encoded value: every run of such characters long enough to hold a value is decoded at
  each alignment, so `Basic base64(user:key)` is caught whatever `user` is. Runs longer
  than `_DECODED_RUN_LIMIT` are payloads (images, audio, embeddings): they are searched as
  they are but not decoded.

A credential that contains `:` (`user:password`, DeepL's `key:fx`) also counts each part.
Values shorter than `MIN_SECRET_LENGTH` (8) characters are not scrubbed: matching a short
word everywhere would mangle ordinary text, and no provider issues a key that short. Every
match becomes `REDACTED`. Binary bodies (holding a NUL byte) are searched for the values as
they are, without unescaping.

Cost: the set compiles into one bytes regex, rebuilt only when the set changes: a trie of
the values, each entered at its least common byte, so that the regex engine stops at few
positions of a normal body. With no secrets the transport passes answers through untouched.
`bench/scrub/run.py` prints the figures.
"""

from __future__ import annotations

import binascii
import bisect
import contextlib
import re
import string
import threading
from collections.abc import AsyncIterator, Collection, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import cast

import httpx

__all__ = [
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "Redactor",
    "ScrubbingTransport",
    "current",
    "decoder_for",
    "forget_secrets",
    "scrub_bytes",
    "scrub_exception",
    "scrub_text",
    "scrubbed_headers",
    "use_secrets",
]

MIN_SECRET_LENGTH = 8
REDACTED = "[redacted]"
_MARK = REDACTED.encode()

# -- matching -----------------------------------------------------------------------------------

# Escapes an upstream may wrap echoed text in: JSON (`\uXXXX`, surrogate pairs, the short
# escapes), percent-encoding and HTML character references. A body holding any of them is
# matched through a decoded view of it (in any mixture: one pattern per value, not per form).
_ESCAPE = re.compile(
    rb"\\u([0-9a-fA-F]{4})(?:\\u([dD][c-fC-F][0-9a-fA-F]{2}))?"
    rb"|\\([\"\\/bfnrt])"
    rb"|%([0-9a-fA-F]{2})"
    rb"|&#([0-9]{1,7});|&#[xX]([0-9a-fA-F]{1,6});"
    rb"|&(amp|quot|lt|gt|apos);"
)
_SHORT = {b'"': b'"', b"\\": b"\\", b"/": b"/", b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r", b"t": b"\t"}
_NAMED = {b"amp": b"&", b"quot": b'"', b"lt": b"<", b"gt": b">", b"apos": b"'"}
_LONGEST_ESCAPE = 12  # a character's longest spelling: a surrogate pair, or 4 bytes as %XX
_URLSAFE = bytes.maketrans(b"-_", b"+/")


def _char(code: int) -> bytes:
    return chr(code).encode("utf-8", "surrogatepass") if code <= 0x10FFFF else b""


def _unescape(match: re.Match[bytes]) -> bytes:
    unit, low, short, percent, decimal, hexa, named = match.groups()
    if unit is not None:
        high = int(unit, 16)
        if low is None:
            return _char(high)
        if 0xD800 <= high <= 0xDBFF:
            return _char(0x10000 + ((high - 0xD800) << 10) + (int(low, 16) - 0xDC00))
        return _char(high) + _char(int(low, 16))
    if short is not None:
        return _SHORT[short]
    if percent is not None:
        return bytes((int(percent, 16),))
    if decimal is not None:
        return _char(int(decimal))
    if hexa is not None:
        return _char(int(hexa, 16))
    return _NAMED[named]


def _escapes(data: bytes) -> list[re.Match[bytes]]:
    """The escapes of `data`, left to right, not overlapping (as one regex pass would find
    them, but found from `bytes.find` hits: a regex pass costs ~20 ns a byte)."""
    found = []
    for introducer in (b"\\", b"%", b"&"):
        at = data.find(introducer)
        while at >= 0:
            match = _ESCAPE.match(data, at)
            if match is not None:
                found.append(match)
            at = data.find(introducer, at + 1)
    found.sort(key=lambda m: m.start())
    kept, end = [], 0
    for match in found:
        if match.start() >= end:
            kept.append(match)
            end = match.end()
    return kept


def _decoded(data: bytes) -> tuple[bytes, list[tuple[int, int, int, int]]]:
    """`data` with every escape decoded, and where each escape went: (start and end in the
    view, start and end in `data`). No escape: `data` itself and no spans."""
    if b"\\" not in data and b"%" not in data and b"&" not in data:
        return data, []
    if b"\0" in data:  # binary (audio, images): escapes are a matter of text
        return data, []
    view = bytearray()
    spans: list[tuple[int, int, int, int]] = []
    pos = 0
    for match in _escapes(data):
        decoded = _unescape(match)
        if not decoded:
            continue
        view += data[pos : match.start()]
        spans.append((len(view), len(view) + len(decoded), match.start(), match.end()))
        view += decoded
        pos = match.end()
    if not spans:
        return data, []
    view += data[pos:]
    return bytes(view), spans


def _merged(found: list[tuple[int, int]]) -> list[tuple[int, int]]:
    found.sort()
    out = [found[0]]
    for start, end in found[1:]:
        if start <= out[-1][1]:
            out[-1] = (out[-1][0], max(end, out[-1][1]))
        else:
            out.append((start, end))
    return out


class _Node:
    __slots__ = ("children", "end")

    def __init__(self) -> None:
        self.children: dict[bytes, _Node] = {}
        self.end = ""  # the name of the group that marks a value ending here


def _emit(node: _Node) -> bytes:
    """The regex of a trie node's subtree: chains are followed in a loop, so only branching
    points recurse (a long value costs no recursion depth)."""
    parts = []
    for token, child in node.children.items():
        chain = [token]
        while len(child.children) == 1 and not child.end:
            ((token, child),) = child.children.items()
            chain.append(token)
        if child.end:
            chain.append(b"(?P<%s>)" % child.end.encode())
        if child.children:
            rest = _emit(child)
            # A value that is a prefix of another: take the longer when it is there.
            chain.append(b"(?:" + rest + b")?" if child.end else rest)
        parts.append(b"".join(chain))
    if len(parts) == 1:
        return parts[0]
    return b"(?:" + b"|".join(parts) + b")"


def _tokens(raw: bytes) -> list[bytes]:
    # quote_plus writes a space as "+"; every other escape is undone in the decoded view
    return [b"[ +]" if b == 0x20 else re.escape(bytes((b,))) for b in raw]


# How common a byte is in what providers send (English, JSON, ids): a value is matched from
# its least common byte among its first `_ANCHOR_WITHIN`, so that the regex engine, which
# skips every position whose byte starts no branch, stops at few positions of a normal body.
def _commonness(byte: int) -> int:
    char = chr(byte)
    if char.isupper():
        return 1
    if char.islower() or char in " \"'\n\t":
        return 3
    if char.isdigit() or char in "-:,._/{}[]":
        return 2
    return 0


_ANCHOR_WITHIN = 16


def _anchor(raw: bytes) -> int:
    head = raw[:_ANCHOR_WITHIN]
    return min(range(len(head)), key=lambda i: (_commonness(head[i]), i))


def _table(alphabet: bytes) -> bytes:
    """A translation that turns every byte of `alphabet` into "a" and any other into " "."""
    table = bytearray(b" " * 256)
    for b in alphabet:
        table[b] = ord("a")
    return bytes(table)


_BASE64_TABLE = _table(string.ascii_letters.encode() + string.digits.encode() + b"+/_-")
_HEX_TABLE = _table(b"0123456789abcdefABCDEF")
_NEEDLES_FROM = 16384  # below this many bytes one regex pass beats a search per value
# Base64 or hex runs longer than this are payloads (images, audio, embeddings), not echoed
# headers: they are searched as they are, not decoded (decoding costs ~100 ms a megabyte).
_DECODED_RUN_LIMIT = 16384


def _runs(data: bytes, table: bytes, shortest: int) -> list[tuple[int, int]]:
    """The runs of at least `shortest` bytes of the alphabet `table` keeps (C-speed searches:
    a regex class repeated would be tried at every position of every word)."""
    marked = data.translate(table)
    needle = b"a" * shortest
    runs = []
    start = marked.find(needle)
    while start >= 0:
        end = marked.find(b" ", start + shortest)
        end = len(marked) if end < 0 else end
        runs.append((start, end))
        start = marked.find(needle, end)
    return runs


def _to_original(found: list[tuple[int, int]], spans: list[tuple[int, int, int, int]]) -> list[tuple[int, int]]:
    """Positions in a decoded view as positions in the text it was decoded from: a match
    that covers part of an escape covers all of it."""
    starts = [s[0] for s in spans]

    def original(offset: int, *, end: bool) -> int:
        i = bisect.bisect_right(starts, offset) - 1
        if i < 0:
            return offset + end
        _, view_end, start, stop = spans[i]
        if offset < view_end:
            return stop if end else start
        return stop + (offset - view_end) + end

    return [(original(start, end=False), original(end - 1, end=True)) for start, end in found]


@dataclass(frozen=True)
class Redactor:
    """One compiled secret set.

    `pattern` is a trie of the values' bytes (one branch per distinct first byte). It is run
    over a view of the body with its escapes decoded (twice: JSON inside a JSON string is
    common in proxies' errors), and over the base64 and hex decodings of every run of base64
    or hex characters long enough to hold a value, at each alignment. On a long text a search
    for each value (`needles`, C speed) decides first whether the pattern needs to run.

    `longest` bounds how many bytes of a body one match can span and `inner` holds every
    byte a match can contain: what a streamed body holds back at a chunk's end is a trailing
    run of those, at most `longest - 1` bytes."""

    secrets: frozenset[str]
    pattern: re.Pattern[bytes]
    offsets: tuple[int, ...]
    needles: tuple[bytes, ...]
    shortest: int
    longest: int
    inner: bytes

    @classmethod
    def build(cls, secrets: frozenset[str]) -> Redactor:
        root = _Node()
        inner = set(b"\\%&#;+/_-=") | set(string.ascii_letters.encode()) | set(string.digits.encode())
        needles: set[bytes] = set()
        offsets: list[int] = []  # how far before the anchor each value starts, by group
        for value in sorted(secrets):
            raw = value.encode("utf-8", "surrogatepass")
            inner.update(raw)
            needles.update({raw, raw.replace(b" ", b"+")})
            tokens = _tokens(raw)
            at = _anchor(raw)
            behind = [b"(?<=" + b"".join(tokens[: at + 1]) + b")"] if at else []
            node = root
            for token in [tokens[at], *behind, *tokens[at + 1 :]]:
                node = node.children.setdefault(token, _Node())
            if not node.end:
                node.end = f"v{len(offsets)}"
                offsets.append(at)
        sizes = [len(n) for n in needles]
        return cls(
            secrets=secrets,
            pattern=re.compile(_emit(root)),
            offsets=tuple(offsets),
            needles=tuple(sorted(needles)),
            shortest=min(sizes),
            # escaped character by character, or base64 of it escaped (`\/`), plus the rest
            # of the last base64 quantum
            longest=_LONGEST_ESCAPE * max(sizes) + 8,
            inner=bytes(sorted(inner)),
        )

    def _raw(self, data: bytes) -> list[tuple[int, int]]:
        if len(data) >= _NEEDLES_FROM and not any(needle in data for needle in self.needles):
            return []
        # Every match, overlapping ones too (two values may share bytes): the search goes on
        # from the byte after each match's anchor, not from its end.
        found = []
        match = self.pattern.search(data)
        while match is not None:
            group = match.lastgroup
            assert group is not None  # every alternative of the pattern is a named group
            found.append((match.start() - self.offsets[int(group[1:])], match.end()))
            match = self.pattern.search(data, match.start() + 1)
        return found

    def _encoded(self, view: bytes, start: int, end: int) -> list[tuple[int, int]]:
        """Values inside the base64 (standard or URL-safe) or hex run `view[start:end]`."""
        found = []
        run = view[start:end].translate(_URLSAFE)
        for shift in range(4):
            chunk = run[shift:].rstrip(b"=")
            if len(chunk) % 4 == 1:
                chunk = chunk[:-1]
            if len(chunk) < 2:
                break
            decoded = binascii.a2b_base64(chunk + b"=" * (-len(chunk) % 4))
            base = start + shift
            found += [(base + 8 * i // 6, base - (-8 * j // 6)) for i, j in self._raw(decoded)]
        for hex_start, hex_end in _runs(view[start:end], _HEX_TABLE, 2 * self.shortest):
            for shift in (0, 1):
                first = start + hex_start + shift
                usable = (start + hex_end - first) // 2 * 2
                decoded = binascii.a2b_hex(view[first : first + usable])
                found += [(first + 2 * i, first + 2 * j) for i, j in self._raw(decoded)]
        return found

    def _in_view(self, view: bytes) -> list[tuple[int, int]]:
        found = self._raw(view)
        for start, end in _runs(view, _BASE64_TABLE, -(-8 * self.shortest // 6)):
            if end - start <= _DECODED_RUN_LIMIT:
                found += self._encoded(view, start, end)
        return found

    def matches(self, data: bytes) -> list[tuple[int, int]]:
        """Where `data` spells a secret: sorted, disjoint (start, end) pairs."""
        if len(data) < self.shortest:
            return []  # every spelling of a value (escaped, encoded) is at least as long as it
        view, outer = _decoded(data)
        found = self._in_view(view)
        if outer:
            inner_view, inner = _decoded(view)
            if inner:
                found += _to_original(self._in_view(inner_view), inner)
            found = _to_original(_merged(found), outer) if found else found
        return _merged(found) if found else []

    def sub(self, data: bytes) -> bytes:
        found = self.matches(data)
        if not found:
            return data
        pieces, pos = [], 0
        for start, end in found:
            pieces += [data[pos:start], _MARK]
            pos = end
        pieces.append(data[pos:])
        return b"".join(pieces)

    def split(self, data: bytes) -> tuple[bytes, bytes]:
        """Scrub what of `data` is final; return it and the tail to prepend to the next
        chunk (a value may be cut across chunks). Only a trailing run of bytes a match can
        contain is held back, so a stream whose events end in a newline is never delayed."""
        window = data[-(self.longest - 1) :]
        cut = len(data) - (len(window) - len(window.rstrip(self.inner)))
        pieces, pos = [], 0
        for start, end in self.matches(data):
            if start >= cut:
                break
            pieces += [data[pos:start], _MARK]
            pos = end
        cut = max(cut, pos)
        pieces.append(data[pos:cut])
        return b"".join(pieces), data[cut:]


# -- the process-wide secret set ----------------------------------------------------------------

_lock = threading.Lock()
_sources: dict[Hashable, frozenset[str]] = {}
_current: Redactor | None = None


def _expand(values: Iterable[str | None]) -> frozenset[str]:
    out: set[str] = set()
    for value in values:
        if not value or not isinstance(value, str):
            continue
        candidates = {value, value.strip()}
        if ":" in value and "://" not in value:  # user:password, not a URL's scheme and port
            candidates.update(part.strip() for part in value.split(":"))
        out.update(c for c in candidates if len(c) >= MIN_SECRET_LENGTH)
    return frozenset(out)


def _rebuild() -> None:
    global _current
    union = frozenset().union(*_sources.values()) if _sources else frozenset()
    if _current is not None and _current.secrets == union:
        return
    _current = Redactor.build(union) if union else None


def use_secrets(source: Hashable, values: Iterable[str | None]) -> None:
    """Make `values` the secrets of `source` (replacing what it gave before). The pattern is
    rebuilt only when the union of every source's values changes."""
    expanded = _expand(values)
    with _lock:
        if _sources.get(source) == expanded:
            return
        if expanded:
            _sources[source] = expanded
        else:
            _sources.pop(source, None)
        _rebuild()


def forget_secrets(source: Hashable) -> None:
    with _lock:
        if _sources.pop(source, None) is not None:
            _rebuild()


@contextlib.contextmanager
def holding_nothing() -> Iterator[None]:
    """Hold no secret inside the block, whatever this process's sources gave (tests: an answer
    with nothing to scrub); every source's secrets come back after it."""
    global _current
    with _lock:
        saved, saved_current = dict(_sources), _current
        _sources.clear()
        _current = None
    try:
        yield
    finally:
        with _lock:
            _sources.clear()
            _sources.update(saved)
            _current = saved_current


def current() -> Redactor | None:
    """The compiled set in use; None when there is nothing to scrub."""
    return _current


def scrub_bytes(data: bytes) -> bytes:
    redactor = _current
    return data if redactor is None or not data else redactor.sub(data)


def scrub_text(text: str) -> str:
    redactor = _current
    if redactor is None or not text:
        return text
    data = text.encode("utf-8", "surrogatepass")
    cleaned = redactor.sub(data)
    return text if cleaned is data else cleaned.decode("utf-8", "surrogatepass")


# -- the transport ------------------------------------------------------------------------------


def scrub_exception(exc: BaseException, redactor: Redactor) -> None:
    """Transport errors quote URLs and peers: a key in a URL must not reach a log through them."""
    args = exc.args
    if args and isinstance(args[0], str):
        data = args[0].encode("utf-8", "surrogatepass")
        cleaned = redactor.sub(data).decode("utf-8", "surrogatepass")
        if cleaned != args[0]:
            exc.args = (cleaned, *args[1:])


def decoder_for(encodings: list[str]) -> httpx._decoders.ContentDecoder | None:
    """The decoder httpx itself would apply after us (gzip, deflate, br and zstd when their
    libraries are installed); None for an identity body. KeyError for an unknown coding."""
    from httpx import _decoders

    found = [_decoders.SUPPORTED_DECODERS[e]() for e in encodings if e != "identity"]
    if not found:
        return None
    return found[0] if len(found) == 1 else _decoders.MultiDecoder(children=found)


def scrubbed_headers(
    redactor: Redactor, raw: Iterable[tuple[bytes, bytes]], drop: Collection[bytes] = ()
) -> list[tuple[bytes, bytes]]:
    """An answer's headers with every secret removed, less those named in `drop` (lowercase)."""
    headers = []
    for name, value in raw:
        if name.lower() in drop:
            continue
        if redactor.matches(name):
            continue  # a header named after a secret says nothing worth keeping
        headers.append((name, redactor.sub(value)))
    return headers


FRAMING = frozenset({b"content-length", b"content-encoding"})  # what a decoded or rewritten body drops


class _ScrubbedStream(httpx.AsyncByteStream):
    def __init__(
        self, inner: httpx.AsyncByteStream, redactor: Redactor, decoder: httpx._decoders.ContentDecoder | None
    ) -> None:
        self.inner = inner
        self.redactor = redactor
        self.decoder = decoder

    async def __aiter__(self) -> AsyncIterator[bytes]:
        carry = b""
        try:
            async for chunk in self.inner:
                if self.decoder is not None:
                    chunk = self.decoder.decode(chunk)
                if not chunk:
                    continue
                out, carry = self.redactor.split(carry + chunk)
                if out:
                    yield out
            if self.decoder is not None:
                carry += self.decoder.flush()
        except Exception as exc:
            scrub_exception(exc, self.redactor)
            raise
        if carry:
            yield self.redactor.sub(carry)

    async def aclose(self) -> None:
        await self.inner.aclose()


class ScrubbingTransport(httpx.AsyncBaseTransport):
    """Wraps a transport so that no response carries a known secret: header values and the
    reason phrase are scrubbed at once, the body chunk by chunk as it is read. A compressed
    body is decoded first, as httpx would (a secret cannot be found in gzip), and handed on
    decoded. A body that is scrubbed loses its Content-Length (and Content-Encoding): its
    size may change, and it is framed by the end of the stream instead.

    A body in a content coding httpx cannot decode either is passed on as it is: it cannot
    be scrubbed, and no one down the line can read it. Transport errors are scrubbed too
    (their messages quote URLs)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        redactor = _current
        try:
            response = await self.inner.handle_async_request(request)
        except Exception as exc:
            if redactor is not None:
                scrub_exception(exc, redactor)
            raise
        if redactor is None:
            return response
        codings = [
            c.strip().lower() for c in response.headers.get_list("content-encoding", split_commas=True) if c.strip()
        ]
        try:
            decoder = decoder_for(codings)
        except KeyError:
            stream, framing = response.stream, frozenset[bytes]()
        else:
            # An async transport's answer streams asynchronously (httpx types it as either kind).
            inner = cast(httpx.AsyncByteStream, response.stream)
            stream, framing = _ScrubbedStream(inner, redactor, decoder), FRAMING
        headers = scrubbed_headers(redactor, response.headers.raw, framing)
        extensions = dict(response.extensions)
        reason = extensions.get("reason_phrase")
        if isinstance(reason, bytes):
            extensions["reason_phrase"] = redactor.sub(reason)
        return httpx.Response(
            response.status_code, headers=headers, stream=stream, request=request, extensions=extensions
        )

    async def aclose(self) -> None:
        await self.inner.aclose()

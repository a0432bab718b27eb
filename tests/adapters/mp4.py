"""Reading the MP4s the video capability makes: enough of ISO/IEC 14496-12 to check one."""

from __future__ import annotations

import struct


def boxes(data: bytes) -> list[tuple[bytes, bytes]]:
    """The top-level boxes as (type, payload); raises ValueError if a size does not add up."""
    out = []
    at = 0
    while at < len(data):
        if len(data) - at < 8:
            raise ValueError(f"{len(data) - at} stray bytes at {at}")
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        if size < 8 or at + size > len(data):
            raise ValueError(f"box {kind!r} at {at} claims {size} bytes")
        out.append((kind, data[at + 8 : at + size]))
        at += size
    return out


def mp4_seconds(data: bytes) -> float:
    """The movie's length from its `mvhd`, after checking the file starts as an MP4 does."""
    top = boxes(data)
    if not top or top[0][0] != b"ftyp" or top[0][1][:4] not in (b"isom", b"mp41", b"mp42"):
        raise ValueError("not an MP4: no ftyp box with an MP4 brand first")
    moov = dict(top)[b"moov"]
    mvhd = dict(boxes(moov))[b"mvhd"]
    version = mvhd[0]
    if version == 1:
        timescale, duration = struct.unpack(">IQ", mvhd[20:32])
    else:
        timescale, duration = struct.unpack(">II", mvhd[12:20])
    return duration / timescale

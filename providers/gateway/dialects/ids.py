"""Ids the gateway makes for what it answers: request ids, and the ids of the message, response
and item objects the translated APIs carry.

They name an answer; they grant nothing (the gateway keeps no responses to fetch by id), so they
need to be unique, not unguessable. They come from one process-wide generator seeded from the
operating system's randomness at start and again in every forked child, instead of a system
call per id: the call releases the GIL, and under load the request log's writer thread then
holds the event loop off for as long as it runs (profiled: 1.4 % of a chat request's samples
at `secrets.token_hex`, 2 % of a Responses request's at `uuid4`; docs/performance.md)."""

from __future__ import annotations

import os
import random

__all__ = ["new_hex"]

_rng = random.Random(os.urandom(32))


def _reseed() -> None:
    _rng.seed(os.urandom(32))


os.register_at_fork(after_in_child=_reseed)


def new_hex(nbytes: int) -> str:
    """`nbytes` random bytes as lowercase hex, as `secrets.token_hex(nbytes)` spells them."""
    return format(_rng.getrandbits(8 * nbytes), f"0{2 * nbytes}x")

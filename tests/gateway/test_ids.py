"""The ids the gateway makes (request, message, response and item ids) are unique within a
process and across forked workers, and spelled as `secrets.token_hex` spells them."""

from __future__ import annotations

import os
import re

from providers.gateway.dialects.ids import new_hex


def test_ids_are_hex_of_the_asked_length_and_do_not_repeat():
    made = [new_hex(8) for _ in range(50_000)]
    assert all(re.fullmatch(r"[0-9a-f]{16}", i) for i in made)
    assert len(set(made)) == len(made)
    assert len(new_hex(16)) == 32 and len(new_hex(12)) == 24


def test_a_forked_worker_makes_other_ids_than_its_parent():
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the worker: its first ids, to the parent
        try:
            os.write(write, " ".join(new_hex(8) for _ in range(100)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        theirs = set(pipe.read().split())
    os.waitpid(child, 0)
    ours = {new_hex(8) for _ in range(100)}
    assert len(theirs) == 100 and not theirs & ours

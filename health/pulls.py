"""Model pulls started from the console: a task per provider that follows the Ollama
adapter's progress and pushes it to the provider's group (`provider.<name>`), where the
consumer turns it into the progress bar. The latest state is also kept in the cache, so a
page opened (or resynchronised) halfway through shows where the pull is.

Every state pushed carries a `version` that only grows, and the page never swaps an older
state over a newer one: the answer to the "Pull" button (rendered from the cache) can reach
the browser after the socket brought the pull's end, and must not put "starting" back over
"failed". The state is in the cache before the task starts, so that answer never shows a
previous pull. When the pull ends, the push also replaces the page's message ("Pulling …")
with the outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from typing import Any

from channels.layers import get_channel_layer
from django.core.cache import cache

from project.database import db_call
from providers.engine import UpstreamError
from providers.runtime import Runtime
from providers.snapshot import ProviderEntry

from .events import record_action

log = logging.getLogger(__name__)

PUSH_EVERY_S = 0.1  # progress lines come much faster than anyone reads them
KEEP_S = 3600

_tasks: dict[str, asyncio.Task[dict[str, Any]]] = {}
# Grows with every push, and across restarts (it starts at the clock): see the docstring.
_versions = itertools.count(time.time_ns())


def state_key(name: str) -> str:
    return f"console:pull:{name}"


def group(name: str) -> str:
    return f"provider.{name}"


def running(name: str) -> bool:
    task = _tasks.get(name)
    return task is not None and not task.done()


def task(name: str) -> asyncio.Task[dict[str, Any]] | None:
    """The provider's pull task (tests wait for it)."""
    return _tasks.get(name)


def outcome(state: dict[str, Any]) -> tuple[str, str] | None:
    """The message for a finished pull: (level, text); None while it runs."""
    if not state.get("done"):
        return None
    if state.get("error"):
        return "error", f"The pull of {state.get('model')} failed: {state['error']}"
    return "success", f"Pulled {state.get('model')}."


async def _push(name: str, state: dict[str, Any]) -> None:
    state["version"] = next(_versions)
    await cache.aset(state_key(name), state, KEEP_S)
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        await layer.group_send(group(name), {"type": "pull.progress", "provider": name, **state})
    except Exception:  # the state is in the cache: a console that missed this resynchronises from it
        log.exception("could not publish pull progress of %s", name)


def _initial(model: str) -> dict[str, Any]:
    return {
        "model": model,
        "status": "starting",
        "percent": 0.0,
        "completed": 0,
        "total": 0,
        "done": False,
        "error": "",
    }


async def follow(
    rt: Runtime, entry: ProviderEntry, model: str, actor: str, state: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Pull `model`, pushing progress; returns the final state (done, maybe with an error)."""
    name = entry.name
    if state is None:
        state = _initial(model)
        await _push(name, state)
    adapter: Any = rt.adapter(entry, entry.credentials[0][0] if entry.credentials else None)
    last = 0.0
    try:
        async for step in adapter.pull(model):
            status = str(step.get("status") or "")
            changed = status != state["status"]
            # The adapter's percent covers the layers announced so far: it can touch 100 before
            # the next layer is announced, so 100 waits for the end.
            state.update(
                status=status,
                percent=min(float(step.get("percent") or 0.0), 99.0),
                completed=int(step.get("completed") or 0),
                total=int(step.get("total") or 0),
            )
            now = time.monotonic()
            if changed or now - last >= PUSH_EVERY_S:
                last = now
                await _push(name, state)
    except UpstreamError as exc:
        state["error"] = exc.message or "the provider refused the pull"
    except asyncio.CancelledError:
        state["error"] = "the pull was interrupted"
        raise
    except Exception as exc:
        state["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        state["done"] = True
        if not state["error"]:
            state["percent"] = 100.0
        with contextlib.suppress(Exception):
            await _push(name, state)
        detail = f"pull of {model} failed: {state['error']}" if state["error"] else f"pulled {model}"
        with contextlib.suppress(Exception):
            await db_call(record_action, name, "pull_model", actor, detail)
    if not state["error"]:
        from providers.catalog import model_pulled

        await model_pulled(rt, name, model)
    return state


async def start(rt: Runtime, entry: ProviderEntry, model: str, actor: str) -> asyncio.Task[dict[str, Any]]:
    """Run the pull in the background of this event loop (the server's); its first state is
    stored before this returns."""
    state = _initial(model)
    await _push(entry.name, state)
    job = asyncio.get_running_loop().create_task(
        follow(rt, entry, model, actor, state), name=f"pull {entry.name} {model}"
    )
    _tasks[entry.name] = job
    return job

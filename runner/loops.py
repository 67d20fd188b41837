"""How a newsmon process runs: its event loop and its garbage collector.

Owns: choosing the event loop (``NEWSMON_EVENT_LOOP``), running a coroutine on it, and
tuning the collector of a long-running process. Imports no service, so a small process (a
poll worker) pays for nothing else.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from core.errors import SettingsError

_T = TypeVar("_T")


def event_loop_for(roles: tuple[str, ...], setting: str) -> str:
    """The event loop for a process running ``roles`` (none: a command), as
    ``NEWSMON_EVENT_LOOP`` says; "auto" picks uvloop for a process that only serves the API
    (~20 % less CPU a request, measured) and asyncio's own elsewhere. (Polling once cost
    more on uvloop, through anyio; since the guarded transport uses asyncio's streams the
    two measure the same, within noise, on both passes of the polling benchmark.)"""
    if setting != "auto":
        return setting
    return "auto" if roles == ("api",) else "asyncio"


def run_async(main: Coroutine[Any, Any, _T], loop: str) -> _T:
    """``asyncio.run(main)`` on the event loop ``loop`` names: uvloop for "uvloop", and for
    "auto" when it is installed; asyncio's own for "asyncio"."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if loop == "uvloop":
                main.close()
                raise SettingsError("NEWSMON_EVENT_LOOP", "uvloop is not installed") from None
        else:
            factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


# The collector's first threshold for a serving process (CPython's default: 700). A list
# request leaves enough container objects behind that, at the default, young collections ran
# ~0.1 per request at a few hundred µs each (the API bench: ~10 % of the API's CPU, and its
# p99); at 10,000 they are rare and short. (The ingestor's first pass spent ~7 % in them.)
# Cyclic garbage waits a little longer for its collection; everything else is freed by
# reference counting as before.
GC_GEN0_THRESHOLD = 10_000


def tune_gc_for_serving() -> None:
    """Freeze what start-up allocated (the app, its routes and schemas, the lexicon: never
    garbage, and no longer scanned by every full collection) and collect the young
    generation less often (``GC_GEN0_THRESHOLD``). Call once the app is built."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)

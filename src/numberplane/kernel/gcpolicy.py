"""Keep full garbage collections off the event loop while a bulk job holds millions of objects.

A 100,000-row import keeps its rows, their validated settings and their results alive for the
whole request. Every full (generation 2) collection walks all of them: measured at 0.3 to 1.2 s
per pass, a pause every request on the process waits out, calls being routed included
(bench/import_vs_routing.py). ``bulk_allocations()`` defers full collections while any bulk job
runs (young collections go on, so short-lived cycles are still freed) and restores the
process's thresholds when the last one ends; the deferred collection then runs once, after the
job's objects are gone, when it is cheap.

The job's CPU work runs in worker threads; a thread holding the GIL makes the event loop wait
up to the interpreter's switch interval each time it wants to run again (5 ms by default, paid
several times per request). While a bulk job runs the interval is 1 ms, so the loop gets the
GIL back sooner.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager

_DEFERRED = 1_000_000
_running = 0
_saved: tuple[int, int, int] | None = None
_saved_switch = 0.005
BULK_SWITCH_INTERVAL = 0.001


@contextmanager
def bulk_allocations() -> Iterator[None]:
    global _running, _saved, _saved_switch
    if _running == 0:
        _saved = gc.get_threshold()
        gc.set_threshold(_saved[0], _saved[1], _DEFERRED)
        _saved_switch = sys.getswitchinterval()
        sys.setswitchinterval(min(_saved_switch, BULK_SWITCH_INTERVAL))
    _running += 1
    try:
        yield
    finally:
        _running -= 1
        if _running == 0 and _saved is not None:
            gc.set_threshold(*_saved)
            _saved = None
            sys.setswitchinterval(_saved_switch)

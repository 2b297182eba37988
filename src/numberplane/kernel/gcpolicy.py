"""Keep full garbage collections off the event loop while a bulk job holds millions of objects.

A 100,000-row import keeps its rows, their validated settings and their results alive for the
whole request. Every full (generation 2) collection walks all of them: measured at 0.3 to 1.2 s
per pass, a pause every request on the process waits out, calls being routed included
(bench/import_vs_routing.py). ``bulk_allocations()`` defers full collections while any bulk job
runs (young collections go on, so short-lived cycles are still freed) and restores the
process's thresholds when the last one ends; the deferred collection then runs once, after the
job's objects are gone, when it is cheap.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_DEFERRED = 1_000_000
_running = 0
_saved: tuple[int, int, int] | None = None


@contextmanager
def bulk_allocations() -> Iterator[None]:
    global _running, _saved
    if _running == 0:
        _saved = gc.get_threshold()
        gc.set_threshold(_saved[0], _saved[1], _DEFERRED)
    _running += 1
    try:
        yield
    finally:
        _running -= 1
        if _running == 0 and _saved is not None:
            gc.set_threshold(*_saved)
            _saved = None

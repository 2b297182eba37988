"""Fail points: named places in multi-step operations where a test can kill the process.

``NUMBERPLANE_FAULTS="buy.after_carrier:kill"`` makes ``point("buy.after_carrier")`` SIGKILL
the current process, exactly as a crash or an OOM kill would, so crash-safety tests exercise
the real code path (a subprocess server, a real carrier call, a real restart). Unset in
production: a point is then a dictionary lookup. Actions: ``kill`` or ``raise``.
"""

from __future__ import annotations

import os
import signal

_ENV = "NUMBERPLANE_FAULTS"


class InjectedFault(RuntimeError):
    pass


def _parse(raw: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in raw.split(","):
        name, _, action = item.strip().partition(":")
        if name:
            out[name] = action or "kill"
    return out


_ACTIVE = _parse(os.environ.get(_ENV, ""))


def point(name: str) -> None:
    action = _ACTIVE.get(name)
    if action is None:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise InjectedFault(name)


def reload() -> None:
    """Re-read the environment (tests that set faults in-process)."""
    global _ACTIVE
    _ACTIVE = _parse(os.environ.get(_ENV, ""))

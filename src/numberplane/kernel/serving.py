"""The HTTP protocol the server runs: uvicorn's httptools protocol, its writes sent at the end of
the event loop's turn.

uvicorn writes a response's head when the app sends ``http.response.start`` and its body when
it sends ``http.response.body``: two ``send()`` calls at once, each a TCP segment that wakes the
peer, while the loop still has other connections' requests ready to run. ``HttpProtocol`` holds
what the turn writes to each connection and sends it when the turn's ready work is done: one
segment per answer, and the answers of one turn leave together, so the peer (a carrier's edge,
a SIP platform, a load generator) wakes once for several and sends its next requests together,
and the next turn finds several ready. Measured on this project's 2-core VM (bench/routing.py's
warm carrier decisions on PostgreSQL, 100,000 numbers, interleaved A/B, 3 rounds, medians):
server CPU per decision 101.5 -> 78.3 us, decisions/s 9,783 -> 12,654; with call records 116.7 ->
90.2 us, 7,585 -> 9,626/s. Sending at the response's completion instead (one segment, no
waiting) changed nothing (101.5 -> 102.5 us): the gain is the turn's answers leaving together.
An answer waits at most for the rest of its turn.

Held data leaves at the end of the turn, at once past ``FLUSH_BYTES`` (a large body is not held
in memory), and before a close. A streamed body goes out turn by turn, as it is produced. Order
is kept: every write goes through the holder, and a WebSocket upgrade gets the socket itself.
``numberplane serve`` uses it (``PROTOCOL``), and so do the tests' servers and the benchmarks,
for Numberplane and for their bare ASGI baseline alike.
"""

from __future__ import annotations

import asyncio
import ctypes
import multiprocessing
import os
import signal
import sys
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

PROTOCOL = "numberplane.kernel.serving:HttpProtocol"  # uvicorn's --http / Config(http=...)
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
FLUSH_BYTES = 64 * 1024


class _Gathered:
    """A transport that holds writes until ``flush`` (the loop's next turn at the latest)."""

    __slots__ = ("_held", "_loop", "_size", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> None:
        if not self._held:
            self._loop.call_soon(self.flush)
        self._held.append(data)
        self._size += len(data)
        if self._size >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        held = self._held
        if not held:
            return
        self._held, self._size = [], 0
        if self._transport.is_closing():  # the peer is gone: nothing to write to
            return
        self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._held, self._size = [], 0
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:  # is_closing, get_extra_info, pause_reading, ...
        return getattr(self._transport, name)


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's ``HttpToolsProtocol``, writing through ``_Gathered`` (see the module's doc)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = _Gathered(transport, self.loop)  # type: ignore[assignment]

    def handle_websocket_upgrade(self) -> None:
        gathered = self.transport
        gathered.flush()  # type: ignore[attr-defined]
        self.transport = gathered._transport  # type: ignore[attr-defined]
        super().handle_websocket_upgrade()


def exit_with_supervisor() -> bool:
    """In a worker of ``numberplane serve --workers N`` (uvicorn's multiprocess supervisor), ask
    the kernel for SIGTERM when the supervisor dies, so the worker shuts down as if told to.
    Without it a supervisor killed outright (SIGKILL, the OOM killer) leaves its workers running
    with nobody to stop them (seen in bench.workers: a worker still at work 20 minutes later).
    Linux only; elsewhere, and in a process that is not such a worker, it does nothing. Returns
    whether it asked."""
    parent = multiprocessing.parent_process()
    if parent is None or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent.pid:  # it died before we asked: the signal will never come
        os.kill(os.getpid(), signal.SIGTERM)
    return True

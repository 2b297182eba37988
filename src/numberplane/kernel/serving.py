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
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Collection
from typing import Any, Protocol, cast

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

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


log = logging.getLogger("numberplane.serving")

Answer = tuple[int, list[tuple[bytes, bytes]], bytes]  # status, headers (without uvicorn's), body


class DirectAnswer(Protocol):
    """Requests an app answers without ASGI (``HttpProtocol``): it sets one as
    ``app.state.direct_answer`` at startup."""

    endpoints: Collection[tuple[str, str]]  # the (method, path) pairs it takes
    max_body: int  # a longer body goes to the ASGI app

    def __call__(self, scope: Any, body: bytes) -> Awaitable[Answer | None]:
        """The whole answer to a request read whole, or None: the ASGI app answers it."""


def direct_of(app: Any) -> DirectAnswer | None:
    """``app.state.direct_answer`` of the app under uvicorn's middleware, if it set one."""
    for _ in range(8):  # uvicorn wraps the app in a middleware or two
        state = getattr(app, "state", None)
        found = getattr(state, "direct_answer", None) if state is not None else None
        if found is not None:
            return cast(DirectAnswer, found)
        app = getattr(app, "app", None)
        if app is None:
            break
    return None


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's ``HttpToolsProtocol``, writing through ``_Gathered`` (see the module's doc), and
    answering the app's ``DirectAnswer`` endpoints (the carrier endpoints, ``GET /v1/route``)
    without ASGI.

    uvicorn runs every request as an ASGI cycle: its receive and send messages, the app's
    middleware chain (uvicorn's proxy headers, FastAPI, Starlette), a check of every response
    header. For a request the app's ``DirectAnswer`` takes, the protocol holds the body until
    the request is whole, runs the answer in a task of its own (so timeouts and cancellation
    work as in any request) and writes it as ``RequestResponseCycle.send`` would, with the same
    default headers, keep-alive and pipelining. Anything else, or a request it declines, an
    ``Expect: 100-continue``, a body over ``max_body``, a server over its concurrency limit,
    goes through ASGI unchanged. Server CPU per warm carrier decision (bench/routing.py's
    harness, 100,000 numbers on PostgreSQL, wrk): 65-67 -> 58-61 us.
    """

    _direct: DirectAnswer | None = None
    _waiting: RequestResponseCycle | None = None  # a direct request whose body is still coming
    _waiting_app: Any = None
    _defaults_of: list[tuple[bytes, bytes]] | None = None  # the default headers ``_defaults`` encodes
    _defaults = b""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = _Gathered(transport, self.loop)  # type: ignore[assignment]
        self._direct = direct_of(self.app)  # set at startup, which ends before any connection

    def handle_websocket_upgrade(self) -> None:
        gathered = self.transport
        gathered.flush()  # type: ignore[attr-defined]
        self.transport = gathered._transport  # type: ignore[attr-defined]
        super().handle_websocket_upgrade()

    # Called with each request's cycle once it may run (at once, or after the pipelined ones
    # before it): the request's body may be whole already, or still coming.
    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        direct = self._direct
        scope = cycle.scope
        if (
            direct is None
            or app is not self.app  # over the concurrency limit: uvicorn's 503
            or cycle.waiting_for_100_continue
            or (scope["method"], scope["path"]) not in direct.endpoints
        ):
            super()._start_asgi_task(cycle, app)
        elif cycle.more_body:
            self._waiting, self._waiting_app = cycle, app
        else:
            self._start_direct(cycle, app)

    def on_body(self, body: bytes) -> None:
        cycle = self._waiting
        if (
            cycle is not None
            and self._direct is not None
            and len(cycle.body) + len(body) > self._direct.max_body
        ):
            self._waiting = None  # too long to hold: the app reads it as it comes (and refuses it)
            super()._start_asgi_task(cycle, self._waiting_app)
        super().on_body(body)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        cycle = self._waiting
        if cycle is not None and not cycle.response_complete:
            self._waiting = None
            self._start_direct(cycle, self._waiting_app)

    def _start_direct(self, cycle: RequestResponseCycle, app: Any) -> None:
        task = self.loop.create_task(self._run_direct(cycle, app))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    async def _run_direct(self, cycle: RequestResponseCycle, app: Any) -> None:
        assert self._direct is not None
        scope = cycle.scope
        try:
            answer = await self._direct(scope, bytes(cycle.body))
        except Exception:
            log.exception("direct answer to %s %s failed", scope["method"], scope["path"])
            answer = (500, [(b"content-length", b"0")], b"")
        if answer is None:  # declined: the app answers, as if the protocol had not looked
            await cycle.run_asgi(app)
            return
        if cycle.flow.write_paused and not cycle.disconnected:
            await cycle.flow.drain()
        if cycle.disconnected:
            return
        status, headers, body = answer
        if cycle.access_log:
            cycle.access_logger.info(
                '%s - "%s %s HTTP/%s" %d',
                get_client_addr(scope),
                scope["method"],
                get_path_with_query_string(scope),
                scope["http_version"],
                status,
            )
        defaults = cycle.default_headers  # the server's (date, server...): a new list each second
        if defaults is not self._defaults_of:
            self._defaults_of = defaults
            self._defaults = b"".join([name + b": " + value + b"\r\n" for name, value in defaults])
        content = [STATUS_LINE[status], self._defaults]
        for name, value in headers:
            content += (name, b": ", value, b"\r\n")
        if not cycle.keep_alive:
            content.append(b"connection: close\r\n")
        content += (b"\r\n", body)
        cycle.response_started = cycle.response_complete = True
        cycle.message_event.set()
        self.transport.write(b"".join(content))
        if not cycle.keep_alive:
            self.transport.close()
        cycle.on_response()


# -- several server processes ------------------------------------------------------------------------

STARTUP_GRACE_S = 10.0  # a worker that dies sooner than this after starting counts as failing to start
MAX_QUICK_DEATHS = 3  # that many in a row: the app cannot start, and the supervisor gives up
RESTART_OVERLAP_S = 3.0  # SIGHUP: how long a new worker starts beside the one it replaces


def listening_sockets(host: str, port: int, count: int, backlog: int = 2048) -> list[socket.socket]:
    """``count`` sockets listening on one address, each with ``SO_REUSEPORT``: the kernel spreads
    new connections evenly over them (by a hash of each connection's addresses). Port 0: the
    first socket's port, chosen by the kernel, for all."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    out: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            out.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            port = sock.getsockname()[1]
            sock.listen(backlog)
            sock.set_inheritable(True)
    except OSError:
        for sock in out:
            sock.close()
        raise
    return out


def _serve_one(config_kwargs: dict[str, Any], sock: socket.socket) -> None:
    """A worker process: uvicorn's server on the socket its supervisor gave it alone. In a process
    group of its own, so a terminal's Ctrl-C reaches the supervisor alone, which then stops each
    worker once (a second signal would make uvicorn skip its graceful shutdown)."""
    import uvicorn

    os.setpgrp()
    uvicorn.Server(uvicorn.Config(**config_kwargs)).run(sockets=[sock])


def serve_workers(config_kwargs: dict[str, Any], *, host: str, port: int, workers: int) -> int:
    """Run ``workers`` uvicorn servers of ``uvicorn.Config(**config_kwargs)``, each accepting on a
    listening socket of its own (``listening_sockets``), until SIGINT or SIGTERM; returns the
    exit status.

    uvicorn's own ``--workers`` gives every worker the one socket: each accepts every connection
    waiting when it wakes, so a burst of new connections (a carrier's edge opening its pool, a
    load generator starting) lands mostly on one worker (seen: 30 of 32 on one of two), which then
    does most of the work while the other idles. With a socket each, the kernel spreads them.
    A worker that exits is started again on the same socket (the connections queued on it wait
    for it); one that cannot start (``MAX_QUICK_DEATHS`` exits in a row, each within
    ``STARTUP_GRACE_S``) stops them all. SIGHUP replaces the workers one by one, each new one
    starting beside the one it replaces. Linux (``SO_REUSEPORT``)."""
    sockets = listening_sockets(host, port, workers, config_kwargs.get("backlog", 2048))
    context = multiprocessing.get_context("spawn")
    stopping = threading.Event()

    def start(index: int) -> tuple[multiprocessing.process.BaseProcess, float]:
        process = context.Process(
            target=_serve_one, args=(config_kwargs, sockets[index]), name=f"numberplane-server-{index}"
        )
        process.start()
        return process, time.monotonic()

    restarting = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stopping.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, lambda *_: restarting.set())
    processes = [start(index) for index in range(workers)]
    quick_deaths = 0
    status = 0
    try:
        while not stopping.wait(0.25):
            if restarting.is_set():  # SIGHUP: each worker replaced in turn, as uvicorn's supervisor does
                restarting.clear()
                log.info("SIGHUP: restarting the server processes one by one")
                for index, (old, _) in enumerate(processes):
                    processes[index] = start(index)  # on the same socket: both accept until the old stops
                    stopping.wait(RESTART_OVERLAP_S)
                    old.terminate()
                    old.join(30)
                    if old.exitcode is None:
                        old.kill()
                        old.join(5)
                    if stopping.is_set():
                        break
                continue
            for index, (process, started) in enumerate(processes):
                if process.exitcode is None:
                    continue
                quick = time.monotonic() - started < STARTUP_GRACE_S
                quick_deaths = quick_deaths + 1 if quick else 0
                log.warning("server process %s exited (status %s)", process.pid, process.exitcode)
                if quick_deaths >= MAX_QUICK_DEATHS:
                    log.error("server processes keep exiting as they start: stopping")
                    stopping.set()
                    status = 1
                    break
                processes[index] = start(index)
    finally:
        for process, _ in processes:
            if process.exitcode is None:
                process.terminate()  # SIGTERM: uvicorn's graceful shutdown
        for process, _ in processes:
            process.join(30)
            if process.exitcode is None:
                process.kill()
                process.join(5)
        for sock in sockets:
            sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status


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

"""Fake carriers: real ASGI apps on 127.0.0.1 that enforce each carrier's documented contract.

Each fake keeps its own books (inventory, owned numbers, every purchase ever made) and can be
told, from the test, to fail the next call to an operation:

    fake.faults.fail("buy", 500, retry_after=7)   # a 5xx in the carrier's error shape
    fake.faults.fail("buy", 400, code=21422)      # a 4xx (carrier-specific body)
    fake.faults.timeout("search")                 # hang longer than the client's timeout
    fake.faults.lose_response("buy")              # do the purchase, then never answer

A hang lasts until the client gives up (disconnects) or ``hang_seconds`` pass, so a test never
waits on a fake longer than its own client timeout.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from tests.support import LiveServer


@dataclass
class Fault:
    kind: str  # status | timeout | lose_response
    status: int = 500
    code: Any = None
    message: str | None = None
    retry_after: str | None = None


@dataclass
class FaultPlan:
    """Faults queued per operation name; each is used once, in order."""

    _queue: dict[str, list[Fault]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, op: str, fault: Fault, times: int = 1) -> None:
        with self._lock:
            self._queue.setdefault(op, []).extend([fault] * times)

    def fail(
        self,
        op: str,
        status: int = 500,
        *,
        code: Any = None,
        message: str | None = None,
        retry_after: int | str | None = None,
        times: int = 1,
    ) -> None:
        ra = str(retry_after) if retry_after is not None else None
        self.add(op, Fault("status", status, code, message, ra), times)

    def timeout(self, op: str, times: int = 1) -> None:
        self.add(op, Fault("timeout"), times)

    def lose_response(self, op: str, times: int = 1) -> None:
        self.add(op, Fault("lose_response"), times)

    def take(self, op: str) -> Fault | None:
        with self._lock:
            queue = self._queue.get(op)
            if not queue:
                return None
            return queue.pop(0)

    def pending(self, op: str) -> int:
        with self._lock:
            return len(self._queue.get(op) or [])

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()


async def hang(request: Request, seconds: float) -> None:
    """Hold the response until the client disconnects (it timed out) or ``seconds`` pass."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if await request.is_disconnected():
            return
        await asyncio.sleep(0.02)


class FakeCarrier:
    """Common parts: the server, the fault plan, the request log and the purchase ledger."""

    hang_seconds = 5.0

    def __init__(self) -> None:
        self.faults = FaultPlan()
        self.requests: list[dict[str, Any]] = []
        self.purchases: list[str] = []  # every number ever sold, in order (double buys show here)
        self.lock = threading.RLock()
        self.server: LiveServer | None = None
        self._url: str | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    def app(self) -> Any:
        raise NotImplementedError

    def start(self) -> FakeCarrier:
        self.server = LiveServer(self.app()).start()
        self._url = self.server.url
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    @property
    def url(self) -> str:
        """The fake's base URL (still answers after stop(): then nothing listens there)."""
        assert self._url is not None, "fake carrier not started"
        return self._url

    # -- the carrier's books, and drift made behind Numberplane's back (reconcile tests) -------
    id_field = "id"

    def books(self) -> dict[str, dict[str, Any]]:
        """The numbers this account holds, by the carrier's own id."""
        raise NotImplementedError

    def by_number(self, phone_number: str) -> dict[str, Any] | None:
        raise NotImplementedError

    def set_fields(self, phone_number: str, **fields: Any) -> None:
        """Change a number at the carrier behind Numberplane's back."""
        with self.lock:
            resource = self.by_number(phone_number)
            assert resource is not None, phone_number
            resource.update(fields)

    def remove(self, phone_number: str) -> None:
        """Release a number at the carrier behind Numberplane's back."""
        with self.lock:
            resource = self.by_number(phone_number)
            if resource is not None:
                del self.books()[resource[self.id_field]]

    # -- helpers for tests ------------------------------------------------------------------
    def bought_twice(self) -> list[str]:
        return [n for n, count in Counter(self.purchases).items() if count > 1]

    def log(self, request: Request, op: str, **extra: Any) -> None:
        with self.lock:
            self.requests.append(
                {
                    "op": op,
                    "method": request.method,
                    "path": request.url.path,
                    "query": list(request.query_params.multi_items()),
                    **extra,
                }
            )

    def requests_for(self, op: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["op"] == op]

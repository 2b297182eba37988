"""The server's HTTP protocol (kernel/serving.py), over real sockets: gathering a response's
writes into one changes when bytes leave, never which bytes or in what order; and the requests
an app answers directly (``DirectAnswer``, without ASGI) are answered as HTTP requires, in turn
with the others on their connection.

Every ``LiveServer`` and ``ServerProcess`` in the suite runs this protocol too, so the dialects'
SDK tests and the fake carriers exercise it as well; these tests take the cases those do not:
pipelining, a streamed body that must go out before the app finishes, a large body, 100-continue
and a close after the answer. How much faster it is, bench/routing.py measures.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from types import SimpleNamespace
from typing import Any

import pytest

from numberplane.kernel.serving import FLUSH_BYTES, PROTOCOL, Answer
from tests.support import LiveServer

LARGE = bytes(range(256)) * (FLUSH_BYTES // 64)  # 4 x FLUSH_BYTES, every byte value
released = threading.Event()  # the streaming app's second chunk waits for the test to see its first


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    path = scope["path"]
    if path == "/stream":
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"first;", "more_body": True})
        for _ in range(1_000):  # bounded: 10 s, past the client's 5 s timeout
            if released.is_set():
                break
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"second"})
        return
    answer = LARGE if path == "/large" else b"echo:" + path.encode() + b":" + body
    headers = [(b"content-type", b"application/octet-stream"), (b"content-length", str(len(answer)).encode())]
    if path == "/close":
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


class Direct:
    """The app's direct answers: ``/direct`` echoes ``direct:<body>``; ``/direct/slow`` first
    waits under ``asyncio.timeout`` (a task's own timeout must work); ``/direct/decline``
    declines (the ASGI app answers); ``/direct/fail`` raises."""

    endpoints = frozenset(
        ("POST", path) for path in ("/direct", "/direct/slow", "/direct/decline", "/direct/fail")
    )
    max_body = 1024

    async def __call__(self, scope: dict[str, Any], body: bytes) -> Answer | None:
        path = scope["path"]
        if path == "/direct/decline":
            return None
        if path == "/direct/fail":
            raise RuntimeError("the answer failed")
        if path == "/direct/slow":
            async with asyncio.timeout(5):
                await asyncio.sleep(0.05)
        answer = b"direct:" + body
        return 200, [(b"content-type", b"text/plain"), (b"content-length", str(len(answer)).encode())], answer


app.state = SimpleNamespace(direct_answer=Direct())  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    live = LiveServer(app).start()
    assert live.config.http == PROTOCOL
    yield live
    live.stop()


def connect(server: LiveServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class Reader:
    """Reads HTTP/1.1 responses (content-length or chunked) off a socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buffer = sock, b""

    def _more(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        self.buffer += data

    def until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            self._more()
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._more()
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def response(self) -> tuple[int, dict[str, str], bytes]:
        head = self.until(b"\r\n\r\n").decode()
        status_line, *lines = head.split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        if "content-length" in headers:
            return int(status_line.split()[1]), headers, self.exactly(int(headers["content-length"]))
        body = b""
        while True:
            size = int(self.until(b"\r\n"), 16)
            chunk = self.exactly(size + 2)[:-2]
            if size == 0:
                return int(status_line.split()[1]), headers, body
            body += chunk


def request(path: str, body: bytes = b"", version: str = "1.1") -> bytes:
    return f"POST {path} HTTP/{version}\r\nHost: t\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


def test_keep_alive_answers_each_request_whole_and_in_turn(server: LiveServer) -> None:
    with connect(server) as sock:
        reader = Reader(sock)
        for i in range(20):
            sock.sendall(request(f"/n{i}", f"body {i}".encode()))
            status, headers, body = reader.response()
            expected = f"echo:/n{i}:body {i}".encode()
            assert (status, headers["content-length"], body) == (200, str(len(expected)), expected)
        assert reader.buffer == b""  # nothing more than the answers


def test_pipelined_requests_are_answered_in_order(server: LiveServer) -> None:
    with connect(server) as sock:
        sock.sendall(b"".join(request(f"/p{i}", b"x" * i) for i in range(10)))
        reader = Reader(sock)
        assert [reader.response()[2] for _ in range(10)] == [
            f"echo:/p{i}:{'x' * i}".encode() for i in range(10)
        ]


def test_a_streamed_body_leaves_before_the_app_finishes(server: LiveServer) -> None:
    """The first chunk must reach the client while the app still waits (on the client, here):
    held until the response completed, it never would, and this would time out."""
    released.clear()
    with connect(server) as sock:
        sock.sendall(request("/stream"))
        reader = Reader(sock)
        head = reader.until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in head.lower()
        size = int(reader.until(b"\r\n"), 16)
        assert reader.exactly(size + 2) == b"first;\r\n"
        released.set()
        size = int(reader.until(b"\r\n"), 16)
        assert reader.exactly(size + 2) == b"second\r\n"
        assert reader.until(b"\r\n\r\n") == b"0"


def test_a_large_body_arrives_whole(server: LiveServer) -> None:
    with connect(server) as sock:
        for _ in range(2):  # and the connection stays usable after it
            sock.sendall(request("/large"))
            status, headers, body = Reader(sock).response()
            assert (status, headers["content-length"], body) == (200, str(len(LARGE)), LARGE)


@pytest.mark.parametrize("path", ["/continue", "/direct"])  # a direct endpoint's goes through ASGI
def test_expect_100_continue(server: LiveServer, path: str) -> None:
    with connect(server) as sock:
        body = b"after the interim answer"
        head = f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n"
        sock.sendall(head.encode() + b"Expect: 100-continue\r\n\r\n")
        reader = Reader(sock)
        assert reader.until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue"
        sock.sendall(body)
        assert reader.response()[2] == f"echo:{path}:".encode() + body


def test_an_answer_that_closes_the_connection_is_sent_first(server: LiveServer) -> None:
    with connect(server) as sock:
        sock.sendall(request("/close", b"last"))
        reader = Reader(sock)
        assert reader.response()[2] == b"echo:/close:last"
        assert sock.recv(1) == b""  # then the server closed it


def test_a_malformed_request_gets_its_400_before_the_close(server: LiveServer) -> None:
    with connect(server) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        assert data.startswith(b"HTTP/1.1 400")


# -- direct answers ---------------------------------------------------------------------------------


def test_a_direct_answer_is_written_as_an_asgi_one_would_be(server: LiveServer) -> None:
    with connect(server) as sock:
        reader = Reader(sock)
        sock.sendall(request("/direct", b"hello"))
        status, direct_headers, body = reader.response()
        assert (status, body) == (200, b"direct:hello")
        sock.sendall(request("/other", b"hello"))  # the same connection, through ASGI
        status, asgi_headers, body = reader.response()
        assert (status, body) == (200, b"echo:/other:hello")
        # uvicorn's own headers (date, server) on both, and nothing else but the app's
        assert set(direct_headers) - {"content-type"} == set(asgi_headers) - {"content-type"}
        assert direct_headers["server"] == asgi_headers["server"] and "date" in direct_headers


def test_a_direct_answer_carries_the_current_date_on_a_long_connection(server: LiveServer) -> None:
    """The server's default headers are encoded once per list uvicorn makes (a new one each
    second, with the new date): a connection kept open across seconds sees the date move."""
    with connect(server) as sock:
        reader = Reader(sock)
        dates = []
        deadline = time.monotonic() + 5
        while len(set(dates)) < 2 and time.monotonic() < deadline:
            sock.sendall(request("/direct", b"x"))
            status, headers, _ = reader.response()
            assert status == 200
            dates.append(headers["date"])
            time.sleep(0.2)
        moments = [parsedate_to_datetime(date) for date in dates]
        assert moments == sorted(moments) and moments[-1] > moments[0], dates


def test_pipelined_direct_and_asgi_requests_are_answered_in_order(server: LiveServer) -> None:
    """A slow direct answer holds the ones after it, direct or not, as any request would."""
    paths = ["/direct/slow", "/p1", "/direct", "/direct/decline", "/direct/slow", "/direct"]
    with connect(server) as sock:
        sock.sendall(b"".join(request(path, f"b{i}".encode()) for i, path in enumerate(paths)))
        reader = Reader(sock)
        assert [reader.response()[2] for _ in paths] == [
            b"direct:b0",
            b"echo:/p1:b1",
            b"direct:b2",
            b"echo:/direct/decline:b3",  # declined: the ASGI app read the same body
            b"direct:b4",
            b"direct:b5",
        ]


def test_a_direct_request_waits_for_its_whole_body(server: LiveServer) -> None:
    with connect(server) as sock:
        reader = Reader(sock)
        body = b"first half, second half"
        sock.sendall(f"POST /direct HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n\r\n".encode())
        for part in (body[:10], body[10:]):
            time.sleep(0.05)
            sock.sendall(part)
        assert reader.response()[2] == b"direct:" + body
        chunked = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        sock.sendall(b"POST /direct HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked)
        assert reader.response()[2] == b"direct:hello world"


def test_a_body_over_the_direct_limit_goes_to_the_app_whole(server: LiveServer) -> None:
    body = bytes(range(256)) * 8  # 2,048 bytes: over Direct.max_body
    with connect(server) as sock:
        reader = Reader(sock)
        sock.sendall(request("/direct", body))
        assert reader.response()[2] == b"echo:/direct:" + body
        sock.sendall(request("/direct", b"small"))  # the connection goes on
        assert reader.response()[2] == b"direct:small"


def test_a_failing_direct_answer_is_a_500_and_the_connection_goes_on(server: LiveServer) -> None:
    with connect(server) as sock:
        reader = Reader(sock)
        sock.sendall(request("/direct/fail", b"x"))
        status, headers, body = reader.response()
        assert (status, headers["content-length"], body) == (500, "0", b"")
        sock.sendall(request("/direct", b"after"))
        assert reader.response()[2] == b"direct:after"


def test_a_direct_answer_closes_an_http_1_0_connection(server: LiveServer) -> None:
    with connect(server) as sock:
        sock.sendall(request("/direct", b"old", version="1.0"))
        reader = Reader(sock)
        status, headers, body = reader.response()
        assert (status, headers["connection"], body) == (200, "close", b"direct:old")
        assert sock.recv(1) == b""

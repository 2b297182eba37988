"""``HEAD`` answered as the ``GET`` at the same path, without its body.

HTTP asks it of every general-purpose server (RFC 9110, 9.1 and 9.3.2), and uptime monitors and
load balancers probe with it (``HEAD /healthz``), while FastAPI answers a GET route's HEAD with a
405. The answer's status and headers are the GET's, Content-Length included; no body is sent.
Where the path serves no GET, the answer is the GET's 405, whose Allow names what it does serve.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headless(message: Message) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headless)

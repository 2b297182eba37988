"""Outgoing calls to customer URLs: private addresses refused, redirects checked, bodies capped."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from numberplane.kernel.net import (
    BlockedURL,
    CustomerClient,
    ResponseTooLarge,
    check_url,
    customer_request,
)
from tests.support import LiveServer


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://app.localhost/hook",
        "http://10.1.2.3/hook",
        "http://172.16.0.5/hook",
        "http://192.168.1.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://100.64.0.1/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "ftp://example.com/hook",
        "/relative",
    ],
)
async def test_private_and_odd_urls_are_refused(url: str) -> None:
    with pytest.raises(BlockedURL):
        await check_url(url, allow_private=False)


async def test_public_literal_is_allowed_and_private_allowed_when_configured() -> None:
    await check_url("https://93.184.216.34/hook", allow_private=False)
    await check_url("http://127.0.0.1:9/hook", allow_private=True)


def _app() -> Starlette:
    async def big(_: Request) -> Response:
        return PlainTextResponse("x" * 300_000)

    async def hop(request: Request) -> Response:
        n = int(request.query_params.get("n", "0"))
        return RedirectResponse(f"/hop?n={n + 1}" if n < 10 else "/ok", status_code=307)

    async def ok(_: Request) -> Response:
        return PlainTextResponse("fine")

    async def to_ok(_: Request) -> Response:
        return RedirectResponse("/ok", status_code=302)

    return Starlette(
        routes=[
            Route("/big", big),
            Route("/hop", hop),
            Route("/ok", ok),
            Route("/to-ok", to_ok, methods=["GET", "POST"]),
        ]
    )


@pytest.fixture(scope="module")
def server() -> LiveServer:
    live = LiveServer(_app()).start()
    yield live
    live.stop()


async def test_body_is_capped_redirects_are_bounded_and_followed_by_hand(server: LiveServer) -> None:
    async with CustomerClient(allow_private=True) as client:
        with pytest.raises(ResponseTooLarge):
            await customer_request(client, "GET", f"{server.url}/big", allow_private=True, timeout=5)
        with pytest.raises(BlockedURL, match="too many redirects"):
            await customer_request(client, "GET", f"{server.url}/hop", allow_private=True, timeout=5)
        followed = await customer_request(
            client, "POST", f"{server.url}/to-ok", allow_private=True, timeout=5, json={"a": 1}
        )
        assert followed.status_code == 200 and followed.text == "fine"
    async with CustomerClient(allow_private=False) as strict:
        with pytest.raises(BlockedURL):
            await customer_request(strict, "GET", f"{server.url}/ok", allow_private=False, timeout=5)
        with pytest.raises(TypeError):  # a lenient client cannot be used for a strict request
            await customer_request(client, "GET", f"{server.url}/ok", allow_private=False, timeout=5)
    async with httpx.AsyncClient() as plain:
        with pytest.raises(TypeError):  # nor can a client that checks nothing at connect time
            await customer_request(plain, "GET", f"{server.url}/ok", allow_private=True, timeout=5)

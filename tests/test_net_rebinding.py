"""DNS rebinding (issue 10, item 3): the address checked is the address connected to.

A resolver that answers a public address to the first lookup and a private one afterwards is
how rebinding works: the old code resolved the name to check it, and the connection resolved it
again, so it connected to the private address. 127.0.0.2 plays "public" here (the policy is
patched to allow it; nothing listens there), 127.0.0.1 is the internal service that must never
be reached. Checked for a plain request, a redirect hop, the routing inbound webhook (the
Router's client) and event deliveries (the worker's client); a pinned connection still sends
the host name, in ``Host`` and as the TLS server name (a certificate for the name verifies).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from numberplane.events.signing import new_secret
from numberplane.events.worker import Claimed, Worker
from numberplane.kernel import net
from numberplane.kernel.db import Database
from numberplane.kernel.net import BlockedURL, CustomerClient, customer_request
from numberplane.kernel.settings import Settings
from numberplane.routing import webhook
from numberplane.routing.decide import CallInfo
from numberplane.routing.service import Router
from numberplane.routing.snapshot import RouteSnapshot
from tests.events.conftest import FAST
from tests.support import LiveServer

PUBLIC = "127.0.0.2"  # allowed by the patched policy below; nothing listens there
INTERNAL = "127.0.0.1"


class Resolver:
    """``socket.getaddrinfo`` with scripted answers per name: the n-th lookup of a name gets the
    n-th address of its list (the last one from then on). Other names resolve as usual."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []
        self._real = socket.getaddrinfo
        monkeypatch.setattr(socket, "getaddrinfo", self)

    def __call__(self, host: Any, port: Any, *args: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in self.answers:
            return self._real(host, port, *args)
        answers = self.answers[name]
        address = answers[min(self.lookups.count(name), len(answers) - 1)]
        self.lookups.append(name)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port or 0)))]


@pytest.fixture
def public_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Treat 127.0.0.2 as a public address (127.0.0.1 stays blocked)."""
    blocked = net._is_blocked_ip
    monkeypatch.setattr(net, "_is_blocked_ip", lambda ip: ip != ipaddress.ip_address(PUBLIC) and blocked(ip))


class Recorder:
    def __init__(self, host: str = INTERNAL, **config: Any) -> None:
        self.hits: list[dict[str, str]] = []

        async def anything(request: Request) -> Response:
            self.hits.append({"path": request.url.path, "host": request.headers.get("host", "")})
            if request.url.path.startswith("/redirect"):
                return RedirectResponse(request.query_params["to"], status_code=307)
            return JSONResponse({"host": request.headers.get("host")})

        routes = [Route("/{path:path}", anything, methods=["GET", "POST"])]
        self.server = LiveServer(Starlette(routes=routes), host=host, **config)

    @property
    def port(self) -> int:
        return self.server.port


@pytest.fixture
def internal() -> Iterator[Recorder]:
    recorder = Recorder()
    recorder.server.start()
    yield recorder
    recorder.server.stop()


async def test_a_rebinding_name_never_reaches_the_private_address(
    monkeypatch: pytest.MonkeyPatch, public_loopback: None, internal: Recorder
) -> None:
    resolver = Resolver(monkeypatch, {"rebind.test": [PUBLIC, INTERNAL]})
    url = f"http://rebind.test:{internal.port}/internal/admin"
    async with CustomerClient(allow_private=False) as client:
        with pytest.raises(BlockedURL, match="private or loopback"):
            await customer_request(client, "POST", url, allow_private=False, timeout=3, json={})
    assert internal.hits == []
    assert resolver.lookups == ["rebind.test", "rebind.test"]  # checked early, then at connect


async def test_a_redirect_hop_is_checked_where_it_connects(
    monkeypatch: pytest.MonkeyPatch, public_loopback: None, internal: Recorder
) -> None:
    front = Recorder(host=PUBLIC)  # a "public" server that redirects into a rebinding name
    front.server.start()
    try:
        Resolver(monkeypatch, {"front.test": [PUBLIC], "rebind.test": [PUBLIC, INTERNAL]})
        target = f"http://rebind.test:{internal.port}/internal/admin"
        url = f"http://front.test:{front.port}/redirect?to={target}"
        async with CustomerClient(allow_private=False) as client:
            with pytest.raises(BlockedURL):
                await customer_request(client, "GET", url, allow_private=False, timeout=3)
        assert [h["path"] for h in front.hits] == ["/redirect"]
        assert front.hits[0]["host"] == f"front.test:{front.port}"  # the name, not the address
    finally:
        front.server.stop()
    assert internal.hits == []


async def test_the_inbound_webhook_client_checks_where_it_connects(
    monkeypatch: pytest.MonkeyPatch,
    public_loopback: None,
    internal: Recorder,
    db: Database,
    settings: Settings,
) -> None:
    Resolver(monkeypatch, {"rebind.test": [PUBLIC, INTERNAL]})
    router = Router(db, settings.model_copy(update={"allow_private_urls": False}))
    route = RouteSnapshot(
        number_id="n", org_id="o", e164="+14155550100", status="active", carrier="twilio",
        carrier_account_id="a", inbound_webhook_url=f"http://rebind.test:{internal.port}/hook",
    )  # fmt: skip
    call = CallInfo.parse(to="+14155550100", caller="+12125550123", call_id="c", carrier="twilio")

    async def no_agent(*_: object) -> None:
        return None

    try:
        result = await webhook.ask(router.client, route, call, allow_private=False, load_agent=no_agent)
    finally:
        await router.aclose()
    assert result.status == "failed" and result.error == "blocked_url"
    assert internal.hits == []


async def test_event_deliveries_check_where_they_connect(
    monkeypatch: pytest.MonkeyPatch, public_loopback: None, internal: Recorder, db: Database
) -> None:
    Resolver(monkeypatch, {"rebind.test": [PUBLIC, INTERNAL]})
    worker = Worker(db, replace(FAST, allow_private=False))
    now = dt.datetime.now(dt.UTC)
    item = Claimed(
        delivery_id="d1", token="t", endpoint_id="e1", url=f"http://rebind.test:{internal.port}/events",
        secret=new_secret(), event_id="ev1", body="{}", attempts=0,
        retry_until=now + dt.timedelta(hours=1), leased_until=now + dt.timedelta(minutes=1),
    )  # fmt: skip
    try:
        outcome = await worker.send(item)
    finally:
        await worker.aclose()
    assert not outcome.ok and outcome.permanent and (outcome.error or "").startswith("blocked:")
    assert internal.hits == []


async def test_a_pinned_connection_keeps_the_host_name_for_http_and_tls(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(net, "_is_blocked_ip", lambda ip: False)  # 127.0.0.1 counts as public here
    ca = trustme.CA()
    cert = ca.issue_cert("named.test")  # for the name only: no IP address in the certificate
    key_file, cert_file = tmp_path / "key.pem", tmp_path / "cert.pem"
    cert.private_key_pem.write_to_path(key_file)
    cert.cert_chain_pems[0].write_to_path(cert_file)
    tls = Recorder(ssl_keyfile=str(key_file), ssl_certfile=str(cert_file))
    tls.server.start()
    try:
        resolver = Resolver(monkeypatch, {"named.test": [INTERNAL]})
        trust = ssl.create_default_context()
        ca.configure_trust(trust)
        async with CustomerClient(allow_private=False, verify=trust) as client:
            url = f"https://named.test:{tls.port}/echo"
            response = await customer_request(client, "GET", url, allow_private=False, timeout=5)
        assert response.status_code == 200
        assert response.json()["host"] == f"named.test:{tls.port}"
        assert resolver.lookups == ["named.test", "named.test"]  # the pinned path was taken
        # The same address by number fails TLS verification: the name is what was verified.
        async with CustomerClient(allow_private=False, verify=trust) as client:
            with pytest.raises(httpx.ConnectError, match=r"(?i)certificate"):
                await customer_request(
                    client, "GET", f"https://127.0.0.1:{tls.port}/echo", allow_private=False, timeout=5
                )
    finally:
        tls.server.stop()

"""A tenant never chooses where the server sends carrier traffic (issue 10, item 1).

``api_base_url`` is the operator's (a platform account's own, or NUMBERPLANE_<CARRIER>_API_BASE_URL):
an org that sends one is refused by name and nothing is sent anywhere; a SignalWire space names a
host under signalwire.com only; an org account stored with a base URL before this was enforced
does not use it; a carrier's redirect is never followed and what an internal reply said never
reaches the tenant.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from numberplane.carriers.models import CarrierAccount
from numberplane.carriers.registry import adapter_for
from numberplane.kernel.crypto import encrypt
from numberplane.kernel.ids import new_id
from tests.support import LiveServer, OrgCreds, operator_base_url

URL = "/v1/carrier-accounts"
SID = "AC" + "1" * 32
SECRET_WORDS = "INTERNAL-ADMIN-SECRET"


class Internal:
    """Something on the operator's network that must never hear from a tenant's request."""

    def __init__(self) -> None:
        self.hits: list[str] = []

        async def anything(request: Request) -> Response:
            self.hits.append(f"{request.method} {request.url.path}")
            return JSONResponse({"message": SECRET_WORDS, "code": 1, "sid": SID})

        self.server = LiveServer(
            Starlette(routes=[Route("/{path:path}", anything, methods=["GET", "POST", "DELETE"])])
        )

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture
def internal() -> Iterator[Internal]:
    target = Internal()
    target.server.start()
    yield target
    target.server.stop()


class Redirecting:
    """A 'carrier' that answers every request with a redirect into the internal network, or (for
    /chatty) a refusal whose body quotes internal content at length."""

    def __init__(self, to: str) -> None:
        async def redirect(request: Request) -> Response:
            if "chatty" in request.url.path:
                words = f"{SECRET_WORDS} " + "x" * 5000 + "\x01\x02"
                return JSONResponse({"code": 20003, "message": words}, status_code=401)
            return RedirectResponse(to, status_code=302)

        self.server = LiveServer(Starlette(routes=[Route("/{path:path}", redirect, methods=["GET"])]))


def creds(carrier: str) -> dict[str, str]:
    return {
        "twilio": {"account_sid": SID, "auth_token": "t" * 32},
        "telnyx": {"api_key": "KEY1", "texml_application_id": "123"},
        "signalwire": {"space": "acme", "project_id": "p-1", "api_token": "PT1"},
        "vonage": {"api_key": "abc123", "api_secret": "s", "signature_secret": "sig"},
    }[carrier]


@pytest.mark.parametrize("carrier", ["twilio", "telnyx", "signalwire", "vonage"])
async def test_an_org_cannot_choose_the_api_base_url(
    client: httpx.AsyncClient, org: OrgCreds, internal: Internal, carrier: str
) -> None:
    body: dict[str, Any] = {
        "carrier": carrier,
        "name": "probe",
        "credentials": creds(carrier),
        "api_base_url": f"{internal.url}/internal/admin/delete-everything#",
    }
    response = await client.post(URL, json=body, headers=org.bearer)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "validation_failed"
    (error,) = problem["errors"]
    assert error["field"] == "api_base_url" and "operator" in error["message"]
    assert internal.hits == []  # nothing was sent anywhere
    listed = await client.get(URL, headers=org.bearer)
    assert carrier not in [a["carrier"] for a in listed.json()["data"]]


@pytest.mark.parametrize("space", ["127.0.0.1", "internal.corp", "acme.signalwire.com.evil.example", "x:1"])
async def test_a_signalwire_space_names_a_signalwire_host_only(
    client: httpx.AsyncClient, org: OrgCreds, space: str
) -> None:
    body = {"carrier": "signalwire", "name": "sw", "credentials": {**creds("signalwire"), "space": space}}
    response = await client.post(URL, json=body, headers=org.bearer)
    assert response.status_code == 422, response.text
    assert "credentials.space: must be your space name" in response.json()["detail"]


def _org_account(carrier: str, config: dict[str, Any], org_id: str | None) -> CarrierAccount:
    secrets = {k: v for k, v in creds(carrier).items() if k not in config}
    return CarrierAccount(
        id=new_id(),
        org_id=org_id,
        carrier=carrier,
        name="legacy",
        config=config,
        credentials_enc=encrypt(json.dumps(secrets)),
    )


def test_a_stored_org_base_url_is_never_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """Accounts stored before the API refused api_base_url keep it in config: it is ignored."""
    sneaky = "http://127.0.0.1:18111/internal"
    twilio = _org_account("twilio", {"account_sid": SID, "api_base_url": sneaky}, org_id=new_id())
    assert adapter_for(twilio, db=None).base_url == "https://api.twilio.com"  # type: ignore[arg-type, attr-defined]
    sw = _org_account("signalwire", {"space": "acme", "project_id": "p", "api_base_url": sneaky}, new_id())
    assert adapter_for(sw, db=None).base_url == "https://acme.signalwire.com"  # type: ignore[arg-type, attr-defined]
    legacy_space = _org_account("signalwire", {"space": "10.0.0.1", "project_id": "p"}, new_id())
    assert adapter_for(legacy_space, db=None).base_url == ""  # type: ignore[arg-type, attr-defined]
    # The operator's setting applies to every org account; a platform account's own URL wins.
    operator_base_url(monkeypatch, "signalwire", "https://{space}.edge.example")
    assert adapter_for(sw, db=None).base_url == "https://acme.edge.example"  # type: ignore[arg-type, attr-defined]
    platform = _org_account("twilio", {"account_sid": SID, "api_base_url": "https://ie1.example"}, None)
    assert adapter_for(platform, db=None).base_url == "https://ie1.example"  # type: ignore[arg-type, attr-defined]


async def test_a_legacy_space_sends_nothing(internal: Internal) -> None:
    from numberplane.carriers.base import CarrierRejected

    legacy = _org_account("signalwire", {"space": "127.0.0.1", "project_id": "p"}, new_id())
    with pytest.raises(CarrierRejected, match="no usable SignalWire API address"):
        await adapter_for(legacy, db=None).verify_credentials()  # type: ignore[arg-type]
    assert internal.hits == []


async def test_redirects_are_not_followed_and_internal_words_stay_inside(
    client: httpx.AsyncClient, org: OrgCreds, internal: Internal, monkeypatch: pytest.MonkeyPatch
) -> None:
    carrier = Redirecting(f"{internal.url}/internal/admin/delete-everything")
    carrier.server.start()
    try:
        operator_base_url(monkeypatch, "twilio", carrier.server.url)
        body = {"carrier": "twilio", "name": "t", "credentials": creds("twilio")}
        response = await client.post(URL, json=body, headers=org.bearer)
        # Before: the 302 read as success and the account was stored.
        assert response.status_code == 424, response.text
        assert "redirect" in response.json()["detail"] and "internal" not in response.text
        assert internal.hits == []

        operator_base_url(monkeypatch, "twilio", carrier.server.url + "/chatty")
        response = await client.post(URL, json=body, headers=org.bearer)
        assert response.status_code == 424, response.text
        detail = response.json()["detail"]
        assert len(detail) < 400 and "\x01" not in detail and "xxxxxxxxxx" * 30 not in detail
    finally:
        carrier.server.stop()
    listed = await client.get(URL, headers=org.bearer)
    assert [a["carrier"] for a in listed.json()["data"]] == ["sandbox"]

"""Fake carriers on loopback, and adapters pointed at them with short timeouts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from numberplane.carriers.base import CarrierAdapter
from numberplane.carriers.models import CarrierAccount
from numberplane.carriers.registry import adapter_for
from numberplane.kernel.crypto import encrypt
from numberplane.kernel.ids import new_id
from tests.fakes.signalwire import FakeSignalWire
from tests.fakes.telnyx import FakeTelnyx
from tests.fakes.twilio import FakeTwilio
from tests.support import operator_base_url

# Short enough that a hang costs little, long enough for a loaded CI box to answer.
CLIENT_TIMEOUT = 1.0


# Each fake is where the operator points that carrier's API (NUMBERPLANE_<CARRIER>_API_BASE_URL)
# for the test: an org's account never chooses its own base URL.


@pytest.fixture
def fake_twilio(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTwilio]:
    fake = FakeTwilio()
    fake.start()
    operator_base_url(monkeypatch, "twilio", fake.url)
    yield fake
    fake.stop()


@pytest.fixture
def fake_telnyx(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTelnyx]:
    fake = FakeTelnyx()
    fake.start()
    operator_base_url(monkeypatch, "telnyx", fake.url + "/v2")
    yield fake
    fake.stop()


@pytest.fixture
def fake_signalwire(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSignalWire]:
    fake = FakeSignalWire()
    fake.start()
    operator_base_url(monkeypatch, "signalwire", fake.url)
    yield fake
    fake.stop()


def account(carrier: str, config: dict[str, Any], credentials: dict[str, Any]) -> CarrierAccount:
    """An unsaved account: adapters need only its id, config and encrypted credentials."""
    return CarrierAccount(
        id=new_id(),
        org_id=None,
        carrier=carrier,
        name=f"test {carrier}",
        config={"timeout_seconds": CLIENT_TIMEOUT, **config},
        credentials_enc=encrypt(json.dumps(credentials)),
    )


def twilio_adapter(fake: FakeTwilio, *, api_key: bool = False, **config: Any) -> CarrierAdapter:
    creds: dict[str, Any]
    cfg: dict[str, Any] = {"account_sid": fake.account_sid, "api_base_url": fake.url, **config}
    if api_key:
        cfg["api_key_sid"] = fake.api_key_sid
        creds = {"api_key_secret": fake.api_key_secret}
    else:
        creds = {"auth_token": config.pop("auth_token", fake.auth_token)}
        cfg.pop("auth_token", None)
    return adapter_for(account("twilio", cfg, creds), db=None)  # type: ignore[arg-type]


def telnyx_adapter(fake: FakeTelnyx, **config: Any) -> CarrierAdapter:
    api_key = config.pop("api_key", fake.api_key)
    cfg = {
        "api_base_url": fake.url + "/v2",
        "texml_application_id": fake.texml_application_id,
        "order_poll_interval": 0,
        **config,
    }
    return adapter_for(account("telnyx", cfg, {"api_key": api_key}), db=None)  # type: ignore[arg-type]


def signalwire_adapter(fake: FakeSignalWire, **config: Any) -> CarrierAdapter:
    token = config.pop("api_token", fake.api_token)
    cfg = {"space": fake.space, "project_id": fake.project_id, "api_base_url": fake.url, **config}
    creds = {"api_token": token, "signing_key": fake.signing_key}
    return adapter_for(account("signalwire", cfg, creds), db=None)  # type: ignore[arg-type]

"""Credentials never reach a log line, on success or on failure, at any level."""

from __future__ import annotations

import base64
import logging

import pytest

from numberplane.carriers.base import CarrierError, SearchQuery
from numberplane.carriers.urls import number_config_for
from tests.carriers.conftest import signalwire_adapter, telnyx_adapter, twilio_adapter
from tests.fakes.signalwire import FakeSignalWire
from tests.fakes.telnyx import FakeTelnyx
from tests.fakes.twilio import FakeTwilio


async def test_no_credentials_in_logs(
    caplog: pytest.LogCaptureFixture,
    fake_twilio: FakeTwilio,
    fake_telnyx: FakeTelnyx,
    fake_signalwire: FakeSignalWire,
) -> None:
    caplog.set_level(logging.DEBUG)
    config = number_config_for(
        carrier="twilio", public_url="https://np.example.com", sms=True, friendly_name=None
    )
    adapters = [
        (twilio_adapter(fake_twilio), fake_twilio, "+14155550100"),
        (twilio_adapter(fake_twilio, api_key=True), fake_twilio, "+14155550101"),
        (telnyx_adapter(fake_telnyx), fake_telnyx, "+13125550100"),
        (signalwire_adapter(fake_signalwire), fake_signalwire, "+12125550100"),
    ]
    for adapter, fake, number in adapters:
        await adapter.verify_credentials()
        await adapter.search(SearchQuery(area_code=number[2:5], limit=2))
        await adapter.buy(phone_number=number, reference="ref", config=config)
        fake.faults.fail("search", 500)
        with pytest.raises(CarrierError):
            await adapter.search(SearchQuery(area_code=number[2:5]))
    secrets = [
        fake_twilio.auth_token,
        fake_twilio.api_key_secret,
        fake_telnyx.api_key,
        fake_signalwire.api_token,
        fake_signalwire.signing_key,
    ]
    basic = [
        base64.b64encode(f"{fake_twilio.account_sid}:{fake_twilio.auth_token}".encode()).decode(),
        base64.b64encode(f"{fake_signalwire.project_id}:{fake_signalwire.api_token}".encode()).decode(),
    ]
    secrets += basic
    assert caplog.records  # the calls were logged...
    for secret in secrets:
        assert secret not in caplog.text  # ...without their credentials
    for bad in (
        twilio_adapter(fake_twilio, auth_token="wrong-token-123"),
        telnyx_adapter(fake_telnyx, api_key="KEYwrong123"),
        signalwire_adapter(fake_signalwire, api_token="PTwrong123"),
    ):
        with pytest.raises(CarrierError) as err:
            await bad.verify_credentials()
        for leaked in ("wrong-token-123", "KEYwrong123", "PTwrong123"):
            assert leaked not in str(err.value) and leaked not in (err.value.detail or "")
    assert not any(s in caplog.text for s in ("wrong-token-123", "KEYwrong123", "PTwrong123"))

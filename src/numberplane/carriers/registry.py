"""Build the adapter for a carrier account: the table of carriers Numberplane speaks to.

Add a carrier by writing its adapter module (the ``CarrierAdapter`` protocol in ``base``) and
adding it to ``ADAPTERS``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from numberplane.carriers.base import CarrierAdapter
from numberplane.carriers.models import CarrierAccount
from numberplane.carriers.sandbox import SandboxCarrier
from numberplane.carriers.signalwire import SignalWireCarrier
from numberplane.carriers.telnyx import TelnyxCarrier
from numberplane.carriers.twilio import TwilioCarrier
from numberplane.kernel.crypto import decrypt
from numberplane.kernel.db import Database

Factory = Callable[..., CarrierAdapter]
ADAPTERS: dict[str, Factory] = {
    "sandbox": SandboxCarrier,
    "twilio": TwilioCarrier,
    "telnyx": TelnyxCarrier,
    "signalwire": SignalWireCarrier,
}
CARRIERS = tuple(ADAPTERS)


def credentials_of(account: CarrierAccount) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(decrypt(account.credentials_enc))
    return data


def adapter_for(account: CarrierAccount, *, db: Database) -> CarrierAdapter:
    """The adapter that speaks to ``account``'s carrier with its decrypted credentials."""
    factory = ADAPTERS.get(account.carrier)
    if factory is None:
        raise LookupError(f"no adapter for carrier {account.carrier!r}")
    return factory(account=account, credentials=credentials_of(account), db=db)


def supported() -> tuple[str, ...]:
    return CARRIERS

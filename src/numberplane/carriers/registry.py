"""Build the adapter for a carrier account. Each adapter module registers its factory here."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from typing import Any

from numberplane.carriers.base import CarrierAdapter
from numberplane.carriers.models import CarrierAccount
from numberplane.kernel.crypto import decrypt
from numberplane.kernel.db import Database

Factory = Callable[..., CarrierAdapter]
_FACTORIES: dict[str, Factory] = {}
# Modules that register an adapter on import. Add a carrier by adding its module here.
BUILTIN = ("sandbox", "twilio", "telnyx", "signalwire")
CARRIERS = BUILTIN


def register(carrier: str, factory: Factory) -> None:
    _FACTORIES[carrier] = factory


def _ensure_loaded(carrier: str) -> None:
    if carrier in _FACTORIES or carrier not in BUILTIN:
        return
    try:
        importlib.import_module(f"numberplane.carriers.{carrier}")
    except ModuleNotFoundError as exc:
        if exc.name != f"numberplane.carriers.{carrier}":
            raise


def credentials_of(account: CarrierAccount) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(decrypt(account.credentials_enc))
    return data


def adapter_for(account: CarrierAccount, *, db: Database) -> CarrierAdapter:
    """The adapter that speaks to ``account``'s carrier with its decrypted credentials."""
    _ensure_loaded(account.carrier)
    factory = _FACTORIES.get(account.carrier)
    if factory is None:
        raise LookupError(f"no adapter for carrier {account.carrier!r}")
    return factory(account=account, credentials=credentials_of(account), db=db)


def supported() -> tuple[str, ...]:
    return CARRIERS

"""The row an import writes for a number: plain dicts (Core executemany is several times
faster than ORM objects at 100,000 rows), built from a validated row's settings."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Table

from numberplane.carriers.models import CarrierAccount
from numberplane.kernel import e164
from numberplane.kernel.db import epoch_ms
from numberplane.kernel.ids import new_id
from numberplane.numbers.configuration import apply_config, binding_rows
from numberplane.numbers.schemas import PhoneNumberImportRow

# Column defaults for an imported row (attribute name -> value), before its settings apply.
_IMPORT_DEFAULTS: dict[str, Any] = {
    "carrier_sync": None,
    "name": None,
    "language": None,
    "voice": None,
    "inbound_webhook_url": None,
    "inbound_webhook_timeout_ms": None,
    "inbound_webhook_attempts": None,
    "inbound_sms_webhook_url": None,
    "fallback": None,
    "call_handler": None,
    "message_handler": None,
    "sip_inbound": None,
    "sip_outbound": None,
    "sip_inbound_password_enc": None,
    "sip_outbound_password_enc": None,
    "verified_caller_id": None,
    "callback_forwarding_number": None,
    "allowed_inbound_countries": None,
    "allowed_outbound_countries": None,
    "emergency_address_id": None,
    "emergency_status": None,
    "next_billed_at": None,
    "released_at": None,
    "carrier_reference": None,
}
_COLUMN_OF = {"meta": "metadata"}


@dataclass
class Prepared:
    """A row that passed validation: its 0-based index, settings, parsed number and carrier."""

    index: int
    row: PhoneNumberImportRow
    parsed: e164.ParsedNumber
    fields: set[str]
    carrier: str | None = None
    account: CarrierAccount | None = None
    carrier_number_id: str | None = None


Built = tuple[Prepared, dict[str, Any], list[dict[str, Any]]]


def import_row_values(
    p: Prepared, org_id: str, now: dt.datetime
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A plain dict per row (Core executemany is several times faster than ORM objects at 100k rows)."""
    row = p.row
    values = SimpleNamespace(
        **_IMPORT_DEFAULTS,
        id=new_id(),
        org_id=org_id,
        phone_number=p.parsed.e164,
        country=p.parsed.country,
        area_code=p.parsed.area_code,
        number_type=row.number_type or p.parsed.number_type,
        capabilities={"voice": True, "sms": False, "mms": False, "fax": False},
        status="active",
        origin="imported",
        carrier=p.carrier or "sip",
        carrier_account_id=row.carrier_account_id,
        carrier_number_id=p.carrier_number_id or row.carrier_number_id,
        outbound=False,
        meta={},
        extras={},
        created_at=now,
        updated_at=now,
        last_modification_ms=epoch_ms(now),
    )
    apply_config(values, row, p.fields)
    record = {_COLUMN_OF.get(k, k): v for k, v in vars(values).items()}
    return record, binding_rows(values.id, row, p.fields)


def table_of(model: Any) -> Table:
    table: Table = model.__table__
    return table

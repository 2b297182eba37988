"""A retried import is safe: rows it already imported read ``unchanged``.

A client whose import was cut off (the server killed after some chunks committed) sends the
same request again. A row whose number this org already holds, imported with exactly the
settings the row asks for, is reported ``unchanged`` (with its id), not as an error; a row
asking for different settings still fails ``already_exists`` (an import never overwrites).
An ``Idempotency-Key`` on the import replays the first report (``import_keys``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from numberplane.kernel.crypto import decrypt
from numberplane.kernel.db import Database
from numberplane.numbers.models import PhoneNumber, PhoneNumberAgent

# Columns an import does not choose (identity, lifecycle, what the carrier says).
_NOT_SETTINGS = {
    "id",
    "org_id",
    "phone_number",
    "country",
    "area_code",
    "status",
    "origin",
    "carrier",
    "carrier_number_id",
    "carrier_reference",
    "carrier_sync",
    "emergency_status",
    "next_billed_at",
    "released_at",
    "created_at",
    "updated_at",
    "last_modification_ms",
}
_SECRETS = ("sip_inbound_password_enc", "sip_outbound_password_enc")
Wanted = tuple[str, dict[str, Any], list[dict[str, Any]]]  # (stored id, record, binding rows)


async def unchanged_ids(db: Database, wanted: Sequence[Wanted]) -> set[str]:
    """The stored numbers (by id) that already are what these records and bindings would write."""
    if not wanted:
        return set()
    table = PhoneNumber.__table__
    ids = [w[0] for w in wanted]
    stored: dict[str, Any] = {}
    bindings: dict[str, set[tuple[Any, ...]]] = {i: set() for i in ids}
    async with db.session() as session:
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            found = await session.execute(
                select(table).where(table.c.id.in_(part), table.c.origin == "imported")
            )
            stored.update({m["id"]: dict(m) for m in found.mappings()})
            for b in await session.execute(
                select(PhoneNumberAgent).where(PhoneNumberAgent.phone_number_id.in_(part))
            ):
                bindings[b[0].phone_number_id].add(_binding(vars(b[0])))
    same = set()
    for number_id, record, rows in wanted:
        held = stored.get(number_id)
        if held is None or {_binding(r) for r in rows} != bindings[number_id]:
            continue
        if all(_same(key, value, held.get(key)) for key, value in record.items() if key not in _NOT_SETTINGS):
            same.add(number_id)
    return same


def _binding(row: dict[str, Any]) -> tuple[Any, ...]:
    return (
        row["direction"],
        row["agent_id"],
        row["version"],
        round(float(row["weight"]), 9),
        row["position"],
    )


def _same(key: str, wanted: Any, stored: Any) -> bool:
    if key in _SECRETS:
        return (wanted and decrypt(wanted)) == (stored and decrypt(stored))
    return bool(_canonical(wanted) == _canonical(stored))


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value

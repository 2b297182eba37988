"""The built-in offline carrier: deterministic inventory from fictional ranges.

NANP: NXX-555-0100..0199 (reserved for fiction); UK: Ofcom's drama ranges (020 7946 0XXX,
0113 496 0XXX, 0161 496 0XXX, 0808 157 0XXX). A fresh install can search, buy and release
with no account anywhere. The sandbox keeps its own books (``sandbox_numbers``) in its own
transaction, exactly as a remote carrier would, so the purchase-order logic is the same.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from numberplane.carriers.base import (
    AvailableNumber,
    CarrierNotFound,
    CarrierNumber,
    CarrierRejected,
    NoNumbersAvailable,
    NumberConfig,
    NumberUnavailable,
    SearchQuery,
)
from numberplane.carriers.models import CarrierAccount, SandboxNumber
from numberplane.kernel import e164
from numberplane.kernel.db import Database
from numberplane.kernel.ids import new_id

NANP_DEFAULT_AREAS = {
    "US": ("415", "212", "312", "512", "646", "206", "303", "617", "202", "213", "305", "404"),
    "CA": ("416", "604", "514", "613", "403", "780"),
}
NANP_TOLL_FREE = ("800", "833", "844", "855", "866", "877", "888")
GB_LOCAL = {"20": "+44207946", "113": "+44113496", "161": "+44161496"}
GB_TOLL_FREE = {"808": "+44808157"}
SUPPORTED_COUNTRIES = ("US", "CA", "GB")
_MAX_SCAN = 2_000


def _nanp_block(area: str, kind: str) -> Iterator[str]:
    lo, hi = (100, 175) if kind == "local" else (175, 200)
    if kind == "toll_free":
        lo, hi = 100, 200
    for line in range(lo, hi):
        yield f"+1{area}5550{line:03d}"


def _gb_block(prefix: str) -> Iterator[str]:
    for line in range(0, 1000):
        yield f"{prefix}0{line:03d}"


def inventory(query: SearchQuery) -> Iterator[str]:
    """Every number the sandbox could sell for this query, in a stable order."""
    country = query.country.upper()
    kind = query.number_type
    area = query.area_code
    areas: tuple[str, ...]
    if country in ("US", "CA"):
        if kind == "toll_free":
            areas = (area,) if area else NANP_TOLL_FREE
            if area and area not in NANP_TOLL_FREE:
                return
        elif kind in ("local", "mobile"):
            if area in NANP_TOLL_FREE:
                return
            areas = (area,) if area else NANP_DEFAULT_AREAS[country]
        else:
            return
        for code in areas:
            for number in _nanp_block(code, kind):
                parsed = _valid(number)
                if parsed and parsed.country == country:
                    yield number
    elif country == "GB":
        table = GB_TOLL_FREE if kind == "toll_free" else GB_LOCAL if kind == "local" else {}
        keys = [area] if area else list(table)
        for key in keys:
            if key not in table:
                continue
            yield from (n for n in _gb_block(table[key]) if _valid(n))


def _valid(number: str) -> e164.ParsedNumber | None:
    try:
        return e164.parse(number)
    except e164.InvalidPhoneNumber:
        return None


def in_inventory(phone_number: str) -> bool:
    parsed = _valid(phone_number)
    if parsed is None or parsed.country not in SUPPORTED_COUNTRIES:
        return False
    kinds = ("toll_free",) if parsed.number_type == "toll_free" else ("local", "mobile")
    for kind in kinds:
        query = SearchQuery(country=parsed.country, number_type=kind, area_code=parsed.area_code)
        if phone_number in set(inventory(query)):
            return True
    return False


class SandboxCarrier:
    carrier = "sandbox"

    def __init__(self, *, account: CarrierAccount, credentials: dict[str, Any], db: Database) -> None:
        self.account_id = account.id
        self.db = db

    async def verify_credentials(self) -> None:
        return None

    async def search(self, query: SearchQuery) -> list[AvailableNumber]:
        if query.country.upper() not in SUPPORTED_COUNTRIES:
            raise CarrierRejected(f"the sandbox has no inventory in {query.country}", carrier=self.carrier)
        limit = max(1, min(query.limit, 100))
        candidates: list[str] = []
        for scanned, number in enumerate(inventory(query)):
            if scanned >= _MAX_SCAN:
                break
            if query.contains and query.contains not in number:
                continue
            candidates.append(number)
        async with self.db.session() as session:
            sold: set[str] = set()
            for start in range(0, len(candidates), 500):
                chunk = candidates[start : start + 500]
                rows = await session.scalars(
                    select(SandboxNumber.phone_number).where(SandboxNumber.phone_number.in_(chunk))
                )
                sold.update(rows)
        out: list[AvailableNumber] = []
        for number in candidates:
            if number in sold:
                continue
            parsed = e164.parse(number)
            out.append(
                AvailableNumber(
                    phone_number=number,
                    country=parsed.country or query.country,
                    number_type=query.number_type,
                    area_code=parsed.area_code,
                    locality="Sandbox",
                    region=parsed.country,
                    capabilities={
                        "voice": True,
                        "sms": True,
                        "mms": parsed.country in ("US", "CA"),
                        "fax": False,
                    },
                    monthly_cost="0.00",
                    currency="USD",
                )
            )
            if len(out) >= limit:
                break
        if not out:
            raise NoNumbersAvailable(
                "the sandbox has no numbers left for that search"
                + (f" in area code {query.area_code}" if query.area_code else ""),
                carrier=self.carrier,
            )
        return out

    async def buy(self, *, phone_number: str, reference: str, config: NumberConfig) -> CarrierNumber:
        if not in_inventory(phone_number):
            raise NumberUnavailable(
                f"{phone_number} is not in the sandbox's fictional ranges", carrier=self.carrier
            )
        row = SandboxNumber(
            phone_number=phone_number,
            carrier_number_id="SB" + new_id().replace("-", ""),
            account_id=self.account_id,
            reference=reference,
            friendly_name=config.friendly_name,
            voice_url=config.voice_url,
            voice_fallback_url=config.voice_fallback_url,
            status_callback_url=config.status_callback_url,
            sms_url=config.sms_url,
        )
        async with self.db.session() as session:
            session.add(row)
            try:
                await session.commit()
            except IntegrityError as exc:
                raise NumberUnavailable(
                    f"{phone_number} is no longer available", carrier=self.carrier
                ) from exc
        return self._out(row)

    async def find(self, *, phone_number: str, reference: str | None = None) -> CarrierNumber | None:
        async with self.db.session() as session:
            row = await session.get(SandboxNumber, phone_number)
        if row is None or row.account_id != self.account_id:
            return None
        return self._out(row)

    async def configure(self, *, carrier_number_id: str, config: NumberConfig) -> CarrierNumber:
        async with self.db.session() as session:
            result = await session.execute(
                update(SandboxNumber)
                .where(
                    SandboxNumber.carrier_number_id == carrier_number_id,
                    SandboxNumber.account_id == self.account_id,
                )
                .values(
                    voice_url=config.voice_url,
                    voice_fallback_url=config.voice_fallback_url,
                    status_callback_url=config.status_callback_url,
                    sms_url=config.sms_url,
                    friendly_name=config.friendly_name,
                )
            )
            await session.commit()
            if getattr(result, "rowcount", 0) == 0:
                raise CarrierNotFound(
                    f"{carrier_number_id} is not held by this account", carrier=self.carrier
                )
            row = await session.scalar(
                select(SandboxNumber).where(SandboxNumber.carrier_number_id == carrier_number_id)
            )
        assert row is not None
        return self._out(row)

    async def release(self, *, carrier_number_id: str) -> None:
        async with self.db.session() as session:
            await session.execute(
                delete(SandboxNumber).where(
                    SandboxNumber.carrier_number_id == carrier_number_id,
                    SandboxNumber.account_id == self.account_id,
                )
            )
            await session.commit()

    async def list_owned(self) -> AsyncIterator[CarrierNumber]:
        last = ""
        while True:
            async with self.db.session() as session:
                rows = list(
                    await session.scalars(
                        select(SandboxNumber)
                        .where(SandboxNumber.account_id == self.account_id, SandboxNumber.phone_number > last)
                        .order_by(SandboxNumber.phone_number)
                        .limit(500)
                    )
                )
            for row in rows:
                yield self._out(row)
            if len(rows) < 500:
                return
            last = rows[-1].phone_number

    @staticmethod
    def _out(row: SandboxNumber) -> CarrierNumber:
        return CarrierNumber(
            carrier_number_id=row.carrier_number_id,
            phone_number=row.phone_number,
            voice_url=row.voice_url,
            sms_url=row.sms_url,
            reference=row.reference,
            status="active",
        )

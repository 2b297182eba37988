"""Releasing a number: at the carrier first, then a ``released`` record is kept.

``release_number`` marks the number ``releasing`` (one unit of work: it stops routing at once),
asks the carrier to let it go, then records ``released`` (``lifecycle.mark_released``). If the
carrier refuses or times out, the number stays visibly ``releasing`` with the carrier's answer
recorded; ``finish_releases`` (run by reconcile) tries again. A second release is harmless.
Imported numbers are not released at their carrier: the org owns them elsewhere.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from numberplane.carriers.base import CarrierError
from numberplane.carriers.models import CarrierAccount
from numberplane.carriers.registry import adapter_for
from numberplane.kernel import faults
from numberplane.kernel.changes import numbers_changed
from numberplane.kernel.db import Actor, Database, utcnow
from numberplane.kernel.errors import Conflict
from numberplane.kernel.outbox import audit
from numberplane.numbers import lifecycle
from numberplane.numbers.models import PhoneNumber
from numberplane.numbers.reading import current, read_one, resolve, snapshot
from numberplane.numbers.schemas import PhoneNumberRead

log = logging.getLogger("numberplane.numbers")


async def release_number(*, db: Database, actor: Actor, ref: str) -> PhoneNumberRead:
    """Release at the carrier first, then keep a ``released`` record. A second call is harmless."""
    assert actor.org_id is not None
    async with db.uow(actor) as uow:
        pn = await resolve(uow.session, actor.org_id, ref, for_update=True)
        if pn.status in ("released", "failed"):
            return await read_one(uow.session, pn)
        if pn.status == "pending":
            raise Conflict(
                f"the purchase of {pn.phone_number} is still in flight; release it once it completes",
                code="purchase_in_flight",
            )
        if pn.status == "active":
            before = snapshot(await read_one(uow.session, pn))
            pn.status = "releasing"
            pn.touch()
            audit(
                uow,
                action="phone_number.release_requested",
                target_type="phone_number",
                target_id=pn.id,
                before=before,
                after={"status": "releasing"},
            )
            numbers_changed(uow, [pn.phone_number])
        pn_id = pn.id
        await uow.commit()
    faults.point("release.after_mark")
    return await _release_at_carrier(db, actor, pn_id)


async def _release_at_carrier(db: Database, actor: Actor, pn_id: str) -> PhoneNumberRead:
    async with db.session() as session:
        pn = await session.get(PhoneNumber, pn_id)
        assert pn is not None
        account = await session.get(CarrierAccount, pn.carrier_account_id) if pn.carrier_account_id else None
    if pn.status != "releasing":
        return await current(db, pn_id)
    if pn.origin == "purchased" and account is not None and pn.carrier_number_id:
        try:
            await adapter_for(account, db=db).release(carrier_number_id=pn.carrier_number_id)
        except CarrierError as exc:
            log.warning(
                "release of %s at %s failed (%s); left releasing for reconcile",
                pn.phone_number,
                exc.carrier,
                exc.code,
            )
            sync = {"status": "release_failed", "error": exc.message, "checked_at": utcnow().isoformat()}
            async with db.uow(actor) as uow:
                if await lifecycle.record_carrier_sync(
                    uow, pn_id, sync, action="phone_number.release_failed", only_if_status="releasing"
                ):
                    await uow.commit()
            return await current(db, pn_id)
    faults.point("release.after_carrier")
    async with db.uow(actor) as uow:
        read = await lifecycle.mark_released(uow, pn_id, from_status="releasing")
        if read is None:
            await uow.rollback()
            return await current(db, pn_id)
        await uow.commit()
    return read


async def finish_releases(*, db: Database, account_id: str | None = None, limit: int = 200) -> dict[str, int]:
    """Retry the carrier release for numbers left ``releasing``. Returns counts by outcome."""
    query = (
        select(PhoneNumber.id, PhoneNumber.org_id)
        .where(PhoneNumber.status == "releasing")
        .order_by(PhoneNumber.id)
        .limit(limit)
    )
    if account_id:
        query = query.where(PhoneNumber.carrier_account_id == account_id)
    async with db.session() as session:
        rows = list(await session.execute(query))
    counts: dict[str, int] = {}
    for row in rows:
        read = await _release_at_carrier(db, Actor.system(row.org_id), row.id)
        counts[read.status] = counts.get(read.status, 0) + 1
    return counts

"""The owners of a number's state changes. Each change exists once, here, and every flow
(purchase, release, reconcile, the worker) calls it inside its own unit of work:

- ``activate``: the carrier holds the number: ``pending`` → ``active``, billed from now;
- ``fail_purchase``: the carrier said no: the order and the number fail;
- ``mark_released``: the carrier let it go (our release) or no longer holds it (found by
  reconcile): ``releasing``/``active`` → ``released``;
- ``record_carrier_sync``: what we last saw or set at the carrier;
- renewal (the billing clock) lives in ``numbers.billing``.

Each records the change's outbox event and audit row in the same unit of work and tells every
process's route cache, so the change, its record and its notification commit together.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import update

from numberplane.carriers.base import NumberConfig
from numberplane.kernel.changes import numbers_changed
from numberplane.kernel.db import UnitOfWork, utcnow
from numberplane.kernel.outbox import audit, record_change
from numberplane.numbers.billing import next_billing
from numberplane.numbers.models import Order, PhoneNumber
from numberplane.numbers.reading import read_one, snapshot
from numberplane.numbers.schemas import PhoneNumberRead


def record(
    uow: UnitOfWork,
    pn: PhoneNumber,
    *,
    event: str,
    action: str,
    data: dict[str, Any],
    after: dict[str, Any] | None,
    before: dict[str, Any] | None = None,
) -> None:
    """A number's change, recorded in the caller's unit of work: its outbox event and its audit row."""
    record_change(
        uow,
        event=event,
        action=action,
        subject_type="phone_number",
        subject_id=pn.id,
        org_id=pn.org_id,
        data=data,
        before=before,
        after=after,
    )


async def activate(
    uow: UnitOfWork, pn: PhoneNumber, carrier_number_id: str, config: NumberConfig | None, now: dt.datetime
) -> PhoneNumberRead:
    """The carrier holds the number: it becomes active, billed from now, pointed at us; the
    creation event and the purchase audit row join the caller's unit of work."""
    pn.status = "active"
    pn.carrier_number_id = carrier_number_id
    pn.next_billed_at = next_billing(now)
    pn.carrier_sync = {
        "status": "ok",
        "voice_url": config.voice_url if config else None,
        "checked_at": now.isoformat(),
    }
    pn.touch()
    await uow.session.flush()
    read = await read_one(uow.session, pn)
    record(
        uow,
        pn,
        event="phone_number.created",
        action="phone_number.purchased",
        data=snapshot(read),
        after=snapshot(read),
    )
    numbers_changed(uow, [pn.phone_number])
    return read


async def fail_purchase(uow: UnitOfWork, order: Order, error: dict[str, Any], *, release_key: bool) -> bool:
    """Record a definite no: the order fails and its number is let go (it was never ours).
    Conditional on the order still pending, so a second settlement changes nothing."""
    values: dict[str, Any] = {"status": "failed", "stage": "failed", "error": error, "updated_at": utcnow()}
    if release_key:
        values["idempotency_key"] = None
    result = await uow.session.execute(
        update(Order).where(Order.id == order.id, Order.status == "pending").values(**values)
    )
    if getattr(result, "rowcount", 0) != 1:
        return False
    pn = await uow.session.get(PhoneNumber, order.phone_number_id)
    assert pn is not None
    pn.status = "failed"
    pn.touch()
    await uow.session.flush()
    record(
        uow,
        pn,
        event="phone_number.purchase_failed",
        action="phone_number.purchase_failed",
        data={"id": pn.id, "phone_number": pn.phone_number, "order_id": order.id, "error": error},
        after={"phone_number": pn.phone_number, "error": error},
    )
    return True


async def mark_released(
    uow: UnitOfWork,
    pn_id: str,
    *,
    from_status: str,
    carrier_sync: dict[str, Any] | None = None,
    action: str = "phone_number.released",
) -> PhoneNumberRead | None:
    """``from_status`` → ``released``: no longer routed, no longer billed, kept as a record.
    Conditional on the number still being in ``from_status`` (None when it was not)."""
    values: dict[str, Any] = {"status": "released", "released_at": utcnow(), "next_billed_at": None}
    if carrier_sync is not None:
        values["carrier_sync"] = carrier_sync
    result = await uow.session.execute(
        update(PhoneNumber).where(PhoneNumber.id == pn_id, PhoneNumber.status == from_status).values(**values)
    )
    if getattr(result, "rowcount", 0) != 1:
        return None
    pn = await uow.session.get(PhoneNumber, pn_id)
    assert pn is not None
    await uow.session.refresh(pn)
    pn.touch()
    await uow.session.flush()
    read = await read_one(uow.session, pn)
    after: dict[str, Any] = {"status": "released"}
    if carrier_sync is not None:
        after["carrier_sync"] = {"status": carrier_sync.get("status")}
    record(
        uow,
        pn,
        event="phone_number.released",
        action=action,
        data=snapshot(read),
        before={"status": from_status},
        after=after,
    )
    numbers_changed(uow, [pn.phone_number])
    return read


async def record_carrier_sync(
    uow: UnitOfWork,
    pn_id: str,
    sync: dict[str, Any],
    *,
    action: str,
    carrier_number_id: str | None = None,
    only_if_status: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> PhoneNumber | None:
    """What we last saw or set at the carrier (``carrier_sync``), audited. Returns the row, or
    None when it is gone or no longer in ``only_if_status``."""
    pn = await uow.session.get(PhoneNumber, pn_id)
    if pn is None or (only_if_status is not None and pn.status != only_if_status):
        return None
    pn.carrier_sync = sync
    if carrier_number_id is not None:
        pn.carrier_number_id = carrier_number_id
    audit(
        uow,
        action=action,
        target_type="phone_number",
        target_id=pn.id,
        before=before,
        after=after if after is not None else {"carrier_sync": sync},
        org_id=pn.org_id,
    )
    return pn

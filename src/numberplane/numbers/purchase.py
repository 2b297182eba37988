"""Buying a number as a durable order.

An ``Order`` is recorded, with the number reserved (status ``pending``; the partial unique
index lets one E.164 be held once in the whole system), *before* the carrier is called. The
order then moves through stages, each a commit of its own unit of work:

    reserved ─claim→ calling ─carrier ok→ completed
                        │ └─carrier says "pending" (async orders)→ carrier_pending → completed|failed
                        └─definite refusal→ failed       ambiguous (timeout, 5xx)→ stays calling

Only one process can claim a ``reserved`` order (a conditional UPDATE), so a crash before the
carrier call is resumed exactly once. An order left in ``calling`` (crash after the call, lost
response, timeout) is never retried blindly: it is resolved by asking the carrier whether it
holds the number (``resolve_order``), with our order id as the reference where the carrier
keeps one. ``numbers.reconcile`` runs ``resolve_pending_orders``.

A purchase may create the number's inbound agent with it (``new_inbound_agent``): the agent is
written in the reservation's unit of work, and a purchase that fails takes it away again in the
unit of work that records the failure, so no flow outside the core ever compensates.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from numberplane.agents import service as agents
from numberplane.agents.schemas import AgentCreate
from numberplane.carriers.base import (
    CarrierAdapter,
    CarrierError,
    CarrierUnavailable,
    NoNumbersAvailable,
    NumberUnavailable,
    SearchQuery,
)
from numberplane.carriers.models import CarrierAccount
from numberplane.carriers.registry import adapter_for
from numberplane.kernel import e164, faults
from numberplane.kernel.db import Actor, Database, as_utc, epoch_ms, utcnow
from numberplane.kernel.errors import AppError, Conflict, FieldError, ValidationFailed
from numberplane.kernel.ids import new_id
from numberplane.kernel.settings import get_settings
from numberplane.numbers import lifecycle
from numberplane.numbers.accounts import account_for, buyable, carrier_error
from numberplane.numbers.configuration import (
    apply_config,
    binding_rows,
    carrier_config,
    check_agents,
    config_fields,
)
from numberplane.numbers.models import Order, PhoneNumber, PhoneNumberAgent
from numberplane.numbers.reading import agent_users, current, read_one
from numberplane.numbers.schemas import AgentBinding, PhoneNumberBuy, PhoneNumberRead
from numberplane.numbers.search import held_numbers

log = logging.getLogger("numberplane.numbers")

MAX_CANDIDATES = 5
ORDER_GRACE_SECONDS = 120.0


@dataclass
class BuyResult:
    number: PhoneNumberRead
    replayed: bool = False

    @property
    def pending(self) -> bool:
        return self.number.status == "pending"


def _fingerprint(data: PhoneNumberBuy, new_agent: AgentCreate | None) -> str:
    raw = data.model_dump_json(exclude_unset=True)
    if new_agent is not None:
        raw += new_agent.model_dump_json(exclude_unset=True)
    return hashlib.sha256(raw.encode()).hexdigest()


async def buy(
    *,
    db: Database,
    actor: Actor,
    data: PhoneNumberBuy,
    idempotency_key: str | None = None,
    new_inbound_agent: AgentCreate | None = None,
) -> BuyResult:
    """Buy a number as a durable order. A retry with the same key returns the first result.

    With ``new_inbound_agent``, that agent is created with the order and bound as the number's
    only inbound agent; it exists only if the purchase does."""
    assert actor.org_id is not None
    org_id = actor.org_id
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 255:
        raise ValidationFailed.field("Idempotency-Key", "must be 1 to 255 characters")
    fingerprint = _fingerprint(data, new_inbound_agent)
    if idempotency_key:
        existing = await _order_id_for_key(db, org_id, idempotency_key)
        if existing is not None:
            return await _replay(db, existing, fingerprint)

    async with db.session() as session:
        account = buyable(await account_for(session, org_id, data.carrier_account_id))
        await check_agents(session, org_id, data)
    adapter = adapter_for(account, db=db)
    candidates = await _candidates(db, adapter, data)

    order_id: str | None = None
    for candidate in candidates[:MAX_CANDIDATES]:
        try:
            order_id = await _reserve(
                db, actor, account, data, candidate, idempotency_key, fingerprint, new_inbound_agent
            )
            break
        except IntegrityError as exc:
            key_order = await _order_id_for_key(db, org_id, idempotency_key) if idempotency_key else None
            if key_order is not None:
                return await _replay(db, key_order, fingerprint)
            if data.phone_number:
                raise Conflict(f"{candidate} is already in use", code="number_unavailable") from exc
            continue
    if order_id is None:
        raise Conflict(
            "every number offered for that search was taken meanwhile; try again", code="no_numbers_available"
        )
    faults.point("buy.after_order")
    number = await execute_order(db=db, order_id=order_id, adapter=adapter, raise_errors=True, actor=actor)
    return BuyResult(number=number)


async def _order_id_for_key(db: Database, org_id: str, key: str) -> str | None:
    async with db.session() as session:
        return await session.scalar(
            select(Order.id).where(Order.org_id == org_id, Order.idempotency_key == key)
        )


async def _candidates(db: Database, adapter: CarrierAdapter, data: PhoneNumberBuy) -> list[str]:
    if data.phone_number:
        return [data.phone_number]
    query = SearchQuery(
        country=data.country,
        number_type=data.number_type,
        area_code=data.area_code,
        contains=data.contains,
        limit=MAX_CANDIDATES * 2,
    )
    try:
        found = await adapter.search(query)
    except CarrierError as exc:
        raise carrier_error(exc) from exc
    held = await held_numbers([n.phone_number for n in found], db)
    numbers = [n.phone_number for n in found if n.phone_number not in held]
    if not numbers:
        where = f" in area code {data.area_code}" if data.area_code else ""
        raise Conflict(
            f"no {data.number_type.replace('_', '-')} numbers are available{where} in "
            f"{data.country}; try a nearby area code",
            code="no_numbers_available",
        )
    return numbers


async def _reserve(
    db: Database,
    actor: Actor,
    account: CarrierAccount,
    data: PhoneNumberBuy,
    number: str,
    idempotency_key: str | None,
    fingerprint: str,
    new_agent: AgentCreate | None,
) -> str:
    """Commit the order and the pending number (and its new agent) together, before any carrier call."""
    assert actor.org_id is not None
    parsed = e164.parse(number)
    now = utcnow()
    order_id = new_id()
    pn = PhoneNumber(
        id=new_id(),
        org_id=actor.org_id,
        phone_number=parsed.e164,
        country=parsed.country,
        area_code=parsed.area_code,
        number_type=data.number_type if parsed.number_type in ("local", "unknown") else parsed.number_type,
        capabilities={"voice": True, "sms": True, "mms": parsed.country in ("US", "CA"), "fax": False},
        status="pending",
        origin="purchased",
        carrier=account.carrier,
        carrier_account_id=account.id,
        carrier_reference=order_id,
        outbound=False,
        meta={},
        extras={},
        created_at=now,
        updated_at=now,
        last_modification_ms=epoch_ms(now),
    )
    fields = config_fields(data)
    apply_config(pn, data, fields)
    request = data.model_dump(mode="json", exclude_unset=True, exclude={"sip_inbound", "sip_outbound"})
    async with db.uow(actor) as uow:
        if new_agent is not None:
            agent = await agents.create_in(uow, new_agent)
            data = data.model_copy(update={"inbound_agents": [AgentBinding(agent_id=agent.id)]})
            fields.add("inbound_agents")
            request["created_agent_id"] = agent.id
        uow.session.add(pn)
        uow.session.add(
            Order(
                id=order_id,
                org_id=actor.org_id,
                idempotency_key=idempotency_key,
                fingerprint=fingerprint,
                status="pending",
                stage="reserved",
                phone_number_id=pn.id,
                phone_number=pn.phone_number,
                carrier=account.carrier,
                carrier_account_id=account.id,
                carrier_reference=order_id,
                request=request,
                created_at=now,
                updated_at=now,
            )
        )
        await uow.session.flush()
        rows = binding_rows(pn.id, data, fields)
        if rows:
            await uow.session.execute(insert(PhoneNumberAgent), rows)
        await uow.commit()
    return order_id


async def _replay(db: Database, order_id: str, fingerprint: str) -> BuyResult:
    """The first request's outcome; waits (bounded) while that request is still in flight."""
    deadline = time.monotonic() + get_settings().idempotency_wait_seconds
    while True:
        async with db.session() as session:
            order = await session.get(Order, order_id)
            assert order is not None
            if order.fingerprint and order.fingerprint != fingerprint:
                raise ValidationFailed(
                    "this Idempotency-Key was already used with a different request",
                    code="idempotency_key_reused",
                    errors=[FieldError("Idempotency-Key", "was used with a different request", "reused")],
                )
            if order.status == "failed":
                err = order.error or {}
                raise AppError(
                    err.get("message", "the purchase failed"),
                    code=err.get("code", "purchase_failed"),
                    status=int(err.get("status", 409)),
                )
            done = order.status == "completed" or order.stage == "carrier_pending"
            if done or time.monotonic() >= deadline:
                pn = await session.get(PhoneNumber, order.phone_number_id)
                assert pn is not None
                return BuyResult(number=await read_one(session, pn), replayed=True)
        await asyncio.sleep(0.05)


async def _claim(db: Database, order_id: str) -> bool:
    """Move a reserved order to ``calling``; exactly one claimant wins."""
    async with db.uow(Actor.system()) as uow:
        result = await uow.session.execute(
            update(Order)
            .where(Order.id == order_id, Order.status == "pending", Order.stage == "reserved")
            .values(stage="calling", attempts=Order.attempts + 1, updated_at=utcnow())
        )
        await uow.commit()
    return bool(getattr(result, "rowcount", 0) == 1)


async def execute_order(
    *,
    db: Database,
    order_id: str,
    adapter: CarrierAdapter | None = None,
    raise_errors: bool = False,
    actor: Actor | None = None,
) -> PhoneNumberRead:
    """Call the carrier for a reserved order and record the outcome. Safe to call from anywhere:
    only the claimant of the order calls the carrier. ``actor`` is who the audit names: the
    buyer's key on the request path, the system when reconcile resumes an order."""
    async with db.session() as session:
        order = await session.get(Order, order_id)
        assert order is not None
        pn = await session.get(PhoneNumber, order.phone_number_id)
        account = await session.get(CarrierAccount, order.carrier_account_id)
        assert pn is not None and account is not None
    adapter = adapter or adapter_for(account, db=db)
    if not await _claim(db, order_id):
        return await current(db, pn.id)
    config = carrier_config(carrier=account.carrier, capabilities=pn.capabilities, name=pn.name)
    try:
        bought = await adapter.buy(
            phone_number=pn.phone_number, reference=order.carrier_reference or order.id, config=config
        )
    except CarrierUnavailable as exc:
        log.warning(
            "purchase of %s at %s is ambiguous (%s); asking the carrier",
            pn.phone_number,
            exc.carrier,
            exc.code,
        )
        found = await _find_quietly(adapter, pn.phone_number, order.carrier_reference)
        if found is not None and found.status != "failed":
            return await _complete(
                db, order_id, found.carrier_number_id, found.status == "pending", config, actor=actor
            )
        await _note(db, order_id, {"code": exc.code, "message": exc.message, "status": 503})
        return await current(db, pn.id)
    except CarrierError as exc:
        await _fail(
            db,
            order_id,
            exc,
            release_key=isinstance(exc, NumberUnavailable | NoNumbersAvailable),
            actor=actor,
        )
        if raise_errors:
            raise carrier_error(exc) from exc
        return await current(db, pn.id)
    faults.point("buy.after_carrier")
    read = await _complete(
        db, order_id, bought.carrier_number_id, bought.status == "pending", config, actor=actor
    )
    faults.point("buy.after_commit")
    return read


async def _find_quietly(adapter: CarrierAdapter, number: str, reference: str | None) -> Any:
    try:
        return await adapter.find(phone_number=number, reference=reference)
    except CarrierError as exc:
        log.warning("could not ask %s about %s: %s", exc.carrier, number, exc.code)
        return None


async def _note(db: Database, order_id: str, error: dict[str, Any]) -> None:
    """Keep the last ambiguous answer on the order (it stays ``calling`` for reconcile)."""
    async with db.uow(Actor.system()) as uow:
        await uow.session.execute(
            update(Order).where(Order.id == order_id).values(error=error, updated_at=utcnow())
        )
        await uow.commit()


async def _complete(
    db: Database,
    order_id: str,
    carrier_number_id: str,
    carrier_pending: bool,
    config: Any,
    *,
    actor: Actor | None = None,
) -> PhoneNumberRead:
    """Record the carrier's yes. Idempotent: a second completion (reconcile racing the request)
    changes nothing."""
    async with db.uow(actor or Actor.system()) as uow:
        order = await uow.session.get(Order, order_id)
        assert order is not None
        if actor is None:
            uow.actor = Actor.system(order.org_id)
        now = utcnow()
        stage = "carrier_pending" if carrier_pending else "completed"
        result = await uow.session.execute(
            update(Order)
            .where(Order.id == order_id, Order.status == "pending")
            .values(status="pending" if carrier_pending else "completed", stage=stage, updated_at=now)
        )
        pn = await uow.session.get(PhoneNumber, order.phone_number_id)
        assert pn is not None
        if getattr(result, "rowcount", 0) != 1 or pn.status != "pending":
            await uow.rollback()
            return await current(db, pn.id)
        pn.carrier_number_id = carrier_number_id
        if carrier_pending:
            pn.touch()
            await uow.session.flush()
            read = await read_one(uow.session, pn)
        else:
            read = await lifecycle.activate(uow, pn, carrier_number_id, config, now)
        await uow.commit()
    return read


async def _fail(
    db: Database,
    order_id: str,
    exc: CarrierError | None,
    *,
    release_key: bool,
    message: str | None = None,
    actor: Actor | None = None,
) -> None:
    """Record a definite no, and take away an agent that was created for this purchase."""
    error = {
        "code": exc.code if exc else "purchase_failed",
        "message": exc.message if exc else (message or "the purchase failed"),
        "status": carrier_error(exc).status if exc else 409,
    }
    async with db.uow(actor or Actor.system()) as uow:
        order = await uow.session.get(Order, order_id)
        assert order is not None
        if actor is None:
            uow.actor = Actor.system(order.org_id)
        if not await lifecycle.fail_purchase(uow, order, error, release_key=release_key):
            await uow.rollback()
            return
        created_agent = (order.request or {}).get("created_agent_id")
        if created_agent:
            await agents.delete_in(uow, created_agent, in_use=agent_users)
        await uow.commit()


async def resolve_order(*, db: Database, order_id: str, grace_seconds: float = ORDER_GRACE_SECONDS) -> str:
    """Bring a pending order to a settled state by asking the carrier. Returns the order status.

    reserved → the carrier was never called: execute it now (one claimant only).
    calling / carrier_pending → ask the carrier; it holds the number → completed; it does not
    and the order is older than the grace period (no call can still be in flight) → failed.
    """
    async with db.session() as session:
        order = await session.get(Order, order_id)
        if order is None or order.status != "pending":
            return order.status if order else "missing"
        account = await session.get(CarrierAccount, order.carrier_account_id)
        pn = await session.get(PhoneNumber, order.phone_number_id)
    if account is None or pn is None:
        return "pending"
    adapter = adapter_for(account, db=db)
    if order.stage == "reserved":
        await execute_order(db=db, order_id=order_id, adapter=adapter)
    else:
        try:
            found = await adapter.find(phone_number=pn.phone_number, reference=order.carrier_reference)
        except CarrierError as exc:
            log.warning("order %s: %s did not answer (%s); still pending", order_id, exc.carrier, exc.code)
            return "pending"
        config = carrier_config(carrier=account.carrier, capabilities=pn.capabilities, name=pn.name)
        age = (utcnow() - (as_utc(order.created_at) or utcnow())).total_seconds()
        if found is not None and found.status == "active":
            if order.stage == "carrier_pending":
                await _activate_pending(db, order_id, found.carrier_number_id, config)
            else:
                await _complete(db, order_id, found.carrier_number_id, False, config)
        elif found is not None and found.status == "pending":
            if order.stage != "carrier_pending":
                await _complete(db, order_id, found.carrier_number_id, True, config)
        elif (found is not None and found.status == "failed") or age >= grace_seconds:
            await _fail(
                db,
                order_id,
                None,
                release_key=True,
                message=f"{account.carrier} does not hold {pn.phone_number}: the purchase did not happen",
            )
    async with db.session() as session:
        settled = await session.get(Order, order_id)
        return settled.status if settled else "missing"


async def _activate_pending(db: Database, order_id: str, carrier_number_id: str, config: Any) -> None:
    """An asynchronous carrier order finished: the number becomes active."""
    async with db.uow(Actor.system()) as uow:
        now = utcnow()
        order = await uow.session.get(Order, order_id)
        assert order is not None
        uow.actor = Actor.system(order.org_id)
        result = await uow.session.execute(
            update(Order)
            .where(Order.id == order_id, Order.status == "pending", Order.stage == "carrier_pending")
            .values(status="completed", stage="completed", updated_at=now)
        )
        if getattr(result, "rowcount", 0) != 1:
            await uow.rollback()
            return
        pn = await uow.session.get(PhoneNumber, order.phone_number_id)
        assert pn is not None
        await lifecycle.activate(uow, pn, carrier_number_id, config, now)
        await uow.commit()


async def resolve_pending_orders(
    *,
    db: Database,
    account_id: str | None = None,
    limit: int = 200,
    grace_seconds: float = ORDER_GRACE_SECONDS,
) -> dict[str, int]:
    """Settle up to ``limit`` pending orders (oldest first). Returns counts by resulting status."""
    query = select(Order.id).where(Order.status == "pending").order_by(Order.id).limit(limit)
    if account_id:
        query = query.where(Order.carrier_account_id == account_id)
    async with db.session() as session:
        ids = list(await session.scalars(query))
    counts: dict[str, int] = {}
    for order_id in ids:
        status = await resolve_order(db=db, order_id=order_id, grace_seconds=grace_seconds)
        counts[status] = counts.get(status, 0) + 1
    return counts

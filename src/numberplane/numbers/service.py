"""Phone numbers: search, buy (a durable order), import, list, get, update, release.

Purchase safety. A purchase is an ``Order`` recorded, with the number reserved (status
``pending``; the partial unique index lets one E.164 be held once in the whole system),
*before* the carrier is called. The order then moves through stages, each a commit:

    reserved ─claim→ calling ─carrier ok→ completed
                        │ └─carrier says "pending" (async orders)→ carrier_pending → completed|failed
                        └─definite refusal→ failed       ambiguous (timeout, 5xx)→ stays calling

Only one process can claim a ``reserved`` order (a conditional UPDATE), so a crash before
the carrier call is resumed exactly once. An order left in ``calling`` (crash after the
call, lost response, timeout) is never retried blindly: it is resolved by asking the carrier
whether it holds the number (``resolve_order``), with our order id as the reference where
the carrier keeps one. ``reconcile`` runs ``resolve_pending_orders`` and ``finish_releases``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Select, Table, delete, exists, func, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from numberplane.agents.models import Agent
from numberplane.carriers.base import (
    AvailableNumber,
    CarrierAdapter,
    CarrierAuthError,
    CarrierError,
    CarrierUnavailable,
    NoNumbersAvailable,
    NumberUnavailable,
    SearchQuery,
)
from numberplane.carriers.models import CarrierAccount
from numberplane.carriers.registry import adapter_for
from numberplane.carriers.schemas import ROUTING_ONLY
from numberplane.carriers.urls import number_config_for
from numberplane.kernel import e164, faults
from numberplane.kernel.changes import numbers_changed
from numberplane.kernel.crypto import encrypt
from numberplane.kernel.db import Actor, Database, UnitOfWork, as_utc, epoch_ms, utcnow
from numberplane.kernel.errors import (
    AppError,
    Conflict,
    FieldError,
    NotFound,
    UpstreamError,
    ValidationFailed,
)
from numberplane.kernel.ids import is_uuid, new_id
from numberplane.kernel.outbox import audit, emit, events_written
from numberplane.kernel.pagination import Page, check_limit, decode_cursor, encode_cursor
from numberplane.kernel.settings import get_settings
from numberplane.numbers.models import HOLDING_STATUSES, Order, PhoneNumber, PhoneNumberAgent
from numberplane.numbers.schemas import (
    DIRECTIONS,
    AgentBindingRead,
    ImportReport,
    ImportRowResult,
    NumberFilters,
    PhoneNumberBuy,
    PhoneNumberConfig,
    PhoneNumberImportRow,
    PhoneNumberRead,
    PhoneNumberUpdate,
    SipConfig,
    SipConfigRead,
)

log = logging.getLogger("numberplane.numbers")

MAX_CANDIDATES = 5
IMPORT_CHUNK = 1000
CARRIER_IMPORT_CONCURRENCY = 8
ANALYZE_AFTER_ROWS = 10_000
# Numberplane has no inbound-SMS endpoint yet, so it leaves each number's SMS webhook as the
# carrier has it rather than pointing messages at a URL that would answer 404.
SMS_WEBHOOKS = False


def wants_sms_webhook(capabilities: dict[str, Any] | None) -> bool:
    """Whether Numberplane points a number's SMS webhook at itself (buy, import, update, reconcile)."""
    return SMS_WEBHOOKS and bool((capabilities or {}).get("sms"))


ORDER_GRACE_SECONDS = 120.0
_SIMPLE_FIELDS = (
    "name",
    "language",
    "inbound_webhook_url",
    "inbound_webhook_timeout_ms",
    "inbound_webhook_attempts",
    "inbound_sms_webhook_url",
    "verified_caller_id",
    "callback_forwarding_number",
    "allowed_inbound_countries",
    "allowed_outbound_countries",
)
_OBJECT_FIELDS = ("voice", "fallback", "call_handler", "message_handler", "capabilities")


# ── reading ──────────────────────────────────────────────────────────────────────────────────


def _sip_read(config: dict[str, Any] | None, password_enc: str | None) -> SipConfigRead | None:
    if config is None:
        return None
    return SipConfigRead(**config, password_set=password_enc is not None)


def to_read(
    pn: PhoneNumber, bindings: Sequence[PhoneNumberAgent] = (), order: Order | None = None
) -> PhoneNumberRead:
    by_direction: dict[str, list[AgentBindingRead]] = {d: [] for d in DIRECTIONS}
    for b in sorted(bindings, key=lambda b: (b.direction, b.position)):
        by_direction.setdefault(b.direction, []).append(
            AgentBindingRead(agent_id=b.agent_id, version=b.version, weight=b.weight)
        )
    return PhoneNumberRead(
        id=pn.id,
        org_id=pn.org_id,
        phone_number=pn.phone_number,
        phone_number_pretty=e164.pretty(pn.phone_number),
        country=pn.country,
        area_code=pn.area_code,
        number_type=pn.number_type,
        capabilities=pn.capabilities or {},
        status=pn.status,  # type: ignore[arg-type]
        origin=pn.origin,  # type: ignore[arg-type]
        carrier=pn.carrier,
        carrier_account_id=pn.carrier_account_id,
        carrier_number_id=pn.carrier_number_id,
        name=pn.name,
        language=pn.language,
        voice=pn.voice,
        inbound_agents=by_direction["inbound"],
        outbound_agents=by_direction["outbound"],
        inbound_sms_agents=by_direction["inbound_sms"],
        outbound_sms_agents=by_direction["outbound_sms"],
        inbound_webhook_url=pn.inbound_webhook_url,
        inbound_webhook_timeout_ms=pn.inbound_webhook_timeout_ms,
        inbound_webhook_attempts=pn.inbound_webhook_attempts,
        inbound_sms_webhook_url=pn.inbound_sms_webhook_url,
        fallback=pn.fallback,
        call_handler=pn.call_handler,
        message_handler=pn.message_handler,
        sip_inbound=_sip_read(pn.sip_inbound, pn.sip_inbound_password_enc),
        sip_outbound=_sip_read(pn.sip_outbound, pn.sip_outbound_password_enc),
        outbound=bool(pn.outbound),
        verified_caller_id=pn.verified_caller_id,
        callback_forwarding_number=pn.callback_forwarding_number,
        allowed_inbound_countries=pn.allowed_inbound_countries,
        allowed_outbound_countries=pn.allowed_outbound_countries,
        emergency_address_id=pn.emergency_address_id,
        emergency_status=pn.emergency_status,
        carrier_sync=pn.carrier_sync,
        next_billed_at=as_utc(pn.next_billed_at),
        released_at=as_utc(pn.released_at),
        created_at=as_utc(pn.created_at) or utcnow(),
        updated_at=as_utc(pn.updated_at) or utcnow(),
        last_modification_timestamp=pn.last_modification_ms,
        metadata=pn.meta or {},
        extras=pn.extras or {},
        order=(
            {"id": order.id, "status": order.status, "stage": order.stage}
            if order is not None and pn.status == "pending"
            else None
        ),
    )


async def _bindings_for(session: AsyncSession, ids: Sequence[str]) -> dict[str, list[PhoneNumberAgent]]:
    out: dict[str, list[PhoneNumberAgent]] = {i: [] for i in ids}
    for start in range(0, len(ids), 500):
        rows = await session.scalars(
            select(PhoneNumberAgent).where(PhoneNumberAgent.phone_number_id.in_(ids[start : start + 500]))
        )
        for row in rows:
            out[row.phone_number_id].append(row)
    return out


async def _read_one(session: AsyncSession, pn: PhoneNumber) -> PhoneNumberRead:
    bindings = (await _bindings_for(session, [pn.id]))[pn.id]
    order = None
    if pn.status == "pending":
        order = await session.scalar(select(Order).where(Order.phone_number_id == pn.id).limit(1))
    return to_read(pn, bindings, order)


def snapshot(read: PhoneNumberRead) -> dict[str, Any]:
    return read.model_dump(mode="json", exclude={"order"})


async def _resolve(session: AsyncSession, org_id: str, ref: str, *, for_update: bool = False) -> PhoneNumber:
    """The org's number named by id or by E.164 in any format. Foreign and missing look the same."""
    ref = unquote(ref).strip()
    not_found = NotFound(f"phone number {ref} not found", code="phone_number_not_found")
    if is_uuid(ref):
        pn = await session.get(PhoneNumber, ref, with_for_update=for_update or None)
        if pn is None or pn.org_id != org_id:
            raise not_found
        return pn
    try:
        number = e164.to_e164(ref)
    except e164.InvalidPhoneNumber:
        raise not_found from None
    query = (
        select(PhoneNumber)
        .where(PhoneNumber.org_id == org_id, PhoneNumber.phone_number == number)
        .order_by(PhoneNumber.status.in_(HOLDING_STATUSES).desc(), PhoneNumber.id.desc())
        .limit(1)
    )
    if for_update:
        query = query.with_for_update()
    pn = await session.scalar(query)
    if pn is None:
        raise not_found
    return pn


def _record(
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
    emit(uow, type=event, org_id=pn.org_id, subject_type="phone_number", subject_id=pn.id, data=data)
    audit(
        uow,
        action=action,
        target_type="phone_number",
        target_id=pn.id,
        before=before,
        after=after,
        org_id=pn.org_id,
    )


async def get_number(*, db: Database, org_id: str, ref: str) -> PhoneNumberRead:
    async with db.session() as session:
        return await _read_one(session, await _resolve(session, org_id, ref))


def _filtered(query: Select[Any], org_id: str, filters: NumberFilters | None) -> Select[Any]:
    query = query.where(PhoneNumber.org_id == org_id)
    f = filters or NumberFilters()
    statuses = [s.strip() for s in (f.status or "").split(",") if s.strip()]
    if not statuses:
        query = query.where(PhoneNumber.status.in_(HOLDING_STATUSES))
    elif "all" not in statuses:
        query = query.where(PhoneNumber.status.in_(statuses))
    if f.carrier:
        query = query.where(PhoneNumber.carrier == f.carrier)
    if f.area_code:
        query = query.where(PhoneNumber.area_code == f.area_code)
    if f.q:
        text = f.q.strip()[:100]
        digits = "".join(ch for ch in text if ch.isdigit())
        clauses = [func.lower(PhoneNumber.name).contains(text.lower(), autoescape=True)]
        if digits:
            clauses.append(PhoneNumber.phone_number.contains(digits, autoescape=True))
        query = query.where(or_(*clauses))
    if f.name:
        query = query.where(
            func.lower(PhoneNumber.name).contains(f.name.strip().lower()[:100], autoescape=True)
        )
    if f.number:
        digits = "".join(ch for ch in f.number if ch.isdigit())[:20]
        query = query.where(PhoneNumber.phone_number.contains(digits, autoescape=True))
    if f.agent_id:
        query = query.where(
            exists().where(
                PhoneNumberAgent.phone_number_id == PhoneNumber.id, PhoneNumberAgent.agent_id == f.agent_id
            )
        )
    if f.unassigned is not None:
        has_inbound = exists().where(
            PhoneNumberAgent.phone_number_id == PhoneNumber.id, PhoneNumberAgent.direction == "inbound"
        )
        query = query.where(~has_inbound if f.unassigned else has_inbound)
    return query


async def list_numbers(
    *,
    db: Database,
    org_id: str,
    filters: NumberFilters | None = None,
    limit: int = 50,
    cursor: str | None = None,
    offset: int | None = None,
    order: str = "desc",
    sort_by: str | None = None,
) -> Page[PhoneNumberRead]:
    """Keyset pagination over the time-ordered id: a deep page costs what the first does.

    ``offset`` and ``sort_by`` (phone_number, name, area_code, updated_at) exist for vendor APIs
    that page by offset and sort by a column; /v1 uses ``cursor`` over creation order.
    """
    check_limit(limit)
    direction = order
    if cursor:
        after, direction = decode_cursor(cursor)
        if sort_by:
            raise ValidationFailed.field("sort_by", "cannot be combined with a cursor")
    query = _filtered(select(PhoneNumber), org_id, filters)
    if cursor:
        query = query.where(PhoneNumber.id < after if direction == "desc" else PhoneNumber.id > after)
    if sort_by:
        column = _SORTABLE.get(sort_by)
        if column is None:
            raise ValidationFailed.field("sort_by", f"must be one of {', '.join(sorted(_SORTABLE))}")
        # Unnamed (NULL) last in both directions, the same on SQLite and PostgreSQL.
        query = query.order_by((column.desc() if direction == "desc" else column.asc()).nulls_last())
    query = query.order_by(PhoneNumber.id.desc() if direction == "desc" else PhoneNumber.id.asc())
    if offset:
        if offset < 0:
            raise ValidationFailed.field("offset", "must not be negative")
        query = query.offset(offset)
    query = query.limit(limit + 1)
    async with db.session() as session:
        rows = list(await session.scalars(query))
        more = len(rows) > limit
        rows = rows[:limit]
        bindings = await _bindings_for(session, [r.id for r in rows])
    data = [to_read(r, bindings[r.id]) for r in rows]
    next_cursor = encode_cursor(rows[-1].id, direction) if more and rows else None
    return Page[PhoneNumberRead](data=data, has_more=more, next_cursor=next_cursor)


_SORTABLE = {
    "phone_number": PhoneNumber.phone_number,
    "name": PhoneNumber.name,
    "area_code": PhoneNumber.area_code,
    "updated_at": PhoneNumber.updated_at,
    "created_at": PhoneNumber.id,
}


async def count_numbers(*, db: Database, org_id: str, filters: NumberFilters | None = None) -> int:
    query = _filtered(select(func.count()).select_from(PhoneNumber), org_id, filters)
    async with db.session() as session:
        return int(await session.scalar(query) or 0)


# ── writing settings ────────────────────────────────────────────────────────────────────────


def _dump(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", exclude_none=True)
    return value


def _apply_sip(pn: Any, leg: str, value: SipConfig | None) -> None:
    password_attr = f"sip_{leg}_password_enc"
    if value is None:
        setattr(pn, f"sip_{leg}", None)
        setattr(pn, password_attr, None)
        return
    config = value.model_dump(mode="json", exclude_none=True, exclude={"password"})
    setattr(pn, f"sip_{leg}", config)
    if "password" in value.model_fields_set:
        secret = value.password.get_secret_value() if value.password is not None else None
        setattr(pn, password_attr, encrypt(secret) if secret else None)


def _apply_config(pn: Any, data: PhoneNumberConfig, fields: Iterable[str]) -> None:
    """Write the sent settings onto the row. Agent bindings are handled by ``_set_bindings``."""
    for name in fields:
        value = getattr(data, name)
        if name in _SIMPLE_FIELDS:
            setattr(pn, name, value)
        elif name in _OBJECT_FIELDS:
            setattr(pn, name, _dump(value) if value is not None else None)
            if name == "capabilities" and value is None:
                pn.capabilities = {"voice": True, "sms": False, "mms": False, "fax": False}
        elif name in ("sip_inbound", "sip_outbound"):
            _apply_sip(pn, name.removeprefix("sip_"), value)
        elif name == "outbound":
            pn.outbound = bool(value)
        elif name == "emergency_address_id":
            pn.emergency_address_id = value
            pn.emergency_status = (
                None if value is None else ("active" if pn.carrier == "sandbox" else "pending")
            )
        elif name == "metadata":
            pn.meta = dict(value or {})
        elif name == "extras":
            merged = dict(pn.extras or {})
            if value is None:
                merged = {}
            else:
                for key, sub in value.items():
                    if sub is None:
                        merged.pop(key, None)
                    else:
                        merged[key] = sub
            pn.extras = merged


async def _check_agents(
    session: AsyncSession, org_id: str, data: PhoneNumberConfig, prefix: str = ""
) -> None:
    """Every bound agent must be the org's, and a pinned version must exist."""
    refs: list[tuple[str, int, str, int | None]] = []
    for direction in DIRECTIONS:
        for i, b in enumerate(getattr(data, f"{direction}_agents") or []):
            refs.append((f"{prefix}{direction}_agents[{i}]", i, b.agent_id, b.version))
    if not refs:
        return
    ids = sorted({r[2] for r in refs})
    rows = await session.execute(
        select(Agent.id, Agent.version).where(Agent.org_id == org_id, Agent.id.in_(ids))
    )
    latest = {row.id: row.version for row in rows}
    errors = []
    for field, _, agent_id, version in refs:
        if agent_id not in latest:
            errors.append(FieldError(f"{field}.agent_id", f"agent {agent_id} not found", "agent_not_found"))
        elif version is not None and version > latest[agent_id]:
            errors.append(
                FieldError(
                    f"{field}.version",
                    f"agent {agent_id} has no version {version} (latest is {latest[agent_id]})",
                    "agent_version_not_found",
                )
            )
    if errors:
        raise ValidationFailed("; ".join(f"{e.field}: {e.message}" for e in errors), errors=errors)


def _binding_rows(pn_id: str, data: PhoneNumberConfig, fields: Iterable[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for direction in DIRECTIONS:
        if f"{direction}_agents" not in fields:
            continue
        for position, b in enumerate(getattr(data, f"{direction}_agents") or []):
            rows.append(
                {
                    "phone_number_id": pn_id,
                    "direction": direction,
                    "agent_id": b.agent_id,
                    "version": b.version,
                    "weight": b.weight if b.weight is not None else 1.0,
                    "position": position,
                }
            )
    return rows


async def _set_bindings(session: AsyncSession, pn_id: str, data: PhoneNumberConfig, fields: set[str]) -> None:
    directions = [d for d in DIRECTIONS if f"{d}_agents" in fields]
    if not directions:
        return
    await session.execute(
        delete(PhoneNumberAgent).where(
            PhoneNumberAgent.phone_number_id == pn_id, PhoneNumberAgent.direction.in_(directions)
        )
    )
    rows = _binding_rows(pn_id, data, fields)
    if rows:
        await session.execute(insert(PhoneNumberAgent), rows)


def _config_fields(data: PhoneNumberConfig) -> set[str]:
    return set(data.model_fields_set) & set(PhoneNumberConfig.model_fields)


# ── carrier accounts ────────────────────────────────────────────────────────────────────────


async def account_for(
    session: AsyncSession, org_id: str, account_id: str | None, field: str = "carrier_account_id"
) -> CarrierAccount:
    """The carrier account to use: the one named (the org's own or a platform-wide one), else the
    org's default, else the org's sandbox."""
    from numberplane.tenancy.models import Org

    if account_id:
        account = await session.get(CarrierAccount, account_id) if len(account_id) <= 64 else None
        if account is None or (account.org_id not in (None, org_id)):
            raise ValidationFailed.field(field, f"carrier account {account_id} not found", "not_found")
        return account
    org = await session.get(Org, org_id)
    if org is not None and org.default_carrier_account_id:
        account = await session.get(CarrierAccount, org.default_carrier_account_id)
        if account is not None:
            return account
    account = await session.scalar(
        select(CarrierAccount)
        .where(CarrierAccount.org_id == org_id, CarrierAccount.carrier == "sandbox")
        .limit(1)
    )
    if account is None:
        raise ValidationFailed.field(field, "the org has no carrier account; add one first", "not_found")
    return account


def _buyable(account: CarrierAccount, field: str = "carrier_account_id") -> CarrierAccount:
    """Routing-only accounts (Vonage) have no adapter: numbers can be imported onto them, not bought."""
    if account.carrier in ROUTING_ONLY:
        raise ValidationFailed.field(
            field,
            f"{account.carrier} accounts are routing-only here: import numbers onto them instead",
            "routing_only_account",
        )
    return account


def _carrier_error(exc: CarrierError) -> AppError:
    """A carrier's refusal as an API error that says which carrier and what to do."""
    headers = {}
    if isinstance(exc, CarrierUnavailable) and exc.retry_after:
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, NoNumbersAvailable | NumberUnavailable):
        return Conflict(exc.message, code=exc.code, extra={"carrier": exc.carrier})
    if isinstance(exc, CarrierAuthError):
        return UpstreamError(exc.message, code=exc.code, status=424, extra={"carrier": exc.carrier})
    return UpstreamError(
        exc.message,
        code=exc.code,
        status=exc.http_status,
        headers=headers,
        extra={"carrier": exc.carrier, "retriable": exc.retriable},
    )


# ── search ──────────────────────────────────────────────────────────────────────────────────


async def search_available(
    *,
    db: Database,
    org_id: str,
    country: str = "US",
    number_type: str = "local",
    area_code: str | None = None,
    contains: str | None = None,
    limit: int = 20,
    carrier_account_id: str | None = None,
) -> list[AvailableNumber]:
    """The carrier's inventory, minus numbers someone already holds in Numberplane."""
    if not 1 <= limit <= 100:
        raise ValidationFailed.field("limit", "must be between 1 and 100")
    async with db.session() as session:
        account = _buyable(await account_for(session, org_id, carrier_account_id))
    adapter = adapter_for(account, db=db)
    # Ask for more than wanted: numbers someone already holds here are dropped afterwards, and a
    # search must not come back short because of them.
    query = SearchQuery(
        country=country.upper(),
        number_type=number_type,
        area_code=area_code,
        contains=contains,
        limit=min(100, limit * 2 + 10),
    )
    try:
        found = await adapter.search(query)
    except NoNumbersAvailable:
        return []
    except CarrierError as exc:
        raise _carrier_error(exc) from exc
    held = await _held([n.phone_number for n in found], db)
    return [n for n in found if n.phone_number not in held][:limit]


async def _held(numbers: Sequence[str], db: Database) -> set[str]:
    out: set[str] = set()
    async with db.session() as session:
        for start in range(0, len(numbers), 500):
            rows = await session.scalars(
                select(PhoneNumber.phone_number).where(
                    PhoneNumber.phone_number.in_(numbers[start : start + 500]),
                    PhoneNumber.status.in_(HOLDING_STATUSES),
                )
            )
            out.update(rows)
    return out


# ── buy ─────────────────────────────────────────────────────────────────────────────────────


@dataclass
class BuyResult:
    number: PhoneNumberRead
    replayed: bool = False

    @property
    def pending(self) -> bool:
        return self.number.status == "pending"


def _fingerprint(data: PhoneNumberBuy) -> str:
    return hashlib.sha256(data.model_dump_json(exclude_unset=True).encode()).hexdigest()


def _add_month(when: dt.datetime) -> dt.datetime:
    month = when.month % 12 + 1
    year = when.year + (1 if when.month == 12 else 0)
    day = min(
        when.day,
        [
            31,
            29 if year % 4 == 0 and (year % 100 or year % 400 == 0) else 28,
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ][month - 1],
    )
    return when.replace(year=year, month=month, day=day)


def next_billing(after: dt.datetime) -> dt.datetime:
    return _add_month(after)


async def buy(
    *, db: Database, actor: Actor, data: PhoneNumberBuy, idempotency_key: str | None = None
) -> BuyResult:
    """Buy a number as a durable order. A retry with the same key returns the first result."""
    assert actor.org_id is not None
    org_id = actor.org_id
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 255:
        raise ValidationFailed.field("Idempotency-Key", "must be 1 to 255 characters")
    fingerprint = _fingerprint(data)
    if idempotency_key:
        async with db.session() as session:
            existing = await session.scalar(
                select(Order).where(Order.org_id == org_id, Order.idempotency_key == idempotency_key)
            )
        if existing is not None:
            return await _replay(db, existing.id, fingerprint)

    async with db.session() as session:
        account = _buyable(await account_for(session, org_id, data.carrier_account_id))
        await _check_agents(session, org_id, data)
    adapter = adapter_for(account, db=db)
    candidates = await _candidates(db, adapter, data)

    order_id: str | None = None
    for candidate in candidates[:MAX_CANDIDATES]:
        try:
            order_id = await _reserve(db, actor, account, data, candidate, idempotency_key, fingerprint)
            break
        except IntegrityError as exc:
            if idempotency_key and await _order_id_for_key(db, org_id, idempotency_key):
                key_order = await _order_id_for_key(db, org_id, idempotency_key)
                assert key_order is not None
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
        raise _carrier_error(exc) from exc
    held = await _held([n.phone_number for n in found], db)
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
) -> str:
    """Commit the order and the pending number together, before any carrier call."""
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
    fields = _config_fields(data)
    _apply_config(pn, data, fields)
    order = Order(
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
        request=data.model_dump(mode="json", exclude_unset=True, exclude={"sip_inbound", "sip_outbound"}),
        created_at=now,
        updated_at=now,
    )
    async with db.uow(actor) as uow:
        uow.session.add(pn)
        uow.session.add(order)
        await uow.session.flush()
        rows = _binding_rows(pn.id, data, fields)
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
                return BuyResult(number=await _read_one(session, pn), replayed=True)
        await asyncio.sleep(0.05)


async def _claim(db: Database, order_id: str) -> bool:
    """Move a reserved order to ``calling``; exactly one claimant wins."""
    async with db.session() as session:
        result = await session.execute(
            update(Order)
            .where(Order.id == order_id, Order.status == "pending", Order.stage == "reserved")
            .values(stage="calling", attempts=Order.attempts + 1, updated_at=utcnow())
        )
        await session.commit()
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
        return await _current(db, pn.id)
    config = number_config_for(
        carrier=account.carrier,
        public_url=get_settings().public_url,
        sms=wants_sms_webhook(pn.capabilities),
        friendly_name=pn.name,
    )
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
        return await _current(db, pn.id)
    except CarrierError as exc:
        await _fail(
            db,
            order_id,
            exc,
            release_key=isinstance(exc, NumberUnavailable | NoNumbersAvailable),
            actor=actor,
        )
        if raise_errors:
            raise _carrier_error(exc) from exc
        return await _current(db, pn.id)
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


async def _current(db: Database, pn_id: str) -> PhoneNumberRead:
    async with db.session() as session:
        pn = await session.get(PhoneNumber, pn_id)
        assert pn is not None
        return await _read_one(session, pn)


async def _note(db: Database, order_id: str, error: dict[str, Any]) -> None:
    async with db.session() as session:
        await session.execute(
            update(Order).where(Order.id == order_id).values(error=error, updated_at=utcnow())
        )
        await session.commit()


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
    async with db.session() as probe:
        order = await probe.get(Order, order_id)
        assert order is not None
    async with db.uow(actor or Actor.system(order.org_id)) as uow:
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
            return await _current(db, pn.id)
        pn.carrier_number_id = carrier_number_id
        if carrier_pending:
            pn.touch()
            await uow.session.flush()
            read = await _read_one(uow.session, pn)
        else:
            read = await _activate(uow, pn, carrier_number_id, config, now)
        await uow.commit()
    return read


async def _activate(
    uow: UnitOfWork, pn: PhoneNumber, carrier_number_id: str, config: Any, now: dt.datetime
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
    read = await _read_one(uow.session, pn)
    _record(
        uow,
        pn,
        event="phone_number.created",
        action="phone_number.purchased",
        data=snapshot(read),
        after=snapshot(read),
    )
    numbers_changed(uow, [pn.phone_number])
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
    """Record a definite no: the order fails, the number is let go (it was never ours)."""
    error = {
        "code": exc.code if exc else "purchase_failed",
        "message": exc.message if exc else (message or "the purchase failed"),
        "status": _carrier_error(exc).status if exc else 409,
    }
    async with db.session() as probe:
        order = await probe.get(Order, order_id)
        assert order is not None
    async with db.uow(actor or Actor.system(order.org_id)) as uow:
        values: dict[str, Any] = {
            "status": "failed",
            "stage": "failed",
            "error": error,
            "updated_at": utcnow(),
        }
        if release_key:
            values["idempotency_key"] = None
        result = await uow.session.execute(
            update(Order).where(Order.id == order_id, Order.status == "pending").values(**values)
        )
        if getattr(result, "rowcount", 0) != 1:
            await uow.rollback()
            return
        pn = await uow.session.get(PhoneNumber, order.phone_number_id)
        assert pn is not None
        pn.status = "failed"
        pn.touch()
        _record(
            uow,
            pn,
            event="phone_number.purchase_failed",
            action="phone_number.purchase_failed",
            data={"id": pn.id, "phone_number": pn.phone_number, "order_id": order_id, "error": error},
            after={"phone_number": pn.phone_number, "error": error},
        )
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
        config = number_config_for(
            carrier=account.carrier,
            public_url=get_settings().public_url,
            sms=wants_sms_webhook(pn.capabilities),
            friendly_name=pn.name,
        )
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
    async with db.session() as probe:
        order = await probe.get(Order, order_id)
        assert order is not None
    async with db.uow(Actor.system(order.org_id)) as uow:
        now = utcnow()
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
        await _activate(uow, pn, carrier_number_id, config, now)
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


# ── import ──────────────────────────────────────────────────────────────────────────────────

_ROW = TypeAdapter(PhoneNumberImportRow)


def _row_error(exc: ValidationError) -> dict[str, str]:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err.get("loc", ())) or "row"
    msg = str(err.get("msg", "is invalid")).removeprefix("Value error, ")
    return {"code": "invalid", "field": field, "message": msg}


@dataclass
class _Prepared:
    index: int
    row: PhoneNumberImportRow
    parsed: e164.ParsedNumber
    fields: set[str]
    carrier: str | None = None


async def import_one(
    *, db: Database, actor: Actor, row: PhoneNumberImportRow | dict[str, Any]
) -> PhoneNumberRead:
    """Import a single number; errors are raised (not reported per row)."""
    data = row if isinstance(row, dict) else row.model_dump(mode="json", exclude_unset=True)
    if isinstance(row, PhoneNumberImportRow):
        data = {name: getattr(row, name) for name in row.model_fields_set}
    report = await import_numbers(db=db, actor=actor, rows=[data], emit_completed=False)
    result = report.results[0]
    if result.status == "failed":
        err = result.error or {}
        code = err.get("code", "invalid")
        if code == "already_exists":
            raise Conflict(err.get("message", "already exists"), code="phone_number_exists")
        field = err.get("field", "phone_number")
        raise ValidationFailed(
            f"{field}: {err.get('message')}", errors=[FieldError(field, err.get("message", ""), code)]
        )
    assert result.id is not None
    return await get_number(db=db, org_id=actor.org_id or "", ref=result.id)


async def import_numbers(
    *,
    db: Database,
    actor: Actor,
    rows: Sequence[Any],
    defaults: dict[str, Any] | None = None,
    emit_completed: bool = True,
    progress: Any = None,
) -> ImportReport:
    """Register numbers the org already owns (nothing is bought). Each row stands alone: a bad row
    is reported with its reason and never costs the good ones."""
    assert actor.org_id is not None
    org_id = actor.org_id
    results: dict[int, ImportRowResult] = {}
    prepared: list[_Prepared] = []
    seen: dict[str, int] = {}
    base = dict(defaults or {})
    for index, raw in enumerate(rows):
        if not isinstance(raw, dict):
            results[index] = ImportRowResult(
                index=index,
                phone_number=None,
                status="failed",
                error={"code": "invalid", "field": "row", "message": "must be an object"},
            )
            continue
        merged = {**base, **raw}
        try:
            row = _ROW.validate_python(merged)
        except ValidationError as exc:
            results[index] = ImportRowResult(
                index=index,
                phone_number=str(merged.get("phone_number") or "") or None,
                status="failed",
                error=_row_error(exc),
            )
            continue
        try:
            parsed = e164.parse(row.phone_number, country_hint=row.country)
        except e164.InvalidPhoneNumber as exc:
            results[index] = ImportRowResult(
                index=index,
                phone_number=row.phone_number,
                status="failed",
                error={"code": "invalid_phone_number", "field": "phone_number", "message": exc.reason},
            )
            continue
        if parsed.e164 in seen:
            results[index] = ImportRowResult(
                index=index,
                phone_number=parsed.e164,
                status="failed",
                error={
                    "code": "duplicate",
                    "field": "phone_number",
                    "message": f"duplicates row {seen[parsed.e164]}",
                },
            )
            continue
        seen[parsed.e164] = index
        prepared.append(_Prepared(index, row, parsed, _config_fields(row)))

    prepared = await _check_import_agents(db, org_id, prepared, results)
    prepared = await _check_import_accounts(db, org_id, prepared, results)
    prepared = await _check_import_holders(db, org_id, prepared, results)

    total_chunks = max(1, (len(prepared) + IMPORT_CHUNK - 1) // IMPORT_CHUNK)
    for chunk_no, start in enumerate(range(0, len(prepared), IMPORT_CHUNK)):
        chunk = prepared[start : start + IMPORT_CHUNK]
        await _insert_chunk(db, actor, chunk, results)
        if progress is not None:
            progress(chunk_no + 1, total_chunks)

    if len(prepared) >= ANALYZE_AFTER_ROWS and db.dialect == "postgresql":
        # Fresh statistics, so the planner does not treat a just-filled table as empty.
        async with db.session() as session:
            await session.execute(text("ANALYZE phone_numbers"))
            await session.commit()
    ordered = [results[i] for i in sorted(results)]
    created = sum(1 for r in ordered if r.status == "created")
    report = ImportReport(total=len(ordered), created=created, failed=len(ordered) - created, results=ordered)
    if emit_completed:
        async with db.uow(actor) as uow:
            emit(
                uow,
                type="import.completed",
                org_id=org_id,
                subject_type="import",
                subject_id=new_id(),
                data={"total": report.total, "created": report.created, "failed": report.failed},
            )
            audit(
                uow,
                action="phone_numbers.import_completed",
                target_type="import",
                target_id=None,
                after={"total": report.total, "created": report.created, "failed": report.failed},
            )
            await uow.commit()
    return report


def _fail_rows(
    items: Iterable[_Prepared], results: dict[int, ImportRowResult], code: str, field: str, message: Any
) -> None:
    for p in items:
        text = message(p) if callable(message) else message
        results[p.index] = ImportRowResult(
            index=p.index,
            phone_number=p.parsed.e164,
            status="failed",
            error={"code": code, "field": field, "message": text},
        )


async def _check_import_agents(
    db: Database, org_id: str, prepared: list[_Prepared], results: dict[int, ImportRowResult]
) -> list[_Prepared]:
    wanted = sorted(
        {b.agent_id for p in prepared for d in DIRECTIONS for b in (getattr(p.row, f"{d}_agents") or [])}
    )
    if not wanted:
        return prepared
    latest: dict[str, int] = {}
    async with db.session() as session:
        for start in range(0, len(wanted), 500):
            rows = await session.execute(
                select(Agent.id, Agent.version).where(
                    Agent.org_id == org_id, Agent.id.in_(wanted[start : start + 500])
                )
            )
            latest.update({r.id: r.version for r in rows})
    keep = []
    for p in prepared:
        problem = None
        for d in DIRECTIONS:
            for i, b in enumerate(getattr(p.row, f"{d}_agents") or []):
                if b.agent_id not in latest:
                    problem = (f"{d}_agents[{i}].agent_id", f"agent {b.agent_id} not found")
                elif b.version is not None and b.version > latest[b.agent_id]:
                    problem = (f"{d}_agents[{i}].version", f"agent {b.agent_id} has no version {b.version}")
                if problem:
                    break
            if problem:
                break
        if problem:
            _fail_rows([p], results, "agent_not_found", problem[0], problem[1])
        else:
            keep.append(p)
    return keep


async def _check_import_accounts(
    db: Database, org_id: str, prepared: list[_Prepared], results: dict[int, ImportRowResult]
) -> list[_Prepared]:
    """Rows naming a carrier account must be held by that account at the carrier; their webhooks
    are then pointed at Numberplane. Bounded concurrency; one carrier call per row at most twice."""
    named = [p for p in prepared if p.row.carrier_account_id]
    if not named:
        return prepared
    accounts: dict[str, CarrierAccount | None] = {}
    async with db.session() as session:
        for account_id in {p.row.carrier_account_id for p in named if p.row.carrier_account_id}:
            try:
                accounts[account_id] = await account_for(session, org_id, account_id)
            except ValidationFailed:
                accounts[account_id] = None
    semaphore = asyncio.Semaphore(CARRIER_IMPORT_CONCURRENCY)
    failed: set[int] = set()
    public_url = get_settings().public_url

    async def verify(p: _Prepared) -> None:
        account = accounts.get(p.row.carrier_account_id or "")
        if account is None:
            failed.add(p.index)
            _fail_rows(
                [p],
                results,
                "not_found",
                "carrier_account_id",
                f"carrier account {p.row.carrier_account_id} not found",
            )
            return
        if account.carrier in ROUTING_ONLY:
            p.carrier = account.carrier  # nothing to check or configure through an API
            return
        adapter = adapter_for(account, db=db)
        async with semaphore:
            try:
                held = await adapter.find(phone_number=p.parsed.e164)
                if held is None:
                    failed.add(p.index)
                    _fail_rows(
                        [p],
                        results,
                        "not_owned",
                        "phone_number",
                        f"{account.carrier} account {account.id} does not hold {p.parsed.e164}",
                    )
                    return
                config = number_config_for(
                    carrier=account.carrier,
                    public_url=public_url,
                    sms=wants_sms_webhook(p.row.capabilities.model_dump() if p.row.capabilities else None),
                    friendly_name=p.row.name,
                )
                await adapter.configure(carrier_number_id=held.carrier_number_id, config=config)
            except CarrierError as exc:
                failed.add(p.index)
                _fail_rows([p], results, exc.code, "carrier_account_id", exc.message)
                return
        p.row.carrier_number_id = held.carrier_number_id
        p.carrier = account.carrier

    await asyncio.gather(*(verify(p) for p in named))
    return [p for p in prepared if p.index not in failed]


async def _check_import_holders(
    db: Database, org_id: str, prepared: list[_Prepared], results: dict[int, ImportRowResult]
) -> list[_Prepared]:
    numbers = [p.parsed.e164 for p in prepared]
    holders: dict[str, tuple[str, str]] = {}
    async with db.session() as session:
        for start in range(0, len(numbers), 1000):
            rows = await session.execute(
                select(PhoneNumber.phone_number, PhoneNumber.org_id, PhoneNumber.id).where(
                    PhoneNumber.phone_number.in_(numbers[start : start + 1000]),
                    PhoneNumber.status.in_(HOLDING_STATUSES),
                )
            )
            holders.update({r.phone_number: (r.org_id, r.id) for r in rows})
    keep = []
    for p in prepared:
        holder = holders.get(p.parsed.e164)
        if holder is None:
            keep.append(p)
        elif holder[0] == org_id:
            _fail_rows(
                [p],
                results,
                "already_exists",
                "phone_number",
                f"{p.parsed.e164} is already registered in this org (id {holder[1]})",
            )
        else:
            _fail_rows([p], results, "already_exists", "phone_number", f"{p.parsed.e164} is already in use")
    return keep


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


def _import_row_values(
    p: _Prepared, org_id: str, now: dt.datetime
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
        carrier_number_id=row.carrier_number_id,
        outbound=False,
        meta={},
        extras={},
        created_at=now,
        updated_at=now,
        last_modification_ms=epoch_ms(now),
    )
    _apply_config(values, row, p.fields)  # type: ignore[arg-type]
    record = {_COLUMN_OF.get(k, k): v for k, v in vars(values).items()}
    return record, _binding_rows(values.id, row, p.fields)


_COLUMN_OF = {"meta": "metadata"}


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


async def _insert_chunk(
    db: Database, actor: Actor, chunk: list[_Prepared], results: dict[int, ImportRowResult]
) -> None:
    """One transaction per chunk: rows, bindings, events and one audit row. If a concurrent writer
    took a number meanwhile, fall back to row by row so only that row fails."""
    assert actor.org_id is not None
    now = utcnow()
    built = [(p, *_import_row_values(p, actor.org_id, now)) for p in chunk]
    try:
        await _write_rows(db, actor, built)
    except IntegrityError:
        for item in built:
            try:
                await _write_rows(db, actor, [item])
            except IntegrityError:
                _fail_rows(
                    [item[0]],
                    results,
                    "already_exists",
                    "phone_number",
                    f"{item[0].parsed.e164} is already in use",
                )
                continue
            results[item[0].index] = ImportRowResult(
                index=item[0].index, phone_number=item[1]["phone_number"], status="created", id=item[1]["id"]
            )
        return
    for p, record, _ in built:
        results[p.index] = ImportRowResult(
            index=p.index, phone_number=record["phone_number"], status="created", id=record["id"]
        )


async def _write_rows(
    db: Database, actor: Actor, built: list[tuple[_Prepared, dict[str, Any], list[dict[str, Any]]]]
) -> None:
    from numberplane.kernel.outbox import OutboxEvent

    # Only the columns this chunk uses: the rest are NULL by default, and every bound column costs
    # per-row processing (most of an import's settings are absent).
    used = {k for _, record, _ in built for k, v in record.items() if v is not None}
    records = [{k: record[k] for k in used} for _, record, _ in built]
    bindings = [b for _, _, rows in built for b in rows]
    events = []
    for _, record, rows in built:
        data = {
            "id": record["id"],
            "org_id": record["org_id"],
            "phone_number": record["phone_number"],
            "status": record["status"],
            "origin": record["origin"],
            "carrier": record["carrier"],
            "name": record["name"],
            "inbound_agents": [
                {"agent_id": b["agent_id"], "version": b["version"], "weight": b["weight"]}
                for b in rows
                if b["direction"] == "inbound"
            ],
        }
        events.append(
            {
                "id": new_id(),
                "org_id": record["org_id"],
                "type": "phone_number.created",
                "subject_type": "phone_number",
                "subject_id": record["id"],
                "data": data,
                "created_at": record["created_at"],
            }
        )
    async with db.uow(actor) as uow:
        await uow.session.execute(insert(_table(PhoneNumber)), records)
        if bindings:
            await uow.session.execute(insert(_table(PhoneNumberAgent)), bindings)
        await uow.session.execute(insert(_table(OutboxEvent)), events)
        events_written(uow)
        audit(
            uow,
            action="phone_numbers.imported",
            target_type="phone_number",
            target_id=records[0]["id"] if len(records) == 1 else None,
            after={"count": len(records), "phone_numbers": [r["phone_number"] for r in records]},
        )
        numbers_changed(uow, [r["phone_number"] for r in records])
        await uow.commit()


# ── update ──────────────────────────────────────────────────────────────────────────────────


async def _update_in(
    uow: UnitOfWork, org_id: str, ref: str, patch: PhoneNumberUpdate, prefix: str = ""
) -> PhoneNumberRead:
    session = uow.session
    pn = await _resolve(session, org_id, ref, for_update=True)
    if pn.status in ("released", "failed"):
        raise Conflict(
            f"phone number {pn.phone_number} is {pn.status}; it can no longer be changed",
            code="phone_number_not_active",
        )
    before = snapshot(await _read_one(session, pn))
    fields = _config_fields(patch)
    await _check_agents(session, org_id, patch, prefix)
    _apply_config(pn, patch, fields)
    await _set_bindings(session, pn.id, patch, fields)
    pn.touch()
    await session.flush()
    read = await _read_one(session, pn)
    after = snapshot(read)
    changed = sorted(
        k
        for k in after
        if after.get(k) != before.get(k) and k not in ("updated_at", "last_modification_timestamp")
    )
    _record(
        uow,
        pn,
        event="phone_number.updated",
        action="phone_number.updated",
        data={**after, "changed": changed},
        before=before,
        after=after,
    )
    numbers_changed(uow, [pn.phone_number])
    return read


async def update_number(*, db: Database, actor: Actor, ref: str, patch: PhoneNumberUpdate) -> PhoneNumberRead:
    """Partial update: only the fields set on ``patch`` change; ``None`` clears a field."""
    assert actor.org_id is not None
    async with db.uow(actor) as uow:
        read = await _update_in(uow, actor.org_id, ref, patch)
        await uow.commit()
    if {"capabilities", "name"} & _config_fields(patch):
        await _push_carrier_config(db, read)
    return read


async def update_numbers(
    *, db: Database, actor: Actor, patches: Sequence[tuple[str, PhoneNumberUpdate]]
) -> list[PhoneNumberRead]:
    """Several updates, all or nothing. Field names in errors are prefixed with ``[i].``."""
    assert actor.org_id is not None
    if len(patches) > 1000:
        raise ValidationFailed.field("phoneNumbers", "at most 1000 numbers per request")
    out = []
    async with db.uow(actor) as uow:
        for i, (ref, patch) in enumerate(patches):
            try:
                out.append(await _update_in(uow, actor.org_id, ref, patch, prefix=f"[{i}]."))
            except NotFound as exc:
                raise NotFound(f"[{i}]: {exc.message}", code=exc.code) from exc
        await uow.commit()
    return out


async def _push_carrier_config(db: Database, read: PhoneNumberRead) -> None:
    """Keep the carrier's side in step (SMS webhook, name). Failures are recorded, not raised:
    reconcile repairs drift."""
    if not read.carrier_account_id or not read.carrier_number_id or read.status != "active":
        return
    async with db.session() as session:
        account = await session.get(CarrierAccount, read.carrier_account_id)
    if account is None:
        return
    try:
        adapter = adapter_for(account, db=db)
    except LookupError:
        return
    config = number_config_for(
        carrier=account.carrier,
        public_url=get_settings().public_url,
        sms=wants_sms_webhook(read.capabilities),
        friendly_name=read.name,
    )
    now = utcnow()
    try:
        await adapter.configure(carrier_number_id=read.carrier_number_id, config=config)
        sync = {"status": "ok", "voice_url": config.voice_url, "checked_at": now.isoformat()}
    except CarrierError as exc:
        log.warning("could not update %s at %s: %s", read.phone_number, exc.carrier, exc.code)
        sync = {"status": "error", "error": exc.message, "checked_at": now.isoformat()}
    async with db.session() as session:
        await session.execute(update(PhoneNumber).where(PhoneNumber.id == read.id).values(carrier_sync=sync))
        await session.commit()


# ── release ─────────────────────────────────────────────────────────────────────────────────


async def release_number(*, db: Database, actor: Actor, ref: str) -> PhoneNumberRead:
    """Release at the carrier first, then keep a ``released`` record. A second call is harmless.
    If the carrier refuses or times out, the number stays visibly ``releasing``; reconcile
    finishes it."""
    assert actor.org_id is not None
    async with db.uow(actor) as uow:
        pn = await _resolve(uow.session, actor.org_id, ref, for_update=True)
        if pn.status in ("released", "failed"):
            return await _read_one(uow.session, pn)
        if pn.status == "pending":
            raise Conflict(
                f"the purchase of {pn.phone_number} is still in flight; release it once it completes",
                code="purchase_in_flight",
            )
        if pn.status == "active":
            before = snapshot(await _read_one(uow.session, pn))
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
        return await _current(db, pn_id)
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
            async with db.session() as session:
                await session.execute(
                    update(PhoneNumber)
                    .where(PhoneNumber.id == pn_id)
                    .values(
                        carrier_sync={
                            "status": "release_failed",
                            "error": exc.message,
                            "checked_at": utcnow().isoformat(),
                        }
                    )
                )
                await session.commit()
            return await _current(db, pn_id)
    faults.point("release.after_carrier")
    async with db.uow(actor) as uow:
        result = await uow.session.execute(
            update(PhoneNumber)
            .where(PhoneNumber.id == pn_id, PhoneNumber.status == "releasing")
            .values(status="released", released_at=utcnow(), next_billed_at=None)
        )
        if getattr(result, "rowcount", 0) != 1:
            await uow.rollback()
            return await _current(db, pn_id)
        pn = await uow.session.get(PhoneNumber, pn_id)
        assert pn is not None
        await uow.session.refresh(pn)
        pn.touch()
        await uow.session.flush()
        read = await _read_one(uow.session, pn)
        _record(
            uow,
            pn,
            event="phone_number.released",
            action="phone_number.released",
            data=snapshot(read),
            after={"status": "released"},
        )
        numbers_changed(uow, [pn.phone_number])
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


__all__ = [
    "BuyResult",
    "buy",
    "count_numbers",
    "execute_order",
    "finish_releases",
    "get_number",
    "import_numbers",
    "import_one",
    "list_numbers",
    "release_number",
    "resolve_order",
    "resolve_pending_orders",
    "search_available",
    "to_read",
    "update_number",
    "update_numbers",
]

"""Reading numbers: the API shape of a row, resolving a reference, get, list, count.

A reference is a number's id or its E.164 in any format; another org's number and a missing one
look the same (404). Lists page by keyset over the time-ordered id, so a deep page costs what
the first does; vendor APIs that page by offset or sort by a column get that too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple
from urllib.parse import unquote

from sqlalchemy import Integer, Select, bindparam, exists, func, literal_column, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from numberplane.kernel import e164
from numberplane.kernel.db import Database, Query, as_utc, entity_columns, utcnow
from numberplane.kernel.errors import NotFound, ValidationFailed
from numberplane.kernel.ids import is_uuid
from numberplane.kernel.pagination import Page, check_limit, decode_cursor, encode_cursor
from numberplane.numbers.models import HOLDING_STATUSES, Order, PhoneNumber, PhoneNumberAgent
from numberplane.numbers.schemas import (
    DIRECTIONS,
    STATUSES,
    AgentBindingRead,
    NumberFilters,
    PhoneNumberRead,
    SipConfigRead,
)


def _sip_read(config: dict[str, Any] | None, password_enc: str | None) -> SipConfigRead | None:
    if config is None:
        return None
    return SipConfigRead(**config, password_set=password_enc is not None)


def to_read(pn: PhoneNumber, bindings: Sequence[Any] = (), order: Order | None = None) -> PhoneNumberRead:
    """The API shape of a number: from its ORM row or a lean read's row (the same attributes)."""
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


async def bindings_for(session: AsyncSession, ids: Sequence[str]) -> dict[str, list[PhoneNumberAgent]]:
    out: dict[str, list[PhoneNumberAgent]] = {i: [] for i in ids}
    for start in range(0, len(ids), 500):
        rows = await session.scalars(
            select(PhoneNumberAgent).where(PhoneNumberAgent.phone_number_id.in_(ids[start : start + 500]))
        )
        for row in rows:
            out[row.phone_number_id].append(row)
    return out


async def read_parts(session: AsyncSession, pn: PhoneNumber) -> tuple[list[PhoneNumberAgent], Order | None]:
    """What ``to_read`` needs besides the row: its agent bindings, and its order while pending."""
    bindings = (await bindings_for(session, [pn.id]))[pn.id]
    order = None
    if pn.status == "pending":
        order = await session.scalar(select(Order).where(Order.phone_number_id == pn.id).limit(1))
    return bindings, order


async def read_one(session: AsyncSession, pn: PhoneNumber) -> PhoneNumberRead:
    bindings, order = await read_parts(session, pn)
    return to_read(pn, bindings, order)


def snapshot(read: PhoneNumberRead) -> dict[str, Any]:
    return read.model_dump(mode="json", exclude={"order"})


def _named(ref: str) -> tuple[str | None, str, NotFound]:
    """(id, None) or (None, E.164) for a reference, and the 404 it answers when no number has it."""
    ref = unquote(ref).strip()
    not_found = NotFound(f"phone number {ref} not found", code="phone_number_not_found")
    if is_uuid(ref):
        return ref, "", not_found
    try:
        return None, e164.to_e164(ref), not_found
    except e164.InvalidPhoneNumber:
        raise not_found from None


async def resolve(session: AsyncSession, org_id: str, ref: str, *, for_update: bool = False) -> PhoneNumber:
    """The org's number named by id or by E.164 in any format. Foreign and missing look the same."""
    pn_id, number, not_found = _named(ref)
    if pn_id is not None:
        pn = await session.get(PhoneNumber, pn_id, with_for_update=for_update or None)
        if pn is None or pn.org_id != org_id:
            raise not_found
        return pn
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


class _Binding(NamedTuple):
    direction: str
    agent_id: str
    version: int | None
    weight: float
    position: int


# The reads of GET /v1/phone-numbers/{ref} (``kernel.db.Query``): the number with its agent
# bindings in one statement (a row per binding), and its order while pending.
_WITH_BINDINGS = (
    select(
        *entity_columns(PhoneNumber),
        *(getattr(PhoneNumberAgent, name).label(f"b_{name}") for name in _Binding._fields),
    )
    .select_from(PhoneNumber)
    .outerjoin(PhoneNumberAgent, PhoneNumberAgent.phone_number_id == PhoneNumber.id)
)
# The holding statuses written into the statement, as the partial indexes' predicates are.
_LIVE: list[Any] = [literal_column(f"'{status}'") for status in HOLDING_STATUSES]
_BY_ID = Query(
    _WITH_BINDINGS.where(PhoneNumber.id == bindparam("id"), PhoneNumber.org_id == bindparam("org_id"))
)
_HOLDER = (
    select(PhoneNumber.id)
    .where(PhoneNumber.org_id == bindparam("org_id"), PhoneNumber.phone_number == bindparam("number"))
    .order_by(PhoneNumber.status.in_(_LIVE).desc(), PhoneNumber.id.desc())
    .limit(1)
    .scalar_subquery()
)
_BY_NUMBER = Query(_WITH_BINDINGS.where(PhoneNumber.id == _HOLDER))
_ORDER = Query(
    select(Order.id, Order.status, Order.stage).where(Order.phone_number_id == bindparam("id")).limit(1)
)


def _newest(*, after: bool) -> Query:
    """A page of the org's live numbers, newest first (``id < after`` for the next), with bindings."""
    ids = select(PhoneNumber.id).where(
        PhoneNumber.org_id == bindparam("org_id"), PhoneNumber.status.in_(_LIVE)
    )
    if after:
        ids = ids.where(PhoneNumber.id < bindparam("after"))
    ids = ids.order_by(PhoneNumber.id.desc()).limit(bindparam("rows", type_=Integer))
    return Query(
        _WITH_BINDINGS.where(PhoneNumber.id.in_(ids.scalar_subquery())).order_by(PhoneNumber.id.desc())
    )


_PAGE, _PAGE_AFTER = _newest(after=False), _newest(after=True)


def _bindings(rows: Sequence[Any]) -> list[_Binding]:
    return [
        _Binding(r.b_direction, r.b_agent_id, r.b_version, r.b_weight, r.b_position)
        for r in rows
        if r.b_direction is not None
    ]


async def get_number(*, db: Database, org_id: str, ref: str) -> PhoneNumberRead:
    pn_id, number, not_found = _named(ref)
    if pn_id is not None:
        rows = await db.fetch(_BY_ID, id=pn_id, org_id=org_id)
    else:
        rows = await db.fetch(_BY_NUMBER, org_id=org_id, number=number)
    if not rows:
        raise not_found
    pn = rows[0]
    order = None
    if pn.status == "pending":
        orders = await db.fetch(_ORDER, id=pn.id)
        order = orders[0] if orders else None
    return to_read(pn, _bindings(rows), order)


async def current(db: Database, pn_id: str) -> PhoneNumberRead:
    """The number as it is now (after a step that may or may not have changed it)."""
    async with db.session() as session:
        pn = await session.get(PhoneNumber, pn_id)
        assert pn is not None
        return await read_one(session, pn)


def _filtered(query: Select[Any], org_id: str, filters: NumberFilters | None) -> Select[Any]:
    query = query.where(PhoneNumber.org_id == org_id)
    f = filters or NumberFilters()
    statuses = [s.strip() for s in (f.status or "").split(",") if s.strip()]
    unknown = sorted(set(statuses) - {*STATUSES, "all"})
    if unknown:
        raise ValidationFailed.field(
            "status", f"{unknown[0]!r} is not a status: use {', '.join(STATUSES)} or all (comma-separated)"
        )
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
    floor: str | None = None,
) -> Page[PhoneNumberRead]:
    """Keyset pagination over the time-ordered id: a deep page costs what the first does.

    ``offset`` and ``sort_by`` (phone_number, name, area_code, updated_at) exist for vendor APIs
    that page by offset and sort by a column; /v1 uses ``cursor`` over creation order. ``floor``
    (an id, inclusive) bounds a descending scan from below: see ``scan_floor``.
    """
    check_limit(limit)
    direction = order
    if cursor:
        after, direction = decode_cursor(cursor)
        if sort_by:
            raise ValidationFailed.field("sort_by", "cannot be combined with a cursor")
    plain = filters is None or filters == NumberFilters()
    if plain and not (sort_by or offset or floor) and direction == "desc":
        return await _live_page(db, org_id, limit, after if cursor else None)
    query = _filtered(select(PhoneNumber), org_id, filters)
    if cursor:
        query = query.where(PhoneNumber.id < after if direction == "desc" else PhoneNumber.id > after)
    if floor:
        query = query.where(PhoneNumber.id >= floor)
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
    async with db.reading() as session:
        rows = list(await session.scalars(query))
        more = len(rows) > limit
        rows = rows[:limit]
        bindings = await bindings_for(session, [r.id for r in rows])
    data = [to_read(r, bindings[r.id]) for r in rows]
    next_cursor = encode_cursor(rows[-1].id, direction) if more and rows else None
    return Page[PhoneNumberRead](data=data, has_more=more, next_cursor=next_cursor)


async def _live_page(db: Database, org_id: str, limit: int, after: str | None) -> Page[PhoneNumberRead]:
    """The list's commonest page (live numbers, newest first) in one lean read with bindings."""
    if after is None:
        rows = await db.fetch(_PAGE, org_id=org_id, rows=limit + 1)
    else:
        rows = await db.fetch(_PAGE_AFTER, org_id=org_id, after=after, rows=limit + 1)
    numbers: dict[str, list[Any]] = {}
    for row in rows:
        numbers.setdefault(row.id, []).append(row)
    more = len(numbers) > limit
    shown = list(numbers.values())[:limit]
    data = [to_read(group[0], _bindings(group)) for group in shown]
    next_cursor = encode_cursor(shown[-1][0].id, "desc") if more and shown else None
    return Page[PhoneNumberRead](data=data, has_more=more, next_cursor=next_cursor)


_SORTABLE = {
    "phone_number": PhoneNumber.phone_number,
    "name": PhoneNumber.name,
    "area_code": PhoneNumber.area_code,
    "updated_at": PhoneNumber.updated_at,
    "created_at": PhoneNumber.id,
}


async def scan_floor(
    *, db: Database, org_id: str, status: str | None = None, cursor: str | None = None, rows: int = 10_000
) -> str | None:
    """The id ``rows`` numbers below ``cursor`` (newest first, ``status`` as in the list), or None
    when fewer remain. A text search scans one such window per page (``list_numbers(floor=...)``),
    so its cost is bounded however rare the matches are; the next window starts below the floor."""
    query = _filtered(select(PhoneNumber.id), org_id, NumberFilters(status=status))
    if cursor:
        after, _direction = decode_cursor(cursor)
        query = query.where(PhoneNumber.id < after)
    query = query.order_by(PhoneNumber.id.desc()).offset(max(0, rows - 1)).limit(1)
    async with db.session() as session:
        return await session.scalar(query)


async def count_numbers(*, db: Database, org_id: str, filters: NumberFilters | None = None) -> int:
    query = _filtered(select(func.count()).select_from(PhoneNumber), org_id, filters)
    async with db.reading() as session:
        return int(await session.scalar(query) or 0)


async def agent_users(session: AsyncSession, agent_id: str, limit: int) -> list[dict[str, str]]:
    """The live numbers (at most ``limit``) bound to an agent: what blocks deleting it."""
    rows = await session.execute(
        select(PhoneNumber.id, PhoneNumber.phone_number)
        .join(PhoneNumberAgent, PhoneNumberAgent.phone_number_id == PhoneNumber.id)
        .where(PhoneNumberAgent.agent_id == agent_id, PhoneNumber.status.in_(HOLDING_STATUSES))
        .distinct()
        .order_by(PhoneNumber.id)
        .limit(limit)
    )
    return [{"id": r.id, "phone_number": r.phone_number} for r in rows]


async def account_users(session: AsyncSession, account_id: str) -> dict[str, int]:
    """What still uses a carrier account: live numbers, or purchases in flight (empty: nothing)."""
    numbers = await session.scalar(
        select(func.count())
        .select_from(PhoneNumber)
        .where(PhoneNumber.carrier_account_id == account_id, PhoneNumber.status.in_(HOLDING_STATUSES))
    )
    if numbers:
        return {"numbers": int(numbers)}
    orders = await session.scalar(
        select(func.count())
        .select_from(Order)
        .where(Order.carrier_account_id == account_id, Order.status == "pending")
    )
    return {"orders": int(orders)} if orders else {}

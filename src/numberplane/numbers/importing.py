"""Importing numbers the org already owns: one or 100,000 per request, nothing bought.

Each row stands alone: a bad row is reported with its reason and never costs the good ones.
Validate, then act:

1. every check that needs no carrier: the row's schema, the number, duplicates in the
   request, its agents, whether someone already holds it, whether its carrier account exists;
2. only for rows that passed: ask the carrier whether the account holds the number (a read);
3. only for rows still standing: point the number's webhooks at Numberplane (the one action at
   a carrier), then insert them in chunks of ``IMPORT_CHUNK``, each chunk one unit of work with
   its events, its audit row and its change notification.

So a row that fails validation never changes anything at any carrier.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from types import SimpleNamespace
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError

from numberplane.agents import service as agents
from numberplane.agents.models import Agent
from numberplane.agents.schemas import AgentCreate
from numberplane.carriers.base import CarrierAdapter, CarrierError
from numberplane.carriers.models import CarrierAccount
from numberplane.carriers.registry import adapter_for
from numberplane.carriers.schemas import ROUTING_ONLY
from numberplane.kernel import e164, faults
from numberplane.kernel.changes import numbers_changed
from numberplane.kernel.db import Actor, Database, utcnow
from numberplane.kernel.errors import Conflict, FieldError, ValidationFailed
from numberplane.kernel.gcpolicy import bulk_allocations
from numberplane.kernel.ids import new_id
from numberplane.kernel.inputs import unstorable
from numberplane.kernel.outbox import BULK_SLICE, audit, emit, emit_many
from numberplane.numbers import import_retry
from numberplane.numbers.accounts import account_for
from numberplane.numbers.configuration import binding_rows, carrier_config, config_fields
from numberplane.numbers.import_rows import Built, Prepared, import_row_values, table_of
from numberplane.numbers.models import HOLDING_STATUSES, PhoneNumber, PhoneNumberAgent
from numberplane.numbers.reading import get_number
from numberplane.numbers.schemas import (
    DIRECTIONS,
    AgentBinding,
    ImportReport,
    ImportRowResult,
    PhoneNumberImportRow,
    PhoneNumberRead,
)

IMPORT_CHUNK = 1000
CARRIER_IMPORT_CONCURRENCY = 8
ANALYZE_AFTER_ROWS = 10_000

_ROW = TypeAdapter(PhoneNumberImportRow)


def _row_error(exc: ValidationError) -> dict[str, str]:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err.get("loc", ())) or "row"
    msg = str(err.get("msg", "is invalid")).removeprefix("Value error, ")
    return {"code": "invalid", "field": field, "message": msg}


async def import_one(
    *,
    db: Database,
    actor: Actor,
    row: PhoneNumberImportRow | dict[str, Any],
    new_inbound_agent: AgentCreate | None = None,
) -> PhoneNumberRead:
    """Import a single number; errors are raised (not reported per row). With
    ``new_inbound_agent``, that agent is created in the same unit of work as the number and bound
    as its only inbound agent."""
    data = row if isinstance(row, dict) else row.model_dump(mode="json", exclude_unset=True)
    if isinstance(row, PhoneNumberImportRow):
        data = {name: getattr(row, name) for name in row.model_fields_set}
    report = await import_numbers(
        db=db, actor=actor, rows=[data], emit_completed=False, new_inbound_agent=new_inbound_agent
    )
    result = report.results[0]
    if result.status == "unchanged":  # one number created through a vendor API: a duplicate
        raise Conflict(
            f"{result.phone_number} is already registered in this org (id {result.id})",
            code="phone_number_exists",
        )
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
    new_inbound_agent: AgentCreate | None = None,
    first_row: int = 1,
    heartbeat: Callable[[], Awaitable[None]] | None = None,
) -> ImportReport:
    """Register numbers the org already owns (nothing is bought). Each row stands alone.
    ``first_row`` is the row number a person sees for ``rows[0]`` (a CSV batch's offset);
    ``heartbeat`` is awaited after each committed chunk (an idempotent import's claim)."""
    assert actor.org_id is not None
    if len(rows) < 5000:
        return await _import(
            db, actor, rows, defaults, emit_completed, progress, new_inbound_agent, first_row, heartbeat
        )
    with bulk_allocations():
        return await _import(
            db, actor, rows, defaults, emit_completed, progress, new_inbound_agent, first_row, heartbeat
        )


async def _import(
    db: Database,
    actor: Actor,
    rows: Sequence[Any],
    defaults: dict[str, Any] | None,
    emit_completed: bool,
    progress: Any,
    new_inbound_agent: AgentCreate | None,
    first_row: int,
    heartbeat: Callable[[], Awaitable[None]] | None,
) -> ImportReport:
    assert actor.org_id is not None
    org_id = actor.org_id
    results: dict[int, ImportRowResult] = {}
    # CPU-heavy steps (schema, phonenumbers, row building, the report) run in a worker thread,
    # so a 100,000-row import never holds the event loop that answers every org's calls.
    prepared = await asyncio.to_thread(_parse_rows, rows, defaults or {}, results, first_row)
    prepared = await _check_agents(db, org_id, prepared, results)
    prepared = await _check_holders(db, org_id, prepared, results)
    prepared = await _check_accounts(db, org_id, prepared, results)
    prepared = await _at_carriers(db, prepared, results, _verify_held)
    prepared = await _at_carriers(db, prepared, results, _point_at_us)

    total_chunks = max(1, (len(prepared) + IMPORT_CHUNK - 1) // IMPORT_CHUNK)
    for chunk_no, start in enumerate(range(0, len(prepared), IMPORT_CHUNK)):
        chunk = prepared[start : start + IMPORT_CHUNK]
        await _insert_chunk(db, actor, chunk, results, new_inbound_agent)
        if progress is not None:
            progress(chunk_no + 1, total_chunks)
        faults.point("import.after_chunk")
        if heartbeat is not None:
            await heartbeat()

    if len(prepared) >= ANALYZE_AFTER_ROWS and db.dialect == "postgresql":
        # Fresh statistics, so the planner does not treat a just-filled table as empty.
        async with db.engine.begin() as conn:
            await conn.execute(text("ANALYZE phone_numbers"))
    report = await asyncio.to_thread(_report, results, first_row)
    if emit_completed:
        async with db.uow(actor) as uow:
            emit(
                uow,
                type="import.completed",
                org_id=org_id,
                subject_type="import",
                subject_id=new_id(),
                data={
                    "total": report.total,
                    "created": report.created,
                    "unchanged": report.unchanged,
                    "failed": report.failed,
                },
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


def _report(results: dict[int, ImportRowResult], first_row: int) -> ImportReport:
    ordered = [results[i].model_copy(update={"row": first_row + i}) for i in sorted(results)]
    created = sum(1 for r in ordered if r.status == "created")
    unchanged = sum(1 for r in ordered if r.status == "unchanged")
    return ImportReport.model_construct(
        total=len(ordered),
        created=created,
        unchanged=unchanged,
        failed=len(ordered) - created - unchanged,
        results=ordered,
    )


# ── 1. validation without a carrier ─────────────────────────────────────────────────────────


def _failed(p_index: int, number: str | None, code: str, field: str, message: str) -> ImportRowResult:
    return ImportRowResult(
        index=p_index,
        phone_number=number,
        status="failed",
        error={"code": code, "field": field, "message": message},
    )


def _parse_rows(
    rows: Sequence[Any], base: dict[str, Any], results: dict[int, ImportRowResult], first_row: int
) -> list[Prepared]:
    prepared: list[Prepared] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(rows):
        if not isinstance(raw, dict):
            results[index] = _failed(index, None, "invalid", "row", "must be an object")
            continue
        merged = {**base, **raw}
        bad = next(unstorable(merged), None)  # text no database stores fails this row alone
        if bad is not None:
            results[index] = _failed(index, None, bad.code, bad.field, bad.message)
            continue
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
            results[index] = _failed(
                index, row.phone_number, "invalid_phone_number", "phone_number", exc.reason
            )
            continue
        if parsed.e164 in seen:
            results[index] = _failed(
                index,
                parsed.e164,
                "duplicate",
                "phone_number",
                f"duplicates row {first_row + seen[parsed.e164]}",
            )
            continue
        seen[parsed.e164] = index
        prepared.append(Prepared(index, row, parsed, config_fields(row)))
    return prepared


def _fail_rows(
    items: Iterable[Prepared], results: dict[int, ImportRowResult], code: str, field: str, message: Any
) -> None:
    for p in items:
        text_ = message(p) if callable(message) else message
        results[p.index] = _failed(p.index, p.parsed.e164, code, field, text_)


async def _check_agents(
    db: Database, org_id: str, prepared: list[Prepared], results: dict[int, ImportRowResult]
) -> list[Prepared]:
    wanted = sorted(
        await asyncio.to_thread(
            lambda: {
                b.agent_id
                for p in prepared
                for d in DIRECTIONS
                for b in (getattr(p.row, f"{d}_agents") or [])
            }
        )
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


async def _check_holders(
    db: Database, org_id: str, prepared: list[Prepared], results: dict[int, ImportRowResult]
) -> list[Prepared]:
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
    # A retried import: rows this org already imported with exactly these settings are unchanged.
    now = utcnow()
    ours = [p for p in prepared if holders.get(p.parsed.e164, ("",))[0] == org_id]
    wanted = await asyncio.to_thread(
        lambda: [(holders[p.parsed.e164][1], *import_row_values(p, org_id, now)) for p in ours]
    )
    same = await import_retry.unchanged_ids(db, wanted)
    keep = []
    for p in prepared:
        holder = holders.get(p.parsed.e164)
        if holder is None:
            keep.append(p)
        elif holder[0] == org_id and holder[1] in same:
            results[p.index] = ImportRowResult(
                index=p.index, phone_number=p.parsed.e164, status="unchanged", id=holder[1]
            )
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


async def _check_accounts(
    db: Database, org_id: str, prepared: list[Prepared], results: dict[int, ImportRowResult]
) -> list[Prepared]:
    """Rows naming a carrier account: the account must be the org's (or platform-wide)."""
    named = {p.row.carrier_account_id for p in prepared if p.row.carrier_account_id}
    if not named:
        return prepared
    accounts: dict[str, CarrierAccount | None] = {}
    async with db.session() as session:
        for named_id in sorted(i for i in named if i):
            try:
                accounts[named_id] = await account_for(session, org_id, named_id)
            except ValidationFailed:
                accounts[named_id] = None
    keep = []
    for p in prepared:
        account_id = p.row.carrier_account_id
        if not account_id:
            keep.append(p)
            continue
        account: CarrierAccount | None = accounts.get(account_id)
        if account is None:
            _fail_rows(
                [p], results, "not_found", "carrier_account_id", f"carrier account {account_id} not found"
            )
            continue
        p.account = account
        p.carrier = account.carrier
        keep.append(p)
    return keep


# ── 2 and 3. at the carrier: a read to verify, then the one action ──────────────────────────


async def _verify_held(adapter: CarrierAdapter, p: Prepared) -> str | None:
    """The carrier must hold the number on that account. Returns a reason to refuse, or None."""
    assert p.account is not None
    held = await adapter.find(phone_number=p.parsed.e164)
    if held is None:
        return f"{p.account.carrier} account {p.account.id} does not hold {p.parsed.e164}"
    p.carrier_number_id = held.carrier_number_id
    return None


async def _point_at_us(adapter: CarrierAdapter, p: Prepared) -> str | None:
    """Point the number's webhooks at Numberplane."""
    assert p.account is not None and p.carrier_number_id is not None
    capabilities = p.row.capabilities.model_dump() if p.row.capabilities else None
    config = carrier_config(carrier=p.account.carrier, capabilities=capabilities, name=p.row.name)
    await adapter.configure(carrier_number_id=p.carrier_number_id, config=config)
    return None


async def _at_carriers(
    db: Database, prepared: list[Prepared], results: dict[int, ImportRowResult], step: Any
) -> list[Prepared]:
    """Run ``step`` for each row on an API-driven account (bounded concurrency); a row the step
    refuses, or whose carrier errs, fails alone. Routing-only accounts (Vonage) have no API."""
    on_api = [p for p in prepared if p.account is not None and p.account.carrier not in ROUTING_ONLY]
    if not on_api:
        return prepared
    adapters: dict[str, CarrierAdapter] = {}
    semaphore = asyncio.Semaphore(CARRIER_IMPORT_CONCURRENCY)
    failed: set[int] = set()

    async def one(p: Prepared) -> None:
        assert p.account is not None
        adapter = adapters.get(p.account.id)
        if adapter is None:
            adapter = adapters[p.account.id] = adapter_for(p.account, db=db)
        async with semaphore:
            try:
                refusal = await step(adapter, p)
            except CarrierError as exc:
                failed.add(p.index)
                _fail_rows([p], results, exc.code, "carrier_account_id", exc.message)
                return
        if refusal is not None:
            failed.add(p.index)
            _fail_rows([p], results, "not_owned", "phone_number", refusal)

    await asyncio.gather(*(one(p) for p in on_api))
    return [p for p in prepared if p.index not in failed]


# ── writing ─────────────────────────────────────────────────────────────────────────────────


async def _insert_chunk(
    db: Database,
    actor: Actor,
    chunk: list[Prepared],
    results: dict[int, ImportRowResult],
    new_agent: AgentCreate | None,
) -> None:
    """One unit of work per chunk: rows, bindings, events and one audit row. If a concurrent
    writer took a number meanwhile, fall back to row by row so only that row fails."""
    assert actor.org_id is not None
    now, org_id = utcnow(), actor.org_id
    built = await asyncio.to_thread(lambda: [(p, *import_row_values(p, org_id, now)) for p in chunk])
    try:
        await _write_rows(db, actor, built, new_agent)
    except IntegrityError:
        for item in built:
            try:
                await _write_rows(db, actor, [item], new_agent)
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


async def _write_rows(db: Database, actor: Actor, built: list[Built], new_agent: AgentCreate | None) -> None:
    async with db.uow(actor) as uow:
        if new_agent is not None:
            # A single-number import that brings its own inbound agent (one unit of work).
            agent = await agents.create_in(uow, new_agent)
            built = [
                (
                    p,
                    record,
                    [
                        *[b for b in rows if b["direction"] != "inbound"],
                        *_inbound_only(record["id"], agent.id),
                    ],
                )
                for p, record, rows in built
            ]
        # Only the columns this chunk uses: the rest are NULL by default, and every bound column
        # costs per-row processing (most of an import's settings are absent).
        used = {k for _, record, _ in built for k, v in record.items() if v is not None}
        records = [{k: record[k] for k in used} for _, record, _ in built]
        bindings = [b for _, _, rows in built for b in rows]
        for start in range(0, len(records), BULK_SLICE):  # slices: the loop is never held long
            await uow.session.execute(insert(table_of(PhoneNumber)), records[start : start + BULK_SLICE])
        for start in range(0, len(bindings), BULK_SLICE):
            await uow.session.execute(
                insert(table_of(PhoneNumberAgent)), bindings[start : start + BULK_SLICE]
            )
        await emit_many(
            uow,
            type="phone_number.created",
            org_id=actor.org_id,
            subject_type="phone_number",
            items=[(record["id"], _created_event(record, rows)) for _, record, rows in built],
        )
        audit(
            uow,
            action="phone_numbers.imported",
            target_type="phone_number",
            target_id=records[0]["id"] if len(records) == 1 else None,
            after={"count": len(records), "phone_numbers": [r["phone_number"] for r in records]},
        )
        numbers_changed(uow, [r["phone_number"] for r in records])
        await uow.commit()


def _inbound_only(number_id: str, agent_id: str) -> list[dict[str, Any]]:
    data = SimpleNamespace(inbound_agents=[AgentBinding(agent_id=agent_id)])
    return binding_rows(number_id, data, {"inbound_agents"})  # type: ignore[arg-type]


def _created_event(record: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
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

"""Changing a number's settings: one unit of work per change, then the carrier kept in step.

``update_number`` is partial: only the fields set on the patch change; ``None`` clears a field.
The number's row is locked for the change, so concurrent updates through different APIs apply
one after the other. A vendor API whose settings are whole objects (``extras``, ``sip_*``,
``voice``) gives its patch as a function of the number (``PatchFor``): the function runs inside
the transaction, on the locked row as it is, so what it lays over the stored object is never a
stale copy and a concurrent change through another API is never lost.

A change the carrier must know about (its name, SMS) is pushed after the
commit; the outcome is recorded as its own audited change (``lifecycle.record_carrier_sync``),
and reconcile repairs what a failed push left behind.

A change may bring the number's inbound agent along (a vendor API whose number embeds its
agent): a new version of the bound agent, or a new agent bound in its place, in the same unit
of work as the number's change, so both land or neither does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from numberplane.agents import service as agents
from numberplane.agents.schemas import AgentCreate, AgentRead, AgentUpdate
from numberplane.carriers.base import CarrierError
from numberplane.carriers.models import CarrierAccount
from numberplane.carriers.registry import adapter_for
from numberplane.kernel.changes import numbers_changed
from numberplane.kernel.db import Actor, Database, UnitOfWork, utcnow
from numberplane.kernel.errors import Conflict, NotFound, ValidationFailed
from numberplane.numbers import lifecycle
from numberplane.numbers.configuration import (
    DIRECTIONS,
    apply_config,
    carrier_config,
    check_agents,
    config_fields,
    set_bindings,
)
from numberplane.numbers.reading import read_one, read_parts, resolve, snapshot, to_read
from numberplane.numbers.schemas import AgentBinding, PhoneNumberRead, PhoneNumberUpdate

log = logging.getLogger("numberplane.numbers")

MAX_BATCH = 1000

# A patch computed from the number as it is inside the update's transaction (row locked).
PatchFor = Callable[[PhoneNumberRead], PhoneNumberUpdate]


@dataclass(frozen=True)
class InboundAgentChange:
    """A vendor API's embedded agent, applied with the number: ``patch`` (built from the bound
    agent as it is, inside the transaction) makes a new version of the number's primary inbound
    agent; when none is bound, ``create`` builds a new agent that is bound instead."""

    patch: Callable[[AgentRead], AgentUpdate] | None = None
    create: Callable[[], AgentCreate] | None = None


async def update_in(
    uow: UnitOfWork, org_id: str, ref: str, patch: PhoneNumberUpdate | PatchFor, prefix: str = ""
) -> PhoneNumberRead:
    """Apply ``patch`` to the org's number ``ref`` inside ``uow`` (row locked), with its event,
    audit row and change notification. A ``PatchFor`` is called with the locked row's state."""
    session = uow.session
    pn = await resolve(session, org_id, ref, for_update=True)
    if pn.status in ("released", "failed"):
        raise Conflict(
            f"phone number {pn.phone_number} is {pn.status}; it can no longer be changed",
            code="phone_number_not_active",
        )
    bindings, order = await read_parts(session, pn)
    current = to_read(pn, bindings, order)
    before = snapshot(current)
    if not isinstance(patch, PhoneNumberUpdate):
        patch = patch(current)
    fields = config_fields(patch)
    await check_agents(session, org_id, patch, prefix)
    apply_config(pn, patch, fields)
    await set_bindings(session, pn.id, patch, fields)
    pn.touch()
    await session.flush()
    # Bindings are read again only if the patch replaced some (a query less per usual PATCH).
    rebound = any(f"{d}_agents" in fields for d in DIRECTIONS)
    read = await read_one(session, pn) if rebound else to_read(pn, bindings, order)
    after = snapshot(read)
    changed = sorted(
        k
        for k in after
        if after.get(k) != before.get(k) and k not in ("updated_at", "last_modification_timestamp")
    )
    lifecycle.record(
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


async def update_number(
    *,
    db: Database,
    actor: Actor,
    ref: str,
    patch: PhoneNumberUpdate | PatchFor,
    inbound_agent: InboundAgentChange | None = None,
) -> PhoneNumberRead:
    """Partial update: only the fields set on ``patch`` change; ``None`` clears a field. With
    ``inbound_agent``, the number's agent changes in the same unit of work. ``patch`` may be a
    ``PatchFor``: computed from the number as it is once its row is locked."""
    assert actor.org_id is not None
    applied: list[PhoneNumberUpdate] = []

    def recording(current: PhoneNumberRead) -> PhoneNumberUpdate:
        made = patch(current) if not isinstance(patch, PhoneNumberUpdate) else patch
        applied.append(made)
        return made

    async with db.uow(actor) as uow:
        await uow.lock_for_write()
        if inbound_agent is not None:
            current = await read_one(
                uow.session, await resolve(uow.session, actor.org_id, ref, for_update=True)
            )
            fixed = await _with_inbound_agent(uow, actor.org_id, current, recording(current), inbound_agent)
            applied[:] = [fixed]
            read = await update_in(uow, actor.org_id, ref, fixed)
        else:
            read = await update_in(uow, actor.org_id, ref, recording)
        await uow.commit()
    if {"capabilities", "name"} & config_fields(applied[-1]):
        await push_carrier_config(db, actor, read)
    return read


async def _with_inbound_agent(
    uow: UnitOfWork,
    org_id: str,
    current: PhoneNumberRead,
    patch: PhoneNumberUpdate,
    change: InboundAgentChange,
) -> PhoneNumberUpdate:
    bound = None
    for binding in current.inbound_agents:  # the heaviest, the first listed on a tie
        if bound is None or binding.weight > bound.weight:
            bound = binding
    if change.patch is not None and bound is not None:
        existing = await agents.get_in(uow, bound.agent_id)
        await agents.update_in(uow, bound.agent_id, change.patch(existing))
        return patch
    if change.create is None:
        raise ValidationFailed.field("inbound_agent", "the number has no inbound agent to update")
    created = await agents.create_in(uow, change.create())
    return patch.model_copy(update={"inbound_agents": [AgentBinding(agent_id=created.id)]})


async def update_numbers(
    *, db: Database, actor: Actor, patches: Sequence[tuple[str, PhoneNumberUpdate | PatchFor]]
) -> list[PhoneNumberRead]:
    """Several updates, all or nothing. Field names in errors are prefixed with ``[i].``."""
    assert actor.org_id is not None
    if len(patches) > MAX_BATCH:
        raise ValidationFailed.field("phoneNumbers", f"at most {MAX_BATCH} numbers per request")
    out = []
    async with db.uow(actor) as uow:
        await uow.lock_for_write()
        for i, (ref, patch) in enumerate(patches):
            try:
                out.append(await update_in(uow, actor.org_id, ref, patch, prefix=f"[{i}]."))
            except NotFound as exc:
                raise NotFound(f"[{i}]: {exc.message}", code=exc.code) from exc
        await uow.commit()
    return out


async def push_carrier_config(db: Database, actor: Actor, read: PhoneNumberRead) -> None:
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
    config = carrier_config(carrier=account.carrier, capabilities=read.capabilities, name=read.name)
    now = utcnow()
    try:
        await adapter.configure(carrier_number_id=read.carrier_number_id, config=config)
        sync = {"status": "ok", "voice_url": config.voice_url, "checked_at": now.isoformat()}
    except CarrierError as exc:
        log.warning("could not update %s at %s: %s", read.phone_number, exc.carrier, exc.code)
        sync = {"status": "error", "error": exc.message, "checked_at": now.isoformat()}
    async with db.uow(actor) as uow:
        if await lifecycle.record_carrier_sync(uow, read.id, sync, action="phone_number.carrier_synced"):
            await uow.commit()

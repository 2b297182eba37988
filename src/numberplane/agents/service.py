"""Agents: create, read, update (a new version each time), delete (refused while numbers use it).

``create_in`` and ``update_in`` work inside a caller's unit of work, so a flow that changes an
agent and a number together (a Vocode purchase with an inline agent) commits both at once.
Agents sit below numbers: whether numbers still use an agent is asked through the ``in_use``
function the caller passes to ``delete_agent`` (``numbers.service.agent_users``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import Integer, bindparam, select

from numberplane.agents.models import Agent, AgentVersion
from numberplane.agents.schemas import CONFIG_FIELDS, AgentCreate, AgentRead, AgentUpdate, AgentVersionRead
from numberplane.kernel.changes import agents_changed
from numberplane.kernel.db import Actor, Database, Query, UnitOfWork, as_utc, entity_columns, utcnow
from numberplane.kernel.errors import Conflict, NotFound
from numberplane.kernel.ids import new_id
from numberplane.kernel.outbox import record_change
from numberplane.kernel.pagination import Page, check_limit, decode_cursor, page

MAX_NUMBERS_NAMED = 20

# (session, agent_id, at most) -> [{"id", "phone_number"}] of the live numbers using the agent.
AgentUsers = Callable[[Any, str, int], Awaitable[list[dict[str, str]]]]


# The reads of the API's GETs, written once (``kernel.db.Query``): rows read like an Agent.
_COLUMNS = entity_columns(Agent)
_ONE = Query(select(*_COLUMNS).where(Agent.id == bindparam("agent_id"), Agent.org_id == bindparam("org_id")))
# The org's agent with one of its versions (the version's columns NULL when it has none such).
_VERSION = Query(
    select(Agent.id.label("agent_id"), AgentVersion.version, AgentVersion.config, AgentVersion.created_at)
    .select_from(Agent)
    .outerjoin(
        AgentVersion, (AgentVersion.agent_id == Agent.id) & (AgentVersion.version == bindparam("version"))
    )
    .where(Agent.id == bindparam("agent_id"), Agent.org_id == bindparam("org_id"))
)
_NEWEST = select(*_COLUMNS).where(Agent.org_id == bindparam("org_id"))
_ROWS = bindparam("rows", type_=Integer)
_PAGE = Query(_NEWEST.order_by(Agent.id.desc()).limit(_ROWS))
_PAGE_AFTER = Query(_NEWEST.where(Agent.id < bindparam("after")).order_by(Agent.id.desc()).limit(_ROWS))


def to_read(agent: Agent) -> AgentRead:
    cfg = agent.config or {}
    return AgentRead(
        id=agent.id,
        org_id=agent.org_id,
        name=agent.name,
        version=agent.version,
        language=cfg.get("language"),
        voice=cfg.get("voice"),
        prompt=cfg.get("prompt"),
        initial_message=cfg.get("initial_message"),
        actions=cfg.get("actions") or [],
        webhook=cfg.get("webhook"),
        connect=cfg.get("connect"),
        metadata=cfg.get("metadata") or {},
        created_at=as_utc(agent.created_at) or utcnow(),
        updated_at=as_utc(agent.updated_at) or utcnow(),
    )


def _config_from(data: AgentCreate | AgentUpdate, base: dict[str, Any] | None = None) -> dict[str, Any]:
    config = dict(base or {})
    sent = data.model_fields_set
    for name in CONFIG_FIELDS:
        if name in sent:
            value = getattr(data, name)
            if value is None:
                config.pop(name, None)
            elif isinstance(value, list):
                config[name] = [
                    v.model_dump(exclude_none=True) if hasattr(v, "model_dump") else v for v in value
                ]
            elif hasattr(value, "model_dump"):
                config[name] = value.model_dump(exclude_none=True)
            else:
                config[name] = value
    return config


def _record(
    uow: UnitOfWork,
    agent: Agent,
    event: str,
    data: dict[str, Any],
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    record_change(
        uow,
        event=event,
        subject_type="agent",
        subject_id=agent.id,
        org_id=agent.org_id,
        data=data,
        before=before,
        after=after,
    )


def snapshot(agent: Agent) -> dict[str, Any]:
    return {"name": agent.name, "version": agent.version, **(agent.config or {})}


async def _owned(session: Any, org_id: str, agent_id: str, *, for_update: bool = False) -> Agent:
    agent = (
        await session.get(Agent, agent_id, with_for_update=for_update or None)
        if len(agent_id) <= 64
        else None
    )
    if agent is None or agent.org_id != org_id:
        raise NotFound(f"agent {agent_id} not found", code="agent_not_found")
    return agent  # type: ignore[no-any-return]


async def create_in(uow: UnitOfWork, data: AgentCreate) -> AgentRead:
    """A new agent (version 1) in the caller's unit of work, with its event and audit row."""
    org_id = uow.actor.org_id
    assert org_id is not None
    now = utcnow()
    agent = Agent(
        id=new_id(),
        org_id=org_id,
        name=data.name,
        version=1,
        config=_config_from(data),
        created_at=now,
        updated_at=now,
    )
    uow.session.add(agent)
    uow.session.add(AgentVersion(agent_id=agent.id, version=1, config=snapshot(agent), created_at=now))
    out = to_read(agent)
    _record(uow, agent, "agent.created", out.model_dump(mode="json"), after=snapshot(agent))
    await uow.session.flush()
    return out


async def create_agent(*, db: Database, actor: Actor, data: AgentCreate) -> AgentRead:
    async with db.uow(actor) as uow:
        out = await create_in(uow, data)
        await uow.commit()
    return out


async def get_agent(*, db: Database, org_id: str, agent_id: str) -> AgentRead:
    rows = await db.fetch(_ONE, agent_id=agent_id, org_id=org_id) if len(agent_id) <= 64 else []
    if not rows:
        raise NotFound(f"agent {agent_id} not found", code="agent_not_found")
    return to_read(rows[0])


async def get_in(uow: UnitOfWork, agent_id: str) -> AgentRead:
    """The org's agent, read inside the caller's unit of work (locked for an update to follow)."""
    org_id = uow.actor.org_id
    assert org_id is not None
    return to_read(await _owned(uow.session, org_id, agent_id, for_update=True))


async def get_agents(*, db: Database, org_id: str, ids: list[str]) -> dict[str, AgentRead]:
    """The org's agents among ``ids`` (foreign or missing ids are simply absent)."""
    wanted = sorted({i for i in ids if i and len(i) <= 64})
    out: dict[str, AgentRead] = {}
    async with db.session() as session:
        for start in range(0, len(wanted), 500):
            rows = await session.scalars(
                select(Agent).where(Agent.org_id == org_id, Agent.id.in_(wanted[start : start + 500]))
            )
            out.update({a.id: to_read(a) for a in rows})
    return out


async def get_agent_version(*, db: Database, org_id: str, agent_id: str, version: int) -> AgentVersionRead:
    rows = (
        await db.fetch(_VERSION, agent_id=agent_id, org_id=org_id, version=version)
        if len(agent_id) <= 64
        else []
    )
    if not rows:
        raise NotFound(f"agent {agent_id} not found", code="agent_not_found")
    row = rows[0]
    if row.version is None:
        raise NotFound(f"agent {agent_id} has no version {version}", code="agent_version_not_found")
    return AgentVersionRead(
        agent_id=row.agent_id,
        version=row.version,
        config=row.config,
        created_at=as_utc(row.created_at) or utcnow(),
    )


async def list_agents(
    *, db: Database, org_id: str, limit: int = 50, cursor: str | None = None
) -> Page[AgentRead]:
    check_limit(limit)
    if cursor:
        after, _ = decode_cursor(cursor)
        rows = await db.fetch(_PAGE_AFTER, org_id=org_id, after=after, rows=limit + 1)
    else:
        rows = await db.fetch(_PAGE, org_id=org_id, rows=limit + 1)
    return page(rows, limit=limit, read=to_read)


async def update_in(uow: UnitOfWork, agent_id: str, patch: AgentUpdate) -> AgentRead:
    """Apply ``patch`` in the caller's unit of work as a new version; numbers that follow the
    latest version pick it up (every process's route cache is told)."""
    org_id = uow.actor.org_id
    assert org_id is not None
    agent = await _owned(uow.session, org_id, agent_id, for_update=True)
    before = snapshot(agent)
    if "name" in patch.model_fields_set and patch.name is not None:
        agent.name = patch.name
    agent.config = _config_from(patch, agent.config)
    agent.version += 1
    agent.updated_at = utcnow()
    uow.session.add(
        AgentVersion(
            agent_id=agent.id, version=agent.version, config=snapshot(agent), created_at=agent.updated_at
        )
    )
    out = to_read(agent)
    _record(uow, agent, "agent.updated", out.model_dump(mode="json"), before=before, after=snapshot(agent))
    agents_changed(uow, [agent.id])
    await uow.session.flush()
    return out


async def update_agent(*, db: Database, actor: Actor, agent_id: str, patch: AgentUpdate) -> AgentRead:
    """Apply ``patch`` and record it as a new version; numbers that follow the latest pick it up."""
    async with db.uow(actor) as uow:
        out = await update_in(uow, agent_id, patch)
        await uow.commit()
    return out


async def delete_in(uow: UnitOfWork, agent_id: str, *, in_use: AgentUsers) -> None:
    """Delete in the caller's unit of work, unless numbers still use the agent (``in_use`` says
    which): then a 409 that names them."""
    org_id = uow.actor.org_id
    assert org_id is not None
    agent = await _owned(uow.session, org_id, agent_id, for_update=True)
    users = await in_use(uow.session, agent.id, MAX_NUMBERS_NAMED + 1)
    if users:
        shown = users[:MAX_NUMBERS_NAMED]
        names = ", ".join(r["phone_number"] for r in shown)
        more = " and more" if len(users) > MAX_NUMBERS_NAMED else ""
        raise Conflict(
            f"agent {agent_id} is used by {names}{more}; detach it from those numbers first",
            code="agent_in_use",
            extra={"phone_numbers": shown},
        )
    before = snapshot(agent)
    # Released numbers' bindings to it go with it (ON DELETE CASCADE): history must not block.
    await uow.session.delete(agent)
    agents_changed(uow, [agent.id])
    _record(uow, agent, "agent.deleted", {"id": agent.id, "name": agent.name}, before=before)


async def delete_agent(*, db: Database, actor: Actor, agent_id: str, in_use: AgentUsers) -> None:
    """Delete, unless numbers still use the agent (``in_use`` says which): then a 409 that names them."""
    async with db.uow(actor) as uow:
        await delete_in(uow, agent_id, in_use=in_use)
        await uow.commit()

"""RouteSnapshot: everything routing needs about one number, precomputed and immutable.

Loaded with one indexed query (``phone_numbers`` by E.164 through the partial unique index on
holding numbers, left-joined to its inbound agent bindings, each agent's latest configuration
and the pinned version's configuration). Cached by E.164 in ``routing.cache``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy import and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from numberplane.agents.models import Agent, AgentVersion
from numberplane.numbers.models import HOLDING_STATUSES, PhoneNumber, PhoneNumberAgent

DEFAULT_WEBHOOK_TIMEOUT_MS = 10_000
DEFAULT_WEBHOOK_ATTEMPTS = 3


class AgentTarget(NamedTuple):
    """One agent a call may go to, at a resolved version, with where to hand the call over."""

    agent_id: str
    version: int | None
    weight: float
    stream_url: str | None = None
    sip_uri: str | None = None
    pinned: bool = False

    @property
    def connectable(self) -> bool:
        return bool(self.stream_url or self.sip_uri)


class CallHandlerView(NamedTuple):
    type: str = "agents"
    request_url: str | None = None
    request_method: str = "POST"
    fallback_url: str | None = None
    fallback_method: str = "POST"


class RouteSnapshot(NamedTuple):
    """Immutable, and a tuple of plain values: a few hundred thousand cached snapshots are
    invisible to the garbage collector (CPython untracks tuples of atoms), so full collections
    stay short however large the cache grows."""

    number_id: str
    org_id: str
    e164: str
    status: str
    carrier: str
    carrier_account_id: str | None
    allowed_inbound_countries: tuple[str, ...] | None = None
    outbound: bool = False
    callback_forwarding_number: str | None = None
    call_handler: CallHandlerView | None = None
    inbound_webhook_url: str | None = None
    inbound_webhook_timeout_ms: int = DEFAULT_WEBHOOK_TIMEOUT_MS
    inbound_webhook_attempts: int = DEFAULT_WEBHOOK_ATTEMPTS
    fallback_number: str | None = None
    fallback_sip_uri: str | None = None
    language: str | None = None
    agents: tuple[AgentTarget, ...] = ()

    @property
    def agent_ids(self) -> frozenset[str]:
        return frozenset(a.agent_id for a in self.agents)


def connect_of(connect: Any) -> tuple[str | None, str | None]:
    """(stream_url, sip_uri) from an agent configuration's ``connect`` object."""
    if not isinstance(connect, dict):
        return None, None
    stream = connect.get("stream_url")
    sip = connect.get("sip_uri")
    return (
        stream if isinstance(stream, str) and stream else None,
        sip if isinstance(sip, str) and sip else None,
    )


def _handler(raw: dict[str, Any] | None) -> CallHandlerView | None:
    if not raw or not isinstance(raw, dict):
        return None
    return CallHandlerView(
        type=str(raw.get("type") or "agents"),
        request_url=raw.get("request_url") or None,
        request_method=str(raw.get("request_method") or "POST").upper(),
        fallback_url=raw.get("fallback_url") or None,
        fallback_method=str(raw.get("fallback_method") or "POST").upper(),
    )


_LatestAgent = Agent.__table__.alias("latest_agent")
_PinnedVersion = AgentVersion.__table__.alias("pinned_version")
_pn = PhoneNumber.__table__
_pna = PhoneNumberAgent.__table__

SNAPSHOT_QUERY = (
    select(
        _pn.c.id,
        _pn.c.org_id,
        _pn.c.phone_number,
        _pn.c.status,
        _pn.c.carrier,
        _pn.c.carrier_account_id,
        _pn.c.allowed_inbound_countries,
        _pn.c.outbound,
        _pn.c.callback_forwarding_number,
        _pn.c.call_handler,
        _pn.c.inbound_webhook_url,
        _pn.c.inbound_webhook_timeout_ms,
        _pn.c.inbound_webhook_attempts,
        _pn.c.fallback,
        _pn.c.language,
        _pna.c.agent_id,
        _pna.c.version.label("binding_version"),
        _pna.c.weight,
        _pna.c.position,
        _LatestAgent.c.version.label("latest_version"),
        # Only the hand-over target: an agent's configuration can hold a 100 kB prompt.
        _LatestAgent.c.config["connect"].label("latest_connect"),
        _PinnedVersion.c.version.label("pinned_found"),
        _PinnedVersion.c.config["connect"].label("pinned_connect"),
    )
    .select_from(_pn)
    .outerjoin(_pna, and_(_pna.c.phone_number_id == _pn.c.id, _pna.c.direction == "inbound"))
    .outerjoin(
        _LatestAgent, and_(_LatestAgent.c.id == _pna.c.agent_id, _LatestAgent.c.org_id == _pn.c.org_id)
    )
    .outerjoin(
        _PinnedVersion,
        and_(_PinnedVersion.c.agent_id == _pna.c.agent_id, _PinnedVersion.c.version == _pna.c.version),
    )
    .where(_pn.c.phone_number == bindparam("e164"), _pn.c.status.in_(HOLDING_STATUSES))
    .order_by(_pna.c.position, _pna.c.id)
)


def _json(value: Any) -> Any:
    """JSON columns arrive decoded through SQLAlchemy, as text through a bare asyncpg connection."""
    return json.loads(value) if isinstance(value, str) else value


def build(rows: Sequence[Mapping[Any, Any]]) -> RouteSnapshot | None:
    """A snapshot from the rows of ``SNAPSHOT_QUERY`` (one per inbound binding), or None."""
    if not rows:
        return None
    first = rows[0]
    agents: list[AgentTarget] = []
    for row in rows:
        if row["agent_id"] is None:
            continue
        binding_version, latest_version = row["binding_version"], row["latest_version"]
        if latest_version is None:
            continue  # the agent is gone or belongs to another org
        pinned = binding_version is not None
        if pinned and row["pinned_found"] is not None:
            connect, version = row["pinned_connect"], binding_version
        elif pinned and binding_version != latest_version:
            continue  # the pinned version does not exist
        else:
            connect, version = row["latest_connect"], latest_version
        stream_url, sip_uri = connect_of(_json(connect))
        weight = row["weight"]
        agents.append(
            AgentTarget(
                agent_id=row["agent_id"],
                version=version,
                weight=float(weight if weight is not None else 1.0),
                stream_url=stream_url,
                sip_uri=sip_uri,
                pinned=pinned,
            )
        )
    fallback = _json(first["fallback"])
    fallback = fallback if isinstance(fallback, dict) else {}
    countries = _json(first["allowed_inbound_countries"])
    return RouteSnapshot(
        number_id=first["id"],
        org_id=first["org_id"],
        e164=first["phone_number"],
        status=first["status"],
        carrier=first["carrier"],
        carrier_account_id=first["carrier_account_id"],
        allowed_inbound_countries=tuple(str(c).upper() for c in countries) if countries else None,
        outbound=bool(first["outbound"]),
        callback_forwarding_number=first["callback_forwarding_number"] or None,
        call_handler=_handler(_json(first["call_handler"])),
        inbound_webhook_url=first["inbound_webhook_url"] or None,
        inbound_webhook_timeout_ms=first["inbound_webhook_timeout_ms"] or DEFAULT_WEBHOOK_TIMEOUT_MS,
        inbound_webhook_attempts=first["inbound_webhook_attempts"] or DEFAULT_WEBHOOK_ATTEMPTS,
        fallback_number=fallback.get("number") or None,
        fallback_sip_uri=fallback.get("sip_uri") or None,
        language=first["language"],
        agents=tuple(agents),
    )


async def load(conn: AsyncConnection, e164: str) -> RouteSnapshot | None:
    """The number currently holding ``e164`` (pending, active or releasing), or None."""
    result = await conn.execute(SNAPSHOT_QUERY, {"e164": e164})
    return build([row._mapping for row in result])


_E164_SENTINEL = "__numberplane_e164__"


def postgresql_sql() -> str:
    """``SNAPSHOT_QUERY`` as PostgreSQL text with one positional parameter ($1: the E.164).

    The data plane runs it on a bare asyncpg pool (a prepared statement per connection), which
    costs a fraction of the same query through SQLAlchemy's async layer.
    """
    from sqlalchemy.dialects.postgresql import asyncpg as pg

    compiled = SNAPSHOT_QUERY.params(e164=_E164_SENTINEL).compile(
        dialect=pg.dialect(), compile_kwargs={"literal_binds": True}
    )
    sql = str(compiled)
    literal = f"'{_E164_SENTINEL}'"
    assert sql.count(literal) == 1
    return sql.replace(literal, "$1")


AGENT_QUERY = (
    select(
        _LatestAgent.c.id,
        _LatestAgent.c.version.label("latest_version"),
        _LatestAgent.c.config["connect"].label("latest_connect"),
        _PinnedVersion.c.version.label("pinned_found"),
        _PinnedVersion.c.config["connect"].label("pinned_connect"),
    )
    .select_from(_LatestAgent)
    .outerjoin(
        _PinnedVersion,
        and_(
            _PinnedVersion.c.agent_id == _LatestAgent.c.id, _PinnedVersion.c.version == bindparam("version")
        ),
    )
    .where(_LatestAgent.c.id == bindparam("agent_id"), _LatestAgent.c.org_id == bindparam("org_id"))
)


async def load_agent(
    conn: AsyncConnection, *, org_id: str, agent_id: str, version: int | None
) -> AgentTarget | None:
    """One agent of ``org_id`` at ``version`` (None: latest), or None if it (or the version) is missing."""
    result = await conn.execute(AGENT_QUERY, {"agent_id": agent_id, "org_id": org_id, "version": version})
    row = result.first()
    if row is None:
        return None
    if version is None or version == row.latest_version:
        connect, resolved = row.latest_connect, row.latest_version
    elif row.pinned_found is not None:
        connect, resolved = row.pinned_connect, version
    else:
        return None
    stream_url, sip_uri = connect_of(_json(connect))
    return AgentTarget(
        agent_id=row.id,
        version=resolved,
        weight=1.0,
        stream_url=stream_url,
        sip_uri=sip_uri,
        pinned=version is not None,
    )

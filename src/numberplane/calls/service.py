"""Writing call records: observations (a routing decision, a status report) merged into rows.

A call is learned about piecewise and out of order: the routing decision, the carrier's status
callbacks (which may arrive twice, late, or for a call whose record was lost), a SIP platform's
``/v1/route/status``. Each is an ``Observation``; ``merge`` folds one into a row so that the
result does not depend on the order they arrive in:

* status only moves forward by rank (ringing < in_progress < a final status); a late
  ``ringing`` never overwrites ``completed``, and the first final status stays;
* the decision's fields come from the latest decision (a carrier's fallback request re-decides);
* ``started_at`` is the earliest time seen; an unknown call's callback creates the row.

``write_batch`` writes a batch in one unit of work with its ``call.started`` /
``call.completed`` events, retrying the whole batch when another process wrote one of its calls
at the same moment (a unique key collision, or SQLite's busy snapshot).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import String, Table, Text, any_, bindparam, cast, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError, IntegrityError

from numberplane.calls.models import Call
from numberplane.kernel.db import Actor, Database, RawJSON, UnitOfWork, as_utc, insert_records, utcnow
from numberplane.kernel.ids import new_id, new_ids
from numberplane.kernel.outbox import emit_encoded, listened

log = logging.getLogger("numberplane.calls")

FINAL = frozenset({"completed", "busy", "no_answer", "failed", "canceled"})
RANK = {"ringing": 0, "in_progress": 1, **{s: 2 for s in FINAL}}
ATTEMPTS = 4
# pg_advisory_xact_lock(namespace, bucket) for call writes ("NP" + 2), and the buckets.
LOCK_NAMESPACE = 0x4E50_0002
LOCK_BUCKETS = 16_384
_calls: Table = Call.__table__  # type: ignore[assignment]

# Carriers' status words -> ours (Twilio, SignalWire and Telnyx TeXML share CallStatus values).
CARRIER_STATUS = {
    "queued": "ringing",
    "initiated": "ringing",
    "ringing": "ringing",
    "started": "ringing",
    "in-progress": "in_progress",
    "in_progress": "in_progress",
    "answered": "in_progress",
    "completed": "completed",
    "busy": "busy",
    "failed": "failed",
    "rejected": "failed",
    "no-answer": "no_answer",
    "no_answer": "no_answer",
    "unanswered": "no_answer",
    "timeout": "no_answer",
    "canceled": "canceled",
    "cancelled": "canceled",
}


def status_of(raw: str | None) -> str | None:
    """Our status for a carrier's (None: not a status we track, e.g. Vonage's ``machine``)."""
    return CARRIER_STATUS.get((raw or "").strip().lower())


def duration_of(raw: Any) -> int | None:
    try:
        value = int(str(raw).strip())
    except (TypeError, ValueError):
        return None
    return value if 0 <= value <= 7 * 86400 else None


@dataclass(slots=True)
class DecisionFacts:
    """What routing decided for a call. ``trace`` may be a function that builds it: the trace
    is then built when the record is written, off the answer's path. (``routing.recording``
    builds this and ``Observation`` with positional arguments: keep the fields' order.)"""

    outcome: str
    reason: str
    agent_id: str | None = None
    agent_version: int | None = None
    webhook: dict[str, Any] | RawJSON | Callable[[], dict[str, Any]] | None = None
    decision_ms: float | None = None
    trace: list[dict[str, str]] | RawJSON | Callable[[], list[dict[str, str]] | RawJSON] | None = None


@dataclass(slots=True)
class Observation:
    """One thing learned about one call, at ``at``."""

    org_id: str
    carrier: str
    carrier_call_id: str
    at: dt.datetime = field(default_factory=utcnow)
    phone_number_id: str | None = None
    phone_number: str | None = None
    from_number: str | None = None
    carrier_account_id: str | None = None
    status: str | None = None
    duration_s: int | None = None
    sip_code: int | None = None
    decision: DecisionFacts | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.org_id, self.carrier, self.carrier_call_id)


def new_row(obs: Observation) -> dict[str, Any]:
    return {
        "id": new_id(),
        "org_id": obs.org_id,
        "phone_number_id": None,
        "phone_number": None,
        "from_number": None,
        "direction": "inbound",
        "carrier": obs.carrier,
        "carrier_account_id": None,
        "carrier_call_id": obs.carrier_call_id,
        "status": "ringing",
        "outcome": None,
        "reason": None,
        "agent_id": None,
        "agent_version": None,
        "webhook": None,
        "decision_ms": None,
        "trace": None,
        "sip_code": None,
        "started_at": obs.at,
        "answered_at": None,
        "ended_at": None,
        "duration_s": None,
        "created_at": obs.at,
        "updated_at": obs.at,
    }


def merge(row: dict[str, Any], obs: Observation) -> bool:
    """Fold ``obs`` into ``row`` (in place). True when the call reached a final status now."""
    for name in ("phone_number_id", "phone_number", "from_number", "carrier_account_id"):
        value = getattr(obs, name)
        if value is not None and row[name] is None:
            row[name] = value
    started = as_utc(row["started_at"])
    if started is None or obs.at < started:
        row["started_at"] = obs.at
    if obs.sip_code is not None:
        row["sip_code"] = obs.sip_code
    facts = obs.decision
    if facts is not None:
        trace = facts.trace() if callable(facts.trace) else facts.trace
        row.update(
            outcome=facts.outcome,
            reason=facts.reason,
            agent_id=facts.agent_id,
            agent_version=facts.agent_version,
            webhook=facts.webhook() if callable(facts.webhook) else facts.webhook,
            decision_ms=facts.decision_ms,
            trace=trace,
        )
    finished = False
    new = obs.status
    if new is not None and RANK.get(new, -1) > RANK[row["status"]]:
        row["status"] = new
        if new == "in_progress" and row["answered_at"] is None:
            row["answered_at"] = obs.at
        if new in FINAL:
            finished = True
            row["ended_at"] = obs.at
    if obs.duration_s is not None and row["status"] in FINAL and row["duration_s"] is None:
        row["duration_s"] = obs.duration_s
        ended = as_utc(row["ended_at"]) or obs.at
        if row["status"] == "completed" and obs.duration_s > 0 and row["answered_at"] is None:
            row["answered_at"] = ended - dt.timedelta(seconds=obs.duration_s)
    row["updated_at"] = max(as_utc(row["updated_at"]) or obs.at, obs.at)
    return finished


# What ``call.started`` / ``call.completed`` carry: enough to act on without a read. Pairs of
# (the event's key, the calls column it holds); started_at and ended_at as ISO text.
EVENT_FIELDS = (
    ("id", "id"),
    ("phone_number_id", "phone_number_id"),
    ("phone_number", "phone_number"),
    ("from", "from_number"),
    ("carrier", "carrier"),
    ("carrier_call_id", "carrier_call_id"),
    ("status", "status"),
    ("outcome", "outcome"),
    ("reason", "reason"),
    ("agent_id", "agent_id"),
    ("agent_version", "agent_version"),
    ("duration_s", "duration_s"),
    ("started_at", "started_at"),
    ("ended_at", "ended_at"),
)
_TIMES = frozenset({"started_at", "ended_at"})


def event_data(row: dict[str, Any]) -> dict[str, Any]:
    """The events' payload as a dict (``event_json`` writes the same, encoded)."""
    return {key: _iso(row[column]) if column in _TIMES else row[column] for key, column in EVENT_FIELDS}


def _iso(value: Any) -> str | None:
    value = as_utc(value)
    return value.isoformat() if value is not None else None


# The calls table's columns in ``new_row``'s order: the shape of a record written by COPY.
COLUMNS = (
    "id",
    "org_id",
    "phone_number_id",
    "phone_number",
    "from_number",
    "direction",
    "carrier",
    "carrier_account_id",
    "carrier_call_id",
    "status",
    "outcome",
    "reason",
    "agent_id",
    "agent_version",
    "webhook",
    "decision_ms",
    "trace",
    "sip_code",
    "started_at",
    "answered_at",
    "ended_at",
    "duration_s",
    "created_at",
    "updated_at",
)
_JSON_AT = (COLUMNS.index("webhook"), COLUMNS.index("trace"))
_EVENT_TEMPLATE = "{" + ",".join(f'"{key}":%s' for key, _ in EVENT_FIELDS) + "}"
_EVENT_AT = tuple(COLUMNS.index(column) for _, column in EVENT_FIELDS)
_encode_str = json.encoder.encode_basestring_ascii  # what json.dumps encodes a str with


def _json_value(value: Any) -> str:
    """One value as ``json.dumps`` (through ``kernel.db``'s serialiser) writes it."""
    if value is None:
        return "null"
    kind = type(value)
    if kind is str:
        return _encode_str(value)
    if kind is int:
        return int.__repr__(value)
    if isinstance(value, dt.datetime):
        return '"' + (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat() + '"'
    return json.dumps(value, separators=(",", ":"), default=str)


def event_json(record: Sequence[Any]) -> RawJSON:
    """``event_data`` of a record (``COLUMNS`` order), as the JSON text the events table stores,
    written without a dict or an encoder per event. The payload holds no secret-looking key, so
    ``redact`` (which ``kernel.outbox.emit_encoded`` skips) would not change it."""
    i = _EVENT_AT
    try:  # text columns hold text (or NULL): escaped inline, one C call each
        encode = _encode_str
        return RawJSON(
            _EVENT_TEMPLATE
            % (
                encode(record[i[0]]),
                "null" if (v := record[i[1]]) is None else encode(v),
                "null" if (v := record[i[2]]) is None else encode(v),
                "null" if (v := record[i[3]]) is None else encode(v),
                encode(record[i[4]]),
                encode(record[i[5]]),
                encode(record[i[6]]),
                "null" if (v := record[i[7]]) is None else encode(v),
                "null" if (v := record[i[8]]) is None else encode(v),
                "null" if (v := record[i[9]]) is None else encode(v),
                _json_value(record[i[10]]),
                _json_value(record[i[11]]),
                _json_value(record[i[12]]),
                _json_value(record[i[13]]),
            )
        )
    except TypeError:  # something else where text was expected: encoded as json.dumps would
        return RawJSON(_EVENT_TEMPLATE % tuple(_json_value(record[at]) for at in i))


def json_text(value: Any) -> RawJSON | None:
    """A JSON column's value as text (COPY takes text; SQLAlchemy stores a ``RawJSON`` as it is)."""
    if value is None or isinstance(value, RawJSON):
        return value
    return RawJSON(json.dumps(value, separators=(",", ":"), default=str))


def _record(row: dict[str, Any]) -> tuple[Any, ...]:
    """A merged row as a COPY record."""
    record = [row[column] for column in COLUMNS]
    for at in _JSON_AT:
        record[at] = json_text(record[at])
    return tuple(record)


def opening(obs: Observation, facts: DecisionFacts, record_id: str | None = None) -> tuple[Any, ...]:
    """The record of a call first heard of by its routing decision, with no other observation
    of it in the batch and none written before: ``merge(new_row(obs), obs)``, built directly."""
    at = obs.at
    webhook = facts.webhook() if callable(facts.webhook) else facts.webhook
    trace = facts.trace() if callable(facts.trace) else facts.trace
    return (
        record_id or new_id(),
        obs.org_id,
        obs.phone_number_id,
        obs.phone_number,
        obs.from_number,
        "inbound",
        obs.carrier,
        obs.carrier_account_id,
        obs.carrier_call_id,
        "ringing",
        facts.outcome,
        facts.reason,
        facts.agent_id,
        facts.agent_version,
        json_text(webhook),
        facts.decision_ms,
        json_text(trace),
        obs.sip_code,
        at,
        None,
        None,
        None,
        at,
        at,
    )


async def write_batch(*, db: Database, observations: Sequence[Observation]) -> int:
    """Write ``observations`` (in arrival order) in one unit of work; returns the calls touched."""
    if not observations:
        return 0
    for attempt in range(ATTEMPTS):
        try:
            async with db.uow(Actor.system()) as uow:
                touched = await write_in(uow, observations)
                await uow.commit()
            return touched
        except (IntegrityError, DBAPIError) as exc:
            # Another process inserted or locked one of these calls at the same moment: the
            # merge is order-independent, so doing the whole batch again is right.
            if attempt == ATTEMPTS - 1:
                raise
            log.info("call batch collided (%s); retrying", exc.__class__.__name__)
            await asyncio.sleep(0.02 * (attempt + 1))
    return 0  # pragma: no cover - the loop returns or raises


async def write_in(uow: UnitOfWork, observations: Sequence[Observation]) -> int:
    """Merge ``observations`` into the calls table inside ``uow``, with their events.

    The common observation, a routing decision for a call nothing else in the batch or the table
    knows, becomes its COPY record directly (``opening``); every other goes through ``merge``."""
    obs_keys = [obs.key for obs in observations]
    seen = Counter(obs_keys)
    keys = sorted(seen)
    await _lock(uow, keys)
    existing = await _existing(uow, keys)
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}  # the calls merged the general way
    opened: list[tuple[Any, ...] | None] = []  # the new calls' records, in arrival order
    created: dict[tuple[str, str, str], int] = {}  # a new call merged the general way: its place there
    finished: list[tuple[str, str, str]] = []
    ids = new_ids(len(observations))  # one each, whichever way it goes: cheaper made together
    for index, obs in enumerate(observations):
        key = obs_keys[index]
        facts = obs.decision
        if facts is not None and obs.status in _OPENING and seen[key] == 1 and key not in existing:
            opened.append(opening(obs, facts, ids[index]))
        else:
            row = rows.get(key)
            if row is None:
                found = existing.get(key)
                if found is None:
                    row = new_row(obs)
                    created[key] = len(opened)
                    opened.append(None)
                else:
                    row = found
                rows[key] = row
            if merge(row, obs):
                finished.append(key)
        if index % 100 == 99:
            await asyncio.sleep(0)  # a large batch never holds the event loop for long
    for key, at in created.items():
        opened[at] = _record(rows[key])
    records: list[tuple[Any, ...]] = opened  # type: ignore[assignment]  # every place is filled now
    session = uow.session
    await insert_records(session, _calls, COLUMNS, records)
    updated = [
        {"b_id": row["id"], **{k: v for k, v in row.items() if k not in _FIXED}}
        for key, row in rows.items()
        if key not in created
    ]
    if updated:
        await session.execute(_UPDATE, updated)
    done = [_values(rows[key]) for key in dict.fromkeys(finished)]
    # Events only for the orgs whose webhook endpoints take them: a call event nobody listens
    # for would be written, fanned out to no one and pruned, at two rows per call.
    heard = await listened(uow, _CALL_EVENTS, (record[1] for record in (*records, *done)))
    for event_type, written in (("call.started", records), ("call.completed", done)):
        items = [(r[1], r[0], event_json(r)) for r in written if (r[1], event_type) in heard]
        await emit_encoded(uow, type=event_type, subject_type="call", items=items)
    return len(seen)


_OPENING = (None, "ringing")
_CALL_EVENTS = ("call.started", "call.completed")
_FIXED = frozenset({"id", "org_id", "created_at"})  # never changed once a call is written
_UPDATE = update(_calls).where(_calls.c.id == bindparam("b_id"))  # SET: the parameters' other keys


def _values(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[column] for column in COLUMNS)


async def _lock(uow: UnitOfWork, keys: Sequence[tuple[str, str, str]]) -> None:
    """Hold the batch's calls until commit, so no other writer merges into them meanwhile.

    PostgreSQL: advisory locks by hash bucket, taken in one order (writers never deadlock); the
    partitioned table cannot hold a unique key without the partition key, so this is also what
    keeps two processes from creating one call twice. SQLite: take the database's write lock
    before reading (a write statement that changes nothing), so the rows read are current.
    """
    if uow.db.dialect == "sqlite":
        await uow.session.execute(_SQLITE_WRITE_LOCK)
        return
    buckets = sorted({zlib.crc32("\x00".join(key).encode()) % LOCK_BUCKETS for key in keys})
    await uow.session.execute(_ADVISORY_LOCKS, {"ns": LOCK_NAMESPACE, "buckets": buckets})


# The batch's statements, built once: a statement built per batch is compiled (a cache lookup)
# and left as cyclic garbage (bind parameters, types) for the collector, batch after batch.
_SQLITE_WRITE_LOCK = text("UPDATE calls SET status = status WHERE 0")
# One row back (not one per bucket): the count consumes the sorted buckets in order.
#
# The same statement turns sequential scans off for the rest of the transaction. The lookup by
# call id below is a prepared statement, and PostgreSQL soon keeps one generic plan for it per
# connection; made while the month's partition is small and not yet analysed (a fresh partition,
# a fresh database), that plan is a sequential scan, kept while the partition grows until
# autovacuum analyses it. In bench/routing.py that was 2.9 ms of PostgreSQL CPU per batch after
# 3,000 calls, and growing. Every statement of a call batch has an index to use (the lookup,
# the UPDATE by id; COPY plans nothing), so here the setting only rules that plan out. Planning
# each batch's lookup for its values (plan_cache_mode) also avoids it, at ~8 us of PostgreSQL CPU
# a call more than this (the estimate per id).
_ADVISORY_LOCKS = text(
    "SELECT set_config('enable_seqscan', 'off', true), count(pg_advisory_xact_lock(:ns, b)) "
    "FROM (SELECT b FROM unnest(CAST(:buckets AS integer[])) AS b ORDER BY b) AS s"
)

# PostgreSQL takes the ids as one array parameter; every other database an expanded IN list.
# The stored rows, their JSON columns (the trace, the webhook's facts) read as the text they are:
# a status callback's merge never looks inside them, and the row's UPDATE writes them back as
# they were (``RawJSON``). Decoded and encoded again they were ~13 us a callback of the writer's
# ~42-56 (bench/routing.py's status-callback phase, py-spy).
_JSON_COLUMNS = frozenset({"webhook", "trace"})
_STORED = [
    cast(column, Text).label(column.name) if column.name in _JSON_COLUMNS else column
    for column in _calls.columns
]
_BY_CALL_IDS_ARRAY = select(*_STORED).where(
    _calls.c.carrier_call_id == any_(bindparam("ids", type_=ARRAY(String(128))))
)
_BY_CALL_IDS_IN = select(*_STORED).where(_calls.c.carrier_call_id.in_(bindparam("ids", expanding=True)))


async def _existing(
    uow: UnitOfWork, keys: Sequence[tuple[str, str, str]]
) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The rows already written for ``keys``, found by the carrier's call ids (one index probe
    each; on PostgreSQL the ids go as one array parameter)."""
    wanted = set(keys)
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    ids = sorted({key[2] for key in keys})
    statement = _BY_CALL_IDS_ARRAY if uow.db.dialect == "postgresql" else _BY_CALL_IDS_IN
    for start in range(0, len(ids), 500):
        result = await uow.session.execute(statement, {"ids": ids[start : start + 500]})
        for row in result.mappings():
            key = (row["org_id"], row["carrier"], row["carrier_call_id"])
            if key in wanted:
                found = dict(row)
                for name in _JSON_COLUMNS:
                    if found[name] is not None:
                        found[name] = RawJSON(found[name])
                out[key] = found
    return out

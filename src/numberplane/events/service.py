"""Record outbox events and audit rows inside a unit of work.

Both are queued on the unit of work and land in its single commit: no event without its
change, no change without its event.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import text
from sqlalchemy.orm import Session

from numberplane.db import UnitOfWork, utcnow
from numberplane.events.models import AuditEvent, OutboxEvent
from numberplane.ids import new_id

EVENT_TYPES = (
    "phone_number.created",
    "phone_number.updated",
    "phone_number.released",
    "phone_number.renewed",
    "phone_number.purchase_failed",
    "agent.created",
    "agent.updated",
    "agent.deleted",
    "import.completed",
    "carrier.drift_detected",
)

_SECRET_KEYS = frozenset(
    {"password", "secret", "token", "auth_token", "api_key", "api_secret", "signing_secret", "credentials"}
)
REDACTED = "[redacted]"

# Workers in this process wait on these; a commit that emitted events wakes them at once.
_wake_lock = threading.Lock()
_wake_listeners: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()


def add_wake_listener(loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
    with _wake_lock:
        _wake_listeners.add((loop, event))


def remove_wake_listener(loop: asyncio.AbstractEventLoop, event: asyncio.Event) -> None:
    with _wake_lock:
        _wake_listeners.discard((loop, event))


# Workers in other processes (PostgreSQL) LISTEN on this channel; a transaction that emitted
# events NOTIFYs it just before it commits, and PostgreSQL delivers that only on commit.
EVENTS_CHANNEL = "numberplane_events"
_NOTIFY_FLAG = "numberplane_events_notify"
_NOTIFY_HOOKED = "numberplane_events_notify_hooked"


def _notify_before_commit(session: Session) -> None:
    if session.info.pop(_NOTIFY_FLAG, False):
        session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": EVENTS_CHANNEL})


def _forget_on_rollback(session: Session, *_: Any) -> None:
    session.info.pop(_NOTIFY_FLAG, None)


def _queue_notify(uow: UnitOfWork) -> None:
    if uow.db.dialect != "postgresql":
        return
    sync_session = uow.session.sync_session
    sync_session.info[_NOTIFY_FLAG] = True
    if not sync_session.info.get(_NOTIFY_HOOKED):
        sync_session.info[_NOTIFY_HOOKED] = True
        sa_event.listen(sync_session, "before_commit", _notify_before_commit)
        sa_event.listen(sync_session, "after_soft_rollback", _forget_on_rollback)


def wake_workers() -> None:
    """Tell every worker running in this process that there is something new (thread-safe)."""
    with _wake_lock:
        listeners = list(_wake_listeners)
    for loop, event in listeners:
        if not loop.is_closed():
            loop.call_soon_threadsafe(event.set)


def redact(value: Any) -> Any:
    """A copy with every secret-looking key replaced, for audit rows and logs."""
    if isinstance(value, dict):
        return {
            k: (
                REDACTED
                if (k in _SECRET_KEYS or k.endswith(("_password", "_secret", "_token"))) and v
                else redact(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def emit(
    uow: UnitOfWork,
    *,
    type: str,
    org_id: str | None,
    subject_type: str,
    subject_id: str | None,
    data: dict[str, Any],
) -> OutboxEvent:
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    event = OutboxEvent(
        id=new_id(),
        org_id=org_id,
        type=type,
        subject_type=subject_type,
        subject_id=subject_id,
        data=redact(data),
        created_at=utcnow(),
    )
    uow.add_record(event)
    events_written(uow)
    return event


def events_written(uow: UnitOfWork) -> None:
    """Wake the delivery workers when ``uow`` commits: in this process at once, and in other
    processes through NOTIFY on PostgreSQL. ``emit`` calls it; call it yourself after inserting
    ``OutboxEvent`` rows in bulk (workers poll anyway, this only saves the wait)."""
    if wake_workers not in uow._hooks:  # once per unit of work
        uow.after_commit(wake_workers)
    _queue_notify(uow)


def audit(
    uow: UnitOfWork,
    *,
    action: str,
    target_type: str,
    target_id: str | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    org_id: str | None = None,
) -> AuditEvent:
    actor = uow.actor
    row = AuditEvent(
        id=new_id(),
        org_id=org_id if org_id is not None else actor.org_id,
        actor_type=actor.kind,
        actor_id=actor.id,
        via=actor.via,
        action=action,
        target_type=target_type,
        target_id=target_id,
        before=redact(before) if before is not None else None,
        after=redact(after) if after is not None else None,
        request_id=actor.request_id,
        created_at=utcnow(),
    )
    uow.add_record(row)
    return row

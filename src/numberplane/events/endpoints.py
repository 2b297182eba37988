"""Webhook endpoints and their deliveries: create, read, update, delete, list, resend.

Another org's endpoint or delivery answers exactly like a missing one. Every change is audited
in its own unit of work; the signing secret passes through ``redact`` like every secret.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select

from numberplane.events.models import WebhookDelivery, WebhookEndpoint
from numberplane.events.schemas import (
    WebhookDeliveryRead,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointRead,
    WebhookEndpointUpdate,
)
from numberplane.events.signing import new_secret
from numberplane.kernel import crypto
from numberplane.kernel.db import Actor, Database, as_utc, utcnow
from numberplane.kernel.errors import Conflict, NotFound, ValidationFailed
from numberplane.kernel.ids import new_id
from numberplane.kernel.net import BlockedURL, check_url
from numberplane.kernel.outbox import audit, events_written
from numberplane.kernel.pagination import Page, check_limit, keyset, page

MAX_ENDPOINTS_PER_ORG = 50
DELIVERY_STATUSES = ("pending", "succeeded", "failed")


def _ts(value: dt.datetime | None) -> dt.datetime:
    return as_utc(value) or utcnow()


def to_read(endpoint: WebhookEndpoint) -> WebhookEndpointRead:
    return WebhookEndpointRead(
        id=endpoint.id,
        url=endpoint.url,
        event_types=list(endpoint.event_types or []),
        description=endpoint.description,
        enabled=endpoint.enabled,
        created_at=_ts(endpoint.created_at),
        updated_at=_ts(endpoint.updated_at),
    )


def delivery_read(row: WebhookDelivery) -> WebhookDeliveryRead:
    return WebhookDeliveryRead(
        id=row.id,
        endpoint_id=row.endpoint_id,
        event_id=row.event_id,
        event_type=row.event_type,
        status=row.status,  # type: ignore[arg-type]
        attempts=row.attempts,
        next_attempt_at=as_utc(row.next_attempt_at) if row.status == "pending" else None,
        last_attempt_at=as_utc(row.last_attempt_at),
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        last_duration_ms=row.last_duration_ms,
        delivered_at=as_utc(row.delivered_at),
        replay=row.replay,
        created_at=_ts(row.created_at),
        updated_at=_ts(row.updated_at),
    )


def snapshot(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "url": endpoint.url,
        "event_types": list(endpoint.event_types or []),
        "description": endpoint.description,
        "enabled": endpoint.enabled,
    }


def endpoint_not_found(endpoint_id: str) -> NotFound:
    return NotFound(f"webhook endpoint {endpoint_id} not found", code="webhook_endpoint_not_found")


async def _owned(session: Any, org_id: str, endpoint_id: str) -> WebhookEndpoint:
    endpoint = await session.get(WebhookEndpoint, endpoint_id) if len(endpoint_id) <= 64 else None
    if endpoint is None or endpoint.org_id != org_id:
        raise endpoint_not_found(endpoint_id)
    return endpoint  # type: ignore[no-any-return]


async def check_destination(url: str, *, allow_private: bool) -> None:
    """Refuse a URL that resolves to a loopback or private address now (delivery checks again).

    A host that does not resolve at all is accepted: DNS may not be set up yet, and every
    delivery attempt re-checks where the name points.
    """
    try:
        await check_url(url, allow_private=allow_private)
    except BlockedURL as exc:
        if exc.__cause__ is not None:
            return
        raise ValidationFailed.field("url", str(exc), code="blocked_url") from exc


async def create_endpoint(
    *, db: Database, actor: Actor, data: WebhookEndpointCreate, allow_private: bool
) -> WebhookEndpointCreated:
    assert actor.org_id is not None
    await check_destination(data.url, allow_private=allow_private)
    secret = new_secret()
    now = utcnow()
    endpoint = WebhookEndpoint(
        id=new_id(),
        org_id=actor.org_id,
        url=data.url,
        description=data.description,
        event_types=list(data.event_types),
        secret_enc=crypto.encrypt(secret),
        enabled=data.enabled,
        created_at=now,
        updated_at=now,
    )
    async with db.uow(actor) as uow:
        count = await uow.session.scalar(
            select(func.count()).select_from(WebhookEndpoint).where(WebhookEndpoint.org_id == actor.org_id)
        )
        if (count or 0) >= MAX_ENDPOINTS_PER_ORG:
            raise Conflict(
                f"an org can have at most {MAX_ENDPOINTS_PER_ORG} webhook endpoints",
                code="too_many_webhook_endpoints",
            )
        uow.session.add(endpoint)
        audit(
            uow,
            action="webhook_endpoint.created",
            target_type="webhook_endpoint",
            target_id=endpoint.id,
            after={**snapshot(endpoint), "signing_secret": secret},
        )
        await uow.commit()
    return WebhookEndpointCreated(**to_read(endpoint).model_dump(), secret=secret)


async def get_endpoint(*, db: Database, org_id: str, endpoint_id: str) -> WebhookEndpointRead:
    async with db.session() as session:
        return to_read(await _owned(session, org_id, endpoint_id))


async def list_endpoints(
    *, db: Database, org_id: str, limit: int = 50, cursor: str | None = None
) -> Page[WebhookEndpointRead]:
    query = keyset(
        select(WebhookEndpoint).where(WebhookEndpoint.org_id == org_id),
        WebhookEndpoint.id,
        limit=limit,
        cursor=cursor,
    )
    async with db.session() as session:
        rows = list(await session.scalars(query))
    return page(rows, limit=limit, read=to_read)


async def update_endpoint(
    *, db: Database, actor: Actor, endpoint_id: str, patch: WebhookEndpointUpdate, allow_private: bool
) -> WebhookEndpointRead:
    assert actor.org_id is not None
    sent = patch.model_fields_set
    if "url" in sent:
        if patch.url is None:
            raise ValidationFailed.field("url", "cannot be null")
        await check_destination(patch.url, allow_private=allow_private)
    if "enabled" in sent and patch.enabled is None:
        raise ValidationFailed.field("enabled", "cannot be null")
    async with db.uow(actor) as uow:
        endpoint = await _owned(uow.session, actor.org_id, endpoint_id)
        before = snapshot(endpoint)
        if "url" in sent and patch.url is not None:
            endpoint.url = patch.url
        if "event_types" in sent:
            endpoint.event_types = list(patch.event_types or [])
        if "description" in sent:
            endpoint.description = patch.description
        if "enabled" in sent and patch.enabled is not None:
            endpoint.enabled = patch.enabled
        after = snapshot(endpoint)
        if after != before:
            endpoint.updated_at = utcnow()
            audit(
                uow,
                action="webhook_endpoint.updated",
                target_type="webhook_endpoint",
                target_id=endpoint.id,
                before=before,
                after=after,
            )
            if endpoint.enabled:
                events_written(uow)
        out = to_read(endpoint)
        await uow.commit()
    return out


async def delete_endpoint(*, db: Database, actor: Actor, endpoint_id: str) -> None:
    """Delete the endpoint and its delivery history; nothing more is sent to it."""
    assert actor.org_id is not None
    async with db.uow(actor) as uow:
        endpoint = await _owned(uow.session, actor.org_id, endpoint_id)
        before = snapshot(endpoint)
        await uow.session.delete(endpoint)
        audit(
            uow,
            action="webhook_endpoint.deleted",
            target_type="webhook_endpoint",
            target_id=endpoint.id,
            before=before,
        )
        await uow.commit()


async def list_deliveries(
    *,
    db: Database,
    org_id: str,
    endpoint_id: str,
    limit: int = 50,
    cursor: str | None = None,
    status: str | None = None,
    event_id: str | None = None,
) -> Page[WebhookDeliveryRead]:
    """The endpoint's deliveries, newest first."""
    check_limit(limit)
    if status is not None and status not in DELIVERY_STATUSES:
        raise ValidationFailed.field("status", f"must be one of {', '.join(DELIVERY_STATUSES)}")
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    if event_id is not None:
        query = query.where(WebhookDelivery.event_id == event_id)
    query = keyset(query, WebhookDelivery.id, limit=limit, cursor=cursor)
    async with db.session() as session:
        await _owned(session, org_id, endpoint_id)
        rows = list(await session.scalars(query))
    return page(rows, limit=limit, read=delivery_read)


async def get_delivery(
    *, db: Database, org_id: str, endpoint_id: str, delivery_id: str
) -> WebhookDeliveryRead:
    async with db.session() as session:
        await _owned(session, org_id, endpoint_id)
        row = await session.get(WebhookDelivery, delivery_id) if len(delivery_id) <= 64 else None
        if row is None or row.endpoint_id != endpoint_id:
            raise NotFound(f"delivery {delivery_id} not found", code="webhook_delivery_not_found")
        return delivery_read(row)


async def resend_delivery(
    *,
    db: Database,
    actor: Actor,
    endpoint_id: str,
    delivery_id: str,
    retry_window: float,
    now: dt.datetime | None = None,
) -> WebhookDeliveryRead:
    """Send a delivery again, now, with the same webhook-id.

    A pending delivery is simply retried now. A finished one (succeeded or failed) becomes pending
    again as a *replay* with a fresh retry window; a replay never holds back later events for its
    subject. One being delivered at this moment answers 409.
    """
    assert actor.org_id is not None
    now = now or utcnow()
    async with db.uow(actor) as uow:
        await _owned(uow.session, actor.org_id, endpoint_id)
        row = await uow.session.get(WebhookDelivery, delivery_id) if len(delivery_id) <= 64 else None
        if row is None or row.endpoint_id != endpoint_id:
            raise NotFound(f"delivery {delivery_id} not found", code="webhook_delivery_not_found")
        leased = as_utc(row.leased_until)
        if row.status == "pending" and row.lease_token and leased and leased > now:
            raise Conflict("this delivery is being attempted right now", code="delivery_in_progress")
        before = {"status": row.status, "attempts": row.attempts}
        if row.status != "pending":
            row.replay = True
            row.attempts = 0
            row.retry_until = now + dt.timedelta(seconds=retry_window)
        row.status = "pending"
        row.next_attempt_at = now
        row.lease_token = None
        row.leased_until = None
        row.updated_at = now
        audit(
            uow,
            action="webhook_delivery.resent",
            target_type="webhook_delivery",
            target_id=row.id,
            before=before,
            after={"status": "pending", "event_id": row.event_id, "endpoint_id": endpoint_id},
        )
        out = delivery_read(row)
        events_written(uow)
        await uow.commit()
    return out

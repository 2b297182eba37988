"""/v1/webhook-endpoints (with their deliveries) and /v1/audit-events (read-only)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from numberplane.events import auditlog, endpoints
from numberplane.events.schemas import (
    AuditEventRead,
    WebhookDeliveryRead,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointRead,
    WebhookEndpointUpdate,
)
from numberplane.kernel.deps import actor_for, get_db
from numberplane.kernel.pagination import Page
from numberplane.kernel.settings import Settings
from numberplane.tenancy.auth import Principal, require_principal

hooks = APIRouter(prefix="/v1/webhook-endpoints", tags=["webhooks"])
audit_router = APIRouter(prefix="/v1/audit-events", tags=["audit"])

# `numberplane serve` on SQLite runs the delivery worker inside the server process.


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


@hooks.post(
    "",
    status_code=201,
    response_model=WebhookEndpointCreated,
    summary="Create a webhook endpoint (its signing secret is in this response only)",
)
async def create_endpoint(
    body: WebhookEndpointCreate, request: Request, principal: Principal = Depends(require_principal)
) -> WebhookEndpointCreated:
    return await endpoints.create_endpoint(
        db=get_db(request),
        actor=actor_for(request, principal),
        data=body,
        allow_private=_settings(request).allow_private_urls,
    )


@hooks.get("", response_model=Page[WebhookEndpointRead], summary="List webhook endpoints, newest first")
async def list_endpoints(
    request: Request,
    limit: int = Query(50, ge=1, le=1000),
    cursor: str | None = None,
    principal: Principal = Depends(require_principal),
) -> Page[WebhookEndpointRead]:
    return await endpoints.list_endpoints(
        db=get_db(request), org_id=principal.org_id, limit=limit, cursor=cursor
    )


@hooks.get("/{endpoint_id}", response_model=WebhookEndpointRead)
async def get_endpoint(
    endpoint_id: str, request: Request, principal: Principal = Depends(require_principal)
) -> WebhookEndpointRead:
    return await endpoints.get_endpoint(db=get_db(request), org_id=principal.org_id, endpoint_id=endpoint_id)


@hooks.patch("/{endpoint_id}", response_model=WebhookEndpointRead, summary="Change url, event types, enabled")
async def update_endpoint(
    endpoint_id: str,
    body: WebhookEndpointUpdate,
    request: Request,
    principal: Principal = Depends(require_principal),
) -> WebhookEndpointRead:
    return await endpoints.update_endpoint(
        db=get_db(request),
        actor=actor_for(request, principal),
        endpoint_id=endpoint_id,
        patch=body,
        allow_private=_settings(request).allow_private_urls,
    )


@hooks.delete("/{endpoint_id}", status_code=204, summary="Delete an endpoint and its delivery history")
async def delete_endpoint(
    endpoint_id: str, request: Request, principal: Principal = Depends(require_principal)
) -> Response:
    await endpoints.delete_endpoint(
        db=get_db(request), actor=actor_for(request, principal), endpoint_id=endpoint_id
    )
    return Response(status_code=204)


@hooks.get(
    "/{endpoint_id}/deliveries",
    response_model=Page[WebhookDeliveryRead],
    summary="The endpoint's deliveries, newest first, with their last status code",
)
async def list_deliveries(
    endpoint_id: str,
    request: Request,
    limit: int = Query(50, ge=1, le=1000),
    cursor: str | None = None,
    status: Literal["pending", "succeeded", "failed"] | None = None,
    event_id: str | None = Query(None, max_length=64),
    principal: Principal = Depends(require_principal),
) -> Page[WebhookDeliveryRead]:
    return await endpoints.list_deliveries(
        db=get_db(request),
        org_id=principal.org_id,
        endpoint_id=endpoint_id,
        limit=limit,
        cursor=cursor,
        status=status,
        event_id=event_id,
    )


@hooks.get("/{endpoint_id}/deliveries/{delivery_id}", response_model=WebhookDeliveryRead)
async def get_delivery(
    endpoint_id: str, delivery_id: str, request: Request, principal: Principal = Depends(require_principal)
) -> WebhookDeliveryRead:
    return await endpoints.get_delivery(
        db=get_db(request), org_id=principal.org_id, endpoint_id=endpoint_id, delivery_id=delivery_id
    )


@hooks.post(
    "/{endpoint_id}/deliveries/{delivery_id}/resend",
    status_code=202,
    response_model=WebhookDeliveryRead,
    summary="Send this delivery again now (same webhook-id)",
)
async def resend_delivery(
    endpoint_id: str, delivery_id: str, request: Request, principal: Principal = Depends(require_principal)
) -> WebhookDeliveryRead:
    return await endpoints.resend_delivery(
        db=get_db(request),
        actor=actor_for(request, principal),
        endpoint_id=endpoint_id,
        delivery_id=delivery_id,
        retry_window=_settings(request).webhook_retry_window_seconds,
    )


@audit_router.get(
    "", response_model=Page[AuditEventRead], summary="The audit trail, newest first (filterable)"
)
async def list_audit_events(
    request: Request,
    action: str | None = Query(None, max_length=64),
    target_type: str | None = Query(None, max_length=32),
    target_id: str | None = Query(None, max_length=64),
    actor_id: str | None = Query(None, max_length=64, description="An API key id."),
    via: str | None = Query(None, max_length=32, description="v1, a dialect name, cli or system."),
    since: dt.datetime | None = Query(None, description="Only changes at or after this time."),
    until: dt.datetime | None = Query(None, description="Only changes before this time."),
    limit: int = Query(50, ge=1, le=1000),
    cursor: str | None = None,
    principal: Principal = Depends(require_principal),
) -> Page[AuditEventRead]:
    filters = auditlog.AuditFilters(
        action=action,
        target_type=target_type,
        target_id=target_id,
        actor_id=actor_id,
        via=via,
        since=since,
        until=until,
    )
    return await auditlog.list_audit_events(
        db=get_db(request), org_id=principal.org_id, filters=filters, limit=limit, cursor=cursor
    )


@audit_router.get("/{audit_id}", response_model=AuditEventRead)
async def get_audit_event(
    audit_id: str, request: Request, principal: Principal = Depends(require_principal)
) -> AuditEventRead:
    return await auditlog.get_audit_event(db=get_db(request), org_id=principal.org_id, audit_id=audit_id)


# Both parts' routes themselves, not branches (see app.serve_routes).
router = APIRouter(routes=[*hooks.routes, *audit_router.routes])

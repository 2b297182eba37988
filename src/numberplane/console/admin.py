"""Agents (list, create, edit as a new version, versions), webhooks (endpoints, deliveries,
resend) and the audit log: the same services as /v1/agents, /v1/webhook-endpoints, /v1/audit-events."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import ValidationError

from numberplane.agents import service as agents_service
from numberplane.agents.schemas import AgentCreate, AgentUpdate
from numberplane.console.web import (
    PREFIX,
    change_form,
    db_of,
    render,
    request_id_of,
    require_user,
    see_other,
    settings_of,
    text,
)
from numberplane.events import endpoints
from numberplane.events.auditlog import AuditFilters, list_audit_events
from numberplane.events.schemas import WebhookEndpointCreate
from numberplane.kernel.errors import ValidationFailed, validation_errors
from numberplane.tenancy.users import SessionUser

router = APIRouter(prefix=PREFIX, include_in_schema=False)
PAGE_SIZE = 50


def _cursor(request: Request) -> str | None:
    return (request.query_params.get("cursor") or "")[:200] or None


# -- Agents -----------------------------------------------------------------------------------------


@router.get("/agents")
async def agents_page(request: Request, user: SessionUser = Depends(require_user)) -> Response:
    page = await agents_service.list_agents(
        db=db_of(request), org_id=user.org_id, limit=PAGE_SIZE, cursor=_cursor(request)
    )
    return render(request, "agents.html", agents=page.data, next_cursor=page.next_cursor)


def _agent_fields(form: object) -> dict[str, str | None]:
    return {
        "name": text(form, "name", 300),  # type: ignore[arg-type]
        "language": text(form, "language", 40) or None,  # type: ignore[arg-type]
        "prompt": text(form, "prompt", 100_000) or None,  # type: ignore[arg-type]
        "initial_message": text(form, "initial_message", 5_000) or None,  # type: ignore[arg-type]
    }


@router.post("/agents")
async def create_agent(request: Request) -> Response:
    user, form = await change_form(request)
    try:
        data = AgentCreate.model_validate(_agent_fields(form))
    except ValidationError as exc:
        raise ValidationFailed.of(validation_errors(exc)) from exc
    agent = await agents_service.create_agent(
        db=db_of(request), actor=user.actor(request_id_of(request)), data=data
    )
    return see_other(f"{PREFIX}/agents/{agent.id}", "agent_created")


@router.get("/agents/{agent_id}")
async def agent_page(agent_id: str, request: Request, user: SessionUser = Depends(require_user)) -> Response:
    agent = await agents_service.get_agent(db=db_of(request), org_id=user.org_id, agent_id=agent_id)
    return render(request, "agent.html", agent=agent, versions=range(agent.version, 0, -1))


@router.post("/agents/{agent_id}")
async def update_agent(agent_id: str, request: Request) -> Response:
    user, form = await change_form(request)
    try:
        patch = AgentUpdate.model_validate(_agent_fields(form))
    except ValidationError as exc:
        raise ValidationFailed.of(validation_errors(exc)) from exc
    agent = await agents_service.update_agent(
        db=db_of(request), actor=user.actor(request_id_of(request)), agent_id=agent_id, patch=patch
    )
    return see_other(f"{PREFIX}/agents/{agent.id}", "agent_saved")


@router.get("/agents/{agent_id}/versions/{version}")
async def agent_version_page(
    agent_id: str, version: int, request: Request, user: SessionUser = Depends(require_user)
) -> Response:
    db = db_of(request)
    agent = await agents_service.get_agent(db=db, org_id=user.org_id, agent_id=agent_id)
    found = await agents_service.get_agent_version(
        db=db, org_id=user.org_id, agent_id=agent_id, version=version
    )
    return render(
        request,
        "agent_version.html",
        agent=agent,
        v=found,
        config=found.model_dump_json(indent=2, exclude={"agent_id"}),
    )


# -- Webhooks ---------------------------------------------------------------------------------------


@router.get("/webhooks")
async def webhooks_page(request: Request, user: SessionUser = Depends(require_user)) -> Response:
    page = await endpoints.list_endpoints(
        db=db_of(request), org_id=user.org_id, limit=PAGE_SIZE, cursor=_cursor(request)
    )
    return render(request, "webhooks.html", endpoints=page.data, next_cursor=page.next_cursor, secret=None)


@router.post("/webhooks")
async def create_endpoint(request: Request) -> Response:
    user, form = await change_form(request)
    types = [t.strip() for t in text(form, "event_types", 2000).split(",") if t.strip()]
    try:
        data = WebhookEndpointCreate.model_validate(
            {
                "url": text(form, "url", 2048),
                "event_types": types,
                "description": text(form, "description", 500) or None,
            }
        )
    except ValidationError as exc:
        raise ValidationFailed.of(validation_errors(exc)) from exc
    db = db_of(request)
    created = await endpoints.create_endpoint(
        db=db,
        actor=user.actor(request_id_of(request)),
        data=data,
        allow_private=settings_of(request).allow_private_urls,
    )
    page = await endpoints.list_endpoints(db=db, org_id=user.org_id, limit=PAGE_SIZE)
    # The signing secret is shown on this response only (never stored in a page or a URL).
    return render(request, "webhooks.html", endpoints=page.data, next_cursor=page.next_cursor, secret=created)


@router.get("/webhooks/{endpoint_id}")
async def endpoint_page(
    endpoint_id: str, request: Request, user: SessionUser = Depends(require_user)
) -> Response:
    db = db_of(request)
    endpoint = await endpoints.get_endpoint(db=db, org_id=user.org_id, endpoint_id=endpoint_id)
    status = request.query_params.get("status")
    deliveries = await endpoints.list_deliveries(
        db=db,
        org_id=user.org_id,
        endpoint_id=endpoint.id,
        limit=PAGE_SIZE,
        cursor=_cursor(request),
        status=status if status in ("pending", "succeeded", "failed") else None,
    )
    return render(
        request,
        "endpoint.html",
        endpoint=endpoint,
        deliveries=deliveries.data,
        next_cursor=deliveries.next_cursor,
        chosen=status or "",
    )


@router.post("/webhooks/{endpoint_id}/deliveries/{delivery_id}/resend")
async def resend(endpoint_id: str, delivery_id: str, request: Request) -> Response:
    user, _form = await change_form(request)
    await endpoints.resend_delivery(
        db=db_of(request),
        actor=user.actor(request_id_of(request)),
        endpoint_id=endpoint_id,
        delivery_id=delivery_id,
        retry_window=settings_of(request).webhook_retry_window_seconds,
    )
    return see_other(f"{PREFIX}/webhooks/{endpoint_id}", "resent")


# -- Audit log --------------------------------------------------------------------------------------

AUDIT_FILTERS = ("action", "target_type", "target_id", "actor_id", "via")


def _date(value: str | None, field: str) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value[:40]).replace(tzinfo=dt.UTC)
    except ValueError as exc:
        raise ValidationFailed.field(field, "must be a date such as 2026-01-31") from exc


@router.get("/audit")
async def audit_page(request: Request, user: SessionUser = Depends(require_user)) -> Response:
    params = request.query_params
    given = {k: params[k].strip()[:254] for k in AUDIT_FILTERS if params.get(k, "").strip()}
    since = _date(params.get("since"), "since")
    until = _date(params.get("until"), "until")
    filters = AuditFilters(**given, since=since, until=until)  # type: ignore[arg-type]
    page = await list_audit_events(
        db=db_of(request), org_id=user.org_id, filters=filters, limit=PAGE_SIZE, cursor=_cursor(request)
    )
    kept = {**given, **{k: params[k] for k in ("since", "until") if params.get(k)}}
    next_url = (
        f"{PREFIX}/audit?{urlencode({**kept, 'cursor': page.next_cursor})}" if page.next_cursor else None
    )
    return render(
        request,
        "audit.html",
        events=page.data,
        f={**{k: "" for k in (*AUDIT_FILTERS, "since", "until")}, **kept},
        next_url=next_url,
    )
